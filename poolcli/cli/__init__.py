"""The command line: the Typer app (app.py), its options, batch display and text; main()
turns the library's errors into one line and an exit status."""

from __future__ import annotations

import os
import sys
import warnings

from .. import __version__
from ..errors import PoolError
from .messages import say, teach


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


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl-C does: outputs whole or absent


def main(argv: list[str] | None = None) -> int:
    """The console script: every user mistake is one line and exit status 2, never a trace."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # Answered before the Typer app is imported and built (~0.1 s of a start-up whose
        # floor is importing NumPy and Pillow), as `git --version` needs no subcommands.
        print(f"poolcli {__version__}")
        return 0
    import signal
    import threading

    from ..tiled import return_big_buffers

    return_big_buffers()  # so --memory-limit holds with zarr's chunk buffers (see there)
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _terminate)
    shown = warnings.showwarning
    warnings.showwarning = _warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (Pillow's on a damaged file, NumPy's) as one line, without the
    source path and line of the library that raised it."""
    say("warning", message)


def _main(argv: list[str] | None) -> int:
    from .commands import app

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
        say("error", f"internal error, a bug in poolcli ({type(e).__name__}: {e}); "
            "please report it with the command that caused it")
        code = 1
    return code if isinstance(code, int) else 0
