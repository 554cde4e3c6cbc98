"""The command line: the Typer app (commands.py), its options, batch display and text;
main() turns the library's errors into one line and an exit status, entry() is the
console script.

Nothing heavy is imported here: the app, and NumPy and Pillow with it, are imported
inside main(), where a Ctrl-C or SIGTERM already ends the run quietly.
"""

from __future__ import annotations

import os
import sys
import warnings

# Only modules the interpreter has already loaded are imported before main() runs: a
# Ctrl-C during an import here would still be Python's traceback.


def _parser_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the parser. Typer 0.29 vendors its own Click
    (typer._click) and a fresh install has no `click`; older Typers raise Click's
    exceptions. Catch whichever family is present."""
    import typer

    try:
        import click
    except ImportError:
        return (typer.TyperException,), (typer.Abort,)
    return (click.ClickException, typer.TyperException), (click.exceptions.Abort, typer.Abort)


# Whether this run got SIGINT or SIGTERM: a signal that lands in C code which is
# importing (NumPy's import of datetime) comes out as that code's ImportError instead.
_signalled = False


def _stop(signum, frame) -> None:
    """SIGINT and SIGTERM: a KeyboardInterrupt (SIGTERM stops a run as Ctrl-C does:
    outputs whole or absent), and a note that it came."""
    global _signalled
    _signalled = True
    raise KeyboardInterrupt


def entry() -> int:
    """The console script and ``python -m poolcli``: main(), then the interpreter's exit.

    A Ctrl-C or SIGTERM that comes after main() is done, while the interpreter shuts down
    (its atexit handlers join threads and worker processes), ends the process as the
    signal does, exit status 130 or 143 in a shell, instead of Python's "Exception
    ignored" traceback; what main() wrote is flushed first.
    """
    code = 130  # unless main() returns
    try:
        code = main()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except KeyboardInterrupt:
        code = 130
    except OSError:  # the last of standard output could not be written: not whole
        code = code or 1
    import signal  # not before main(): importing it takes a few ms, Ctrl-C unguarded

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return code


def main(argv: list[str] | None = None) -> int:
    """The command line: every user mistake is one line and exit status 2, never a trace.

    A Ctrl-C (or SIGTERM) at any moment, the ~0.3 s of importing NumPy, Pillow and the
    app included, is the one line ``poolcli: interrupted`` and exit status 130.
    """
    try:
        return _signals_and_warnings(argv)
    except BaseException as e:
        # before the app was imported and built, or while a result was being said
        if not (isinstance(e, KeyboardInterrupt) or (_signalled and isinstance(e, Exception))):
            raise
        from .messages import say

        say("interrupted", "")
        return 130


def _signals_and_warnings(argv: list[str] | None) -> int:
    """_main() with SIGTERM taken as Ctrl-C and Python's warnings as one line each."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # Answered before the Typer app is imported and built (~0.1 s of a start-up whose
        # floor is importing NumPy and Pillow), as `git --version` needs no subcommands.
        from .. import __version__

        print(f"poolcli {__version__}")
        return 0
    import signal
    import threading

    global _signalled
    _signalled = False
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, _stop), signal.signal(signal.SIGTERM, _stop)
    import logging

    shown, last_resort = warnings.showwarning, logging.lastResort
    warnings.showwarning = _warning
    # A library's log records (tifffile's about a damaged TIFF) reach standard error
    # through logging's last resort when no one configured logging: one line each too.
    logging.lastResort = _LogAsWarning(logging.WARNING)
    try:
        return _main(argv)
    finally:
        warnings.showwarning, logging.lastResort = shown, last_resort
        if old is not None:
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])


def _warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (Pillow's on a damaged file, NumPy's) as one line, without the
    source path and line of the library that raised it."""
    from .messages import say

    say("warning", message)


class _LogAsWarning:
    """logging's last-resort handler, saying each record as one ``poolcli: warning:``,
    each distinct message once (tifffile repeats itself every time a file is opened)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.said: set[str] = set()

    def handle(self, record) -> None:
        message = record.getMessage()
        if record.levelno >= self.level and message not in self.said:
            from .messages import say

            self.said.add(message)
            say("warning", message)


def _main(argv: list[str] | None) -> int:
    from ..core.threads import signals_held

    # NumPy, Pillow and the app are imported with signals held: one landing inside a C
    # extension's own imports would be reported by that C code (a traceback of its own,
    # or an ImportError); held, it lands right after, in Python, and is 'interrupted'.
    with signals_held():
        from ..errors import PoolError
        from ..io.image_read import quiet_libtiff
        from ..tiled import return_big_buffers
        from .commands import app
        from .messages import say, teach

        quiet_libtiff()  # its messages go straight to fd 2; a failed decode is said by us
        return_big_buffers()  # so --memory-limit holds with zarr's chunk buffers
        click_errors, aborts = _parser_errors()
    try:
        code = app(args=argv, standalone_mode=False, prog_name="poolcli")
    except click_errors as e:
        # Typer may vendor its own Click: both families carry exit_code and a message.
        if type(e).__name__ == "NoArgsIsHelpError" and getattr(e, "ctx", None) is not None:
            sys.stderr.write(e.ctx.get_help() + "\n")
            return 2
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        say("error", teach(message))
        code = getattr(e, "exit_code", 2)
        code = 2 if code in (1, None) else code
    except PoolError as e:
        # the library's word for a user's mistake in options, a pipeline or a shape
        say("error", e)
        code = 2
    except (KeyboardInterrupt, *aborts):
        # Click turns Ctrl-C into Abort; outputs in flight were written whole or not at all.
        say("interrupted", "")
        code = 130
    except BrokenPipeError:
        # The reader of our standard output went away (e.g. `| head`): not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except OSError as e:
        # The system refused something outside any one input (a full disk, a permission).
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        say("error", f"{where}{e.strerror or e}")
        code = 1
    except Exception as e:  # a bug: said as one, never passed off as the user's mistake
        if _signalled:
            raise  # an interrupt that some C code turned into its own error: main() says so
        say("error", f"internal error, a bug in poolcli ({type(e).__name__}: {e}); "
            "please report it with the command that caused it")
        code = 1
    return code if isinstance(code, int) else 0
