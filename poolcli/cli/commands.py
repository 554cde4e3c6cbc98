"""The Typer app: one command per kind (built from the registry), run, plan, info, bench."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from .. import __version__
from ..core.kinds import ALIASES, KINDS
from ..errors import UsageError
from ..pipeline import Pipeline
from .batch import Reporting, run_batch
from .messages import say
from .options import (
    Axes,
    Ceil,
    Compress,
    CountPad,
    Dilation,
    Divisor,
    DType,
    Engine,
    FailFast,
    Format,
    Glob,
    Global,
    IgnoreNan,
    Inputs,
    Jobs,
    Kernel,
    MemLimit,
    NoData,
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
    Scheduler,
    Stride,
    check_dtype,
    ints,
    make_options,
    make_stage,
    parse_axes,
)

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
class Command(TyperCommand):
    """A command whose usage line reads ``INPUT...``, not Typer's ``{INPUT}``."""

    def collect_usage_pieces(self, ctx):
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p
                for p in super().collect_usage_pieces(ctx)]

    def invoke(self, ctx):
        # Typer turns a Ctrl-C out of a command into exit status 130 without a word; as
        # an Abort it reaches main(), which says "interrupted" as for any other moment.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise typer.Abort() from None


def register(name: str | None = None, *, help: str, **kw):
    """app.command with the whole description in the command list (Click cuts it at 45
    characters, mid-sentence) and the usage line as users write it."""
    return app.command(name=name, cls=Command, short_help=help, help=help, **kw)


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
                nodata: NoData = None, output: Output = None, format: Format = None,
                overwrite: Overwrite = False,
                dtype: DType = None, jobs: Jobs = None, engine: Engine = "local",
                scheduler: Scheduler = None, report: Report = None,
                report_file: ReportFile = None, quiet: Quiet = False,
                fail_fast: FailFast = False, memory_limit: MemLimit = None,
                recursive: Recursive = False, glob: Glob = None,
                premultiply: Premult = None, quality: Quality = None,
                compress_level: Compress = None) -> None:
        stage = make_stage(kind, kernel, stride, padding, dilation, ceil_mode,
                           count_include_pad, divisor, norm, output_size, global_, ignore_nan,
                           nodata)
        given = RunChoices(
            output=output, format=format, overwrite=overwrite, dtype=dtype, jobs=jobs,
            engine=engine, scheduler=scheduler, report=report, report_file=report_file,
            quiet=quiet, fail_fast=fail_fast, memory_limit=memory_limit,
            recursive=recursive, glob=glob, axes=axes, premultiply=premultiply,
            quality=quality, compress_level=compress_level)
        raise typer.Exit(_run(Pipeline([stage]), name, inputs, given))
    return command


def _kind_help(kind: str) -> str:
    summary = KINDS[kind].summary
    return f"{summary[0].upper()}{summary[1:]}."


for _kind in KINDS:
    register(_kind, help=_kind_help(_kind), epilog=EPILOG)(_kind_command(_kind, _kind))
for _alias, _kind in ALIASES.items():  # `poolcli mean` is avg; listed in avg's summary
    register(_alias, help=_kind_help(_kind), epilog=EPILOG, hidden=True)(
        _kind_command(_kind, _alias))


@dataclass(frozen=True)
class RunChoices:
    """The options a KIND command and `run` share, as the user gave them (flags' raw
    values; ``_run`` checks them): one object from each command into the batch."""

    output: str | None
    format: str | None
    overwrite: bool
    dtype: str | None
    jobs: int | None
    engine: str
    scheduler: str | None
    report: str | None
    report_file: Path | None
    quiet: bool
    fail_fast: bool
    memory_limit: str | None
    recursive: bool
    glob: str | None
    axes: str | None
    premultiply: bool | None
    quality: int | None
    compress_level: int | None


def _run(pipe: Pipeline, tag: str, inputs: list[str], given: RunChoices) -> int:
    """Run a batch of ``pipe`` over ``inputs`` with the options ``given``."""
    from ..batch.runner import BatchOptions
    from ..core.kinds import check_option

    if given.premultiply is not None:  # given: it must do something (avg, images, alpha)
        check_option("premultiply", [s.kind for s in pipe.stages], every=True)
    job = make_options(given.axes, given.dtype, given.format, given.overwrite,
                       given.premultiply is not False, given.quality, given.compress_level,
                       given.memory_limit, given.jobs)
    opts = BatchOptions(pipeline=pipe, inputs=tuple(inputs), tag=tag, output=given.output,
                        recursive=given.recursive, glob=given.glob, jobs=given.jobs,
                        engine=given.engine, scheduler=given.scheduler,
                        fail_fast=given.fail_fast, job=job)
    return run_batch(opts, Reporting(given.report, given.report_file, given.quiet))


def _pipeline(text: str | None, pipeline_file: Path | None) -> Pipeline:
    if pipeline_file is not None:
        return Pipeline.from_toml(pipeline_file)
    if text is None:
        raise UsageError("give a PIPELINE such as 'max:k=3,s=2 | avg:k=2', or --pipeline-file")
    return Pipeline.parse(text)


