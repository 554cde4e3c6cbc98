"""The command line, Typer only: parse options, call the library, turn errors into exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .cli_batch import run_batch, say
from .cli_options import (
    Axes,
    Ceil,
    Compress,
    CountPad,
    Dilation,
    Divisor,
    DType,
    FailFast,
    Format,
    Glob,
    Global,
    IgnoreNan,
    Inputs,
    Jobs,
    Kernel,
    MemLimit,
    Norm,
    Output,
    OutSize,
    Overwrite,
    Padding,
    PipeFile,
    Premult,
    Quality,
    Quiet,
    Recursive,
    Report,
    ReportFile,
    Stride,
    check_dtype,
    make_stage,
    parse_axes,
    parse_ints,
)
from .errors import PoolError, UsageError
from .kernels import ALIASES, KINDS
from .pipeline import Pipeline

# Typer 0.29 vendors its own Click (typer._click) and a fresh install has no `click`;
# older Typers raise Click's exceptions. Catch whichever family is present.
try:
    import click as _click

    _CLICK_ERRORS: tuple[type[BaseException], ...] = (_click.ClickException,
                                                      typer.TyperException)
    _ABORTS: tuple[type[BaseException], ...] = (_click.exceptions.Abort, typer.Abort)
except ImportError:
    _CLICK_ERRORS, _ABORTS = (typer.TyperException,), (typer.Abort,)

# "\b" keeps Click from re-wrapping the example lines.
EPILOG = (
    "Examples:\n\n\b\n"
    "  poolcli max photo.png -k 2 -s 2              writes photo.max.png beside it\n"
    "  poolcli avg photos/ -r -o small/ -j 4        a folder tree, mirrored under small/\n"
    "  poolcli run 'max:k=3,s=2,p=1 | avg:k=2' a.npy\n"
    "  cat a.png | poolcli max - -k 2 -o - | poolcli info -\n"
    "  poolcli plan 'max:k=3,s=2,p=1' --shape 224x224x3\n"
    "  poolcli max scan.npy --axes 0,1 --report json\n\n"
    "Exit status: 0 done, 1 some inputs failed, 2 usage error, 130 interrupted."
)
app = typer.Typer(name="poolcli", help="Pool images and N-d arrays: max, min, avg, sum, l2, "
                  "lp, median and mode pooling.", epilog=EPILOG, no_args_is_help=True,
                  add_completion=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})

# --- commands ----------------------------------------------------------------------------


def _kind_command(kind: str, name: str):
    """The command for one kind; ``name`` (the kind or an alias) tags default outputs."""
    def command(inputs: Inputs, kernel: Kernel = None, stride: Stride = None,
                padding: Padding = None, dilation: Dilation = None, ceil_mode: Ceil = False,
                count_include_pad: CountPad = None, divisor: Divisor = None,
                norm: Norm = None, axes: Axes = None, output_size: OutSize = None,
                global_: Global = False, ignore_nan: IgnoreNan = False,
                output: Output = None, format: Format = None, overwrite: Overwrite = False,
                dtype: DType = None, jobs: Jobs = None, report: Report = None,
                report_file: ReportFile = None, quiet: Quiet = False,
                fail_fast: FailFast = False, memory_limit: MemLimit = None,
                recursive: Recursive = False, glob: Glob = None,
                premultiply: Premult = True, quality: Quality = None,
                compress_level: Compress = None) -> None:
        stage = make_stage(kind, kernel, stride, padding, dilation, ceil_mode,
                           count_include_pad, divisor, norm, output_size, global_, ignore_nan)
        raise typer.Exit(run_batch(Pipeline([stage]), name, inputs, output, format,
                                   overwrite, dtype, jobs, report, report_file, quiet,
                                   fail_fast, memory_limit, recursive, glob, axes, premultiply,
                                   quality, compress_level))
    command.__doc__ = f"{kind}: {KINDS[kind].summary}."
    return command


for _kind in KINDS:
    app.command(name=_kind, epilog=EPILOG)(_kind_command(_kind, _kind))
for _alias, _kind in ALIASES.items():  # `poolcli mean` is avg; listed in avg's summary
    app.command(name=_alias, epilog=EPILOG, hidden=True)(_kind_command(_kind, _alias))


def _pipeline(text: str | None, pipeline_file: Path | None) -> Pipeline:
    if pipeline_file is not None:
        return Pipeline.from_toml(pipeline_file)
    if text is None:
        raise UsageError("give a PIPELINE such as 'max:k=3,s=2 | avg:k=2', or --pipeline-file")
    return Pipeline.parse(text)


@app.command(epilog=EPILOG)
def run(args: Annotated[list[str], typer.Argument(
            help="PIPELINE then INPUT... (only INPUT... with --pipeline-file)",
            metavar="PIPELINE INPUT", show_default=False)],
        pipeline_file: PipeFile = None, output: Output = None, format: Format = None,
        overwrite: Overwrite = False, dtype: DType = None, jobs: Jobs = None,
        report: Report = None, report_file: ReportFile = None, quiet: Quiet = False,
        fail_fast: FailFast = False, memory_limit: MemLimit = None,
        recursive: Recursive = False, glob: Glob = None, axes: Axes = None,
        premultiply: Premult = True, quality: Quality = None,
        compress_level: Compress = None) -> None:
    """Run a pipeline of stages such as 'max:k=3,s=2,p=1 | avg:k=2'."""
    text, inputs = (None, args) if pipeline_file else (args[0], args[1:])
    pipe = _pipeline(text, pipeline_file)
    raise typer.Exit(run_batch(pipe, "pooled", inputs, output, format, overwrite, dtype,
                               jobs, report, report_file, quiet, fail_fast, memory_limit,
                               recursive, glob, axes, premultiply, quality, compress_level))


@app.command(epilog=EPILOG)
def plan(args: Annotated[list[str] | None, typer.Argument(
             help="PIPELINE (unless --pipeline-file), then an INPUT unless --shape is given",
             metavar="[PIPELINE] [INPUT]", show_default=False)] = None,
         shape: Annotated[str | None, typer.Option(
             "--shape", metavar="224x224x3",
             help="plan for this shape; HxWxC with C <= 4 is an image (pools H, W)")] = None,
         axes: Axes = None, pipeline_file: PipeFile = None) -> None:
    """Shapes after each stage and the arithmetic per axis; no data is processed."""
    from .describe import describe_input, plan_text

    args = args or []
    text, rest = (None, args) if pipeline_file else (args[0] if args else None, args[1:])
    pipe = _pipeline(text, pipeline_file)
    ax = parse_axes(axes)
    if shape is not None and rest:
        raise UsageError("give either --shape or an INPUT, not both")
    if shape is not None:
        dims = parse_ints("--shape", shape)
        dims = (dims,) if isinstance(dims, int) else dims
        if ax is None and len(dims) == 3 and dims[2] <= 4:
            ax = (0, 1)
            print(f"{shape}: treated as an image (height x width x {dims[2]} channels); "
                  "--axes chooses other axes")
        source = f"--shape {shape}"
    elif len(rest) == 1:
        try:
            info = describe_input(rest[0])
        except (OSError, ValueError) as e:  # an unreadable input, as `info` reports it
            say("error", f"{rest[0]}: {e.strerror if isinstance(e, OSError) else e}")
            raise typer.Exit(1) from None
        dims, source = info.shape, rest[0]
        if info.image and ax is None:
            ax = (0, 1)
    else:
        raise UsageError("plan needs --shape (e.g. 224x224x3) or one INPUT")
    print(plan_text(pipe, tuple(dims), ax, source))


@app.command(epilog=EPILOG)
def info(inputs: Inputs, recursive: Recursive = False, glob: Glob = None) -> None:
    """Shape, dtype, image mode and size of each input, reading headers only."""
    from .batch import walk
    from .describe import describe_input

    status = 0
    names: list[str] = []
    for name in inputs:  # a folder stands for its supported files, as for the KIND commands
        path = Path(name)
        names.extend(map(str, walk(path, recursive, glob)) if name != "-" and path.is_dir()
                     else [name])
    for name in names:
        try:
            print(describe_input(name).line())
        except (OSError, ValueError) as e:
            say("error", f"{name}: {e}")
            status = 1
    raise typer.Exit(status)


@app.command()
def bench(shape: Annotated[str, typer.Option(
              "--shape", metavar="4096x4096", help="the synthetic array's shape; the last "
              "two axes are pooled")] = "4096x4096",
          kind: Annotated[str, typer.Option("--kind", metavar="KIND",
                                            help="max, min, avg, sum, l2, lp, median, mode")]
          = "max", kernel: Kernel = None, stride: Stride = None, padding: Padding = None,
          dtype: Annotated[str, typer.Option("--dtype", metavar="DTYPE")] = "float32",
          repeat: Annotated[int, typer.Option("--repeat", metavar="N",
                                              help="timed runs; the median is shown")] = 7,
          threads: Annotated[int | None, typer.Option(
              "--threads", metavar="N", help="threads for the one call (default: all cores)")]
          = None) -> None:
    """Time the core on synthetic data: median ms and the ratio to copying the input."""
    from .describe import bench_text

    dims = parse_ints("--shape", shape)
    stage = make_stage(kind, kernel, stride, padding)
    check_dtype(dtype)
    if repeat < 1:
        raise UsageError(f"--repeat {repeat} must be >= 1")
    print(bench_text(stage, (dims,) if isinstance(dims, int) else dims, dtype, repeat,
                         threads))


def _version(value: bool) -> None:
    if value:
        print(f"poolcli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version,
                                                is_eager=True, help="print the version")]
          = False) -> None:
    """Pool images and N-d arrays from the shell."""


def main(argv: list[str] | None = None) -> int:
    """The console script: every user mistake is one line and exit status 2, never a trace."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="poolcli")
    except _CLICK_ERRORS as e:
        # Typer may vendor its own Click: both families carry exit_code and a message.
        if type(e).__name__ == "NoArgsIsHelpError" and getattr(e, "ctx", None) is not None:
            sys.stderr.write(e.ctx.get_help() + "\n")
            return 2
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        say("error", message)
        code = getattr(e, "exit_code", 2)
        code = 2 if code in (1, None) else code
    except (PoolError, ValueError, TypeError) as e:
        # PoolError is the library's word for a mistake; a bare ValueError or TypeError from
        # NumPy or Pillow about an option's value is one too.
        say("error", e)
        code = 2
    except (KeyboardInterrupt, *_ABORTS):
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
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