@register(help="Run a pipeline of stages such as 'max:k=3,s=2,p=1 | avg:k=2'.", epilog=EPILOG)
def run(args: Annotated[list[str], typer.Argument(
            help="PIPELINE then INPUT... (only INPUT... with --pipeline-file)",
            metavar="PIPELINE INPUT...", show_default=False)],
        pipeline_file: PipeFile = None, output: Output = None, format: Format = None,
        overwrite: Overwrite = False, dtype: DType = None, jobs: Jobs = None,
        engine: Engine = "local", scheduler: Scheduler = None,
        report: Report = None, report_file: ReportFile = None, quiet: Quiet = False,
        fail_fast: FailFast = False, memory_limit: MemLimit = None,
        recursive: Recursive = False, glob: Glob = None, axes: Axes = None,
        premultiply: Premult = None, quality: Quality = None,
        compress_level: Compress = None) -> None:
    text, inputs = (None, args) if pipeline_file else (args[0], args[1:])
    pipe = _pipeline(text, pipeline_file)
    given = RunChoices(
        output=output, format=format, overwrite=overwrite, dtype=dtype, jobs=jobs,
        engine=engine, scheduler=scheduler, report=report, report_file=report_file,
        quiet=quiet, fail_fast=fail_fast, memory_limit=memory_limit, recursive=recursive,
        glob=glob, axes=axes, premultiply=premultiply, quality=quality,
        compress_level=compress_level)
    raise typer.Exit(_run(pipe, "pooled", inputs, given))


@register(help="Shapes after each stage and the arithmetic per axis (or a pyramid's "
          "levels, with PIPELINE 'pyramid'); no data is processed.", epilog=EPILOG)
def plan(args: Annotated[list[str] | None, typer.Argument(
             help="PIPELINE (unless --pipeline-file), then an INPUT unless --shape is given",
             metavar="[PIPELINE] [INPUT]", show_default=False)] = None,
         shape: Annotated[str | None, typer.Option(
             "--shape", metavar="224x224x3",
             help="plan for this shape; HxWxC with C <= 4 is an image (pools H, W)")] = None,
         axes: Axes = None, pipeline_file: PipeFile = None,
         levels: Annotated[int | None, typer.Option(
             "--levels", metavar="N", help="with PIPELINE 'pyramid': levels after level 0")]
         = None,
         min_size: Annotated[int, typer.Option(
             "--min-size", metavar="PX", help="with 'pyramid': stop at this size")] = 1,
         factor: Annotated[str | None, typer.Option(
             "-k", "--factor", metavar="2|2x2x1", help="with 'pyramid': the factor")] = None,
         ) -> None:
    from ..io.headers import describe_input
    from .text import plan_text, pyramid_text

    args = args or []
    text, rest = (None, args) if pipeline_file else (args[0] if args else None, args[1:])
    is_pyramid = text is not None and text.strip().lower() == "pyramid"
    pipe = None if is_pyramid else _pipeline(text, pipeline_file)
    ax = parse_axes(axes)
    if shape is not None and rest:
        raise UsageError("give either --shape or an INPUT, not both")
    if shape is not None:
        dims = ints("--shape", shape)
        dims = (dims,) if isinstance(dims, int) else dims
        if ax is None and len(dims) == 3 and dims[2] <= 4:
            ax = (0, 1)
            print(f"{shape}: treated as an image (height x width x {dims[2]} channels); "
                  "--axes chooses other axes")
        source = f"--shape {shape}"
    elif len(rest) == 1:
        if rest[0] != "-" and not os.path.lexists(rest[0]):
            # said as every command says it (exit 2), not as a raw OS error
            raise UsageError(f"input {rest[0]} does not exist")
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
    if pipe is None:
        fac = 2 if factor is None else ints("--factor", factor)
        print(pyramid_text(tuple(dims), levels, fac, ax, min_size, source))
        return
    print(plan_text(pipe, tuple(dims), ax, source))


@register(help="Shape, dtype, image mode and size of each input, from headers only.",
          epilog=EPILOG)
def info(inputs: Inputs, recursive: Recursive = False, glob: Glob = None) -> None:
    from ..batch.jobs import expand
    from ..io.headers import describe_input
    from .text import info_line

    status = 0
    # a folder stands for its supported files, as for the KIND commands
    for name, _ in expand(inputs, recursive, glob):
        try:
            print(info_line(describe_input(name)))
        except (OSError, ValueError) as e:
            say("error", f"{name}: {e}")
            status = 1
    raise typer.Exit(status)


@register(help="Time the core on synthetic data: median ms and the ratio to a copy.")
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
    from .text import bench_text

    dims = ints("--shape", shape)
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


# `poolcli pyramid` lives in its own module, which adds its command to this app.
from . import pyramid as _pyramid  # noqa: E402, F401
