"""The command line, Typer only: parse options, call the library, turn errors into exit codes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from . import __version__
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
    make_options,
    make_stage,
    parse_axes,
    parse_ints,
)
from .errors import PoolError, UsageError
from .kernels import KINDS
from .pipeline import Pipeline

# Rich, Pillow and the batch machinery are imported where they are used: `poolcli
# --version` and `--help` should start as fast as importing NumPy, Pillow and Typer.
_COLOURS = {"error": "31", "warning": "33", "interrupted": "31"}


def say(kind: str, text: str) -> None:
    """One line on standard error: ``poolcli: error: ...``, coloured on a terminal."""
    label = f"poolcli: {kind}" + ("" if kind == "interrupted" else ":")
    if sys.stderr.isatty():
        label = f"\033[{_COLOURS[kind]}m{label}\033[0m"
    sys.stderr.write(f"{label} {' '.join(str(text).split())}\n")
    sys.stderr.flush()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


TABLE_ROWS = 20  # rows of the default report table on a terminal

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

def _batch(pipe: Pipeline, tag: str, inputs, output, fmt, overwrite, dtype, jobs, report,
           report_file, quiet, fail_fast, memory_limit, recursive, glob, axes, premultiply,
           quality, compress_level) -> int:
    from .batch import STDIO, Options, plan_jobs, run_job
    from .pool import resolve_threads
    from .report import Summary, json_document, table

    if report not in (None, "table", "json", "none"):
        raise UsageError(f"--report {report!r} is not known; use table, json or none")
    opts = make_options(axes, dtype, fmt, overwrite, premultiply, quality, compress_level,
                    memory_limit, jobs)
    jobs_list = plan_jobs(inputs, output, tag, recursive=recursive, pattern=glob,
                          fmt=opts.format)
    workers = min(resolve_threads(jobs), len(jobs_list))
    # Several files at once: each pools on one thread, so cores are not oversubscribed.
    opts = Options(**{**opts.__dict__, "threads": 1 if workers > 1 else None})
    mode = report or ("table" if sys.stderr.isatty() else "none")
    keep = mode != "none" or report_file is not None
    worker_peak = [0]  # the largest peak RSS a worker process reported
    records: list[tuple[int, Any]] = []
    counts = [0, 0]
    usage_failures = [0]
    warned: set[str] = set()
    stopped = False
    in_bytes = 0
    t0 = time.perf_counter()
    progress = None
    if sys.stderr.isatty() and not quiet and len(jobs_list) > 1:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        progress = Progress(TextColumn("pooling"), BarColumn(), MofNCompleteColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(),
                            console=_stderr_console(), transient=True)
        task = progress.add_task("files", total=len(jobs_list))
        progress.start()

    def finished(index: int, recs: list) -> bool:
        """Count and report one job's records; True when the batch should stop."""
        nonlocal in_bytes, stopped
        stop = False
        for r in recs:
            in_bytes += r.input_bytes
            counts[0 if r.status == "ok" else 1] += 1
            if r.status != "ok":
                usage_failures[0] += r.usage_error
                if not (stopped and r.stop):  # other workers' copies of the one mistake
                    say("error", f"{r.input}: {r.error}")
                stop = stop or fail_fast or r.stop
            elif not quiet and r.input_shape is not None:
                for note in _notes(pipe, r):
                    if note not in warned:
                        warned.add(note)
                        say("warning", f"{note} ({r.input})")
            if r.pid not in (0, os.getpid()):
                worker_peak[0] = max(worker_peak[0], r.process_peak_rss)
            if keep:
                records.append((index, r))
        if progress is not None:
            progress.update(task, advance=1)
        stopped = stopped or stop
        return stop

    stdin = sys.stdin.buffer if any(j.src == STDIO for j in jobs_list) else None
    stdout = sys.stdout.buffer if any(j.dest == STDIO for j in jobs_list) else None
    try:
        if workers <= 1:
            for i, job in enumerate(jobs_list):
                if finished(i, run_job(job, pipe, opts, stdin=stdin, stdout=stdout)):
                    break
        else:
            _parallel(jobs_list, pipe, opts, workers, finished)
    except KeyboardInterrupt:
        # Typer would exit 130 silently; outputs in flight are whole or absent (atomic).
        if progress is not None:
            progress.stop()
        say("interrupted", f"after {counts[0]} of {len(jobs_list)} files")
        raise typer.Exit(130) from None
    finally:
        if progress is not None:
            progress.stop()
    summary = Summary.of((counts[0], counts[1]), time.perf_counter() - t0, in_bytes,
                         worker_peak[0], workers if worker_peak[0] else 0)
    ordered = [r for _, r in sorted(records, key=lambda p: p[0])]
    if report_file is not None or mode == "json":
        doc = json_document([r.as_json() for r in ordered], summary)
        if report_file is not None:  # the file instead of standard error (SPEC)
            report_file.write_text(doc + "\n")
        elif mode == "json":
            sys.stderr.write(doc + "\n")
    if mode == "table" and not quiet:
        # The default table of a long batch is cut short; --report table asks for every row.
        _stderr_console().print(table(ordered, summary,
                                      max_rows=None if report == "table" else TABLE_ROWS))
    if usage_failures[0]:
        return 2  # a pipeline that cannot fit an input is a usage error (SPEC: exit 2)
    return 1 if counts[1] else 0


def _notes(pipe: Pipeline, rec) -> list[str]:
    try:
        plans = pipe.plans(rec.input_shape, axes=rec.axes)
    except PoolError:
        return []
    return [f"{p.kind} stage {i + 1}: {n}" if len(plans) > 1 else n
            for i, p in enumerate(plans) for n in p.notes()]


def _parallel(jobs_list, pipe, opts, workers, finished) -> None:
    """Run jobs in worker processes, at most 2 per worker in flight.

    Processes, not threads: Pillow holds the GIL while it decodes and encodes PNG, so
    threads gave 1.2x on 2 cores. Workers fork from a server that has imported poolcli
    once, and are replaced every 100 files so a long batch does not grow.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from .batch import run_job
    from .report import FileRecord

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["poolcli.batch"])
    ex = ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=100)
    pending: dict[Any, int] = {}
    it = iter(enumerate(jobs_list))
    stop = False
    try:
        while True:
            while not stop and len(pending) < 2 * workers:
                nxt = next(it, None)
                if nxt is None:
                    break
                i, job = nxt
                pending[ex.submit(run_job, job, pipe, opts)] = i
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=pending.__getitem__):
                i = pending.pop(f)
                try:
                    recs = f.result()
                except BrokenProcessPool:  # killed (e.g. out of memory): its input failed
                    recs = [FileRecord(jobs_list[i].src, jobs_list[i].dest, status="error",
                                       error="the worker process died (out of memory?)")]
                    stop = True
                if finished(i, recs):
                    stop = True
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


# --- commands ----------------------------------------------------------------------------


def _kind_command(kind: str):
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
        raise typer.Exit(_batch(Pipeline([stage]), kind, inputs, output, format, overwrite,
                                dtype, jobs, report, report_file, quiet, fail_fast,
                                memory_limit, recursive, glob, axes, premultiply, quality,
                                compress_level))
    command.__doc__ = f"{kind}: {KINDS[kind].summary}."
    return command


for _kind in KINDS:
    app.command(name=_kind, epilog=EPILOG)(_kind_command(_kind))


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
    raise typer.Exit(_batch(pipe, "pooled", inputs, output, format, overwrite, dtype, jobs,
                            report, report_file, quiet, fail_fast, memory_limit, recursive,
                            glob, axes, premultiply, quality, compress_level))


@app.command(epilog=EPILOG)
def plan(args: Annotated[list[str], typer.Argument(
             help="PIPELINE, then an INPUT file unless --shape is given",
             metavar="PIPELINE [INPUT]", show_default=False)],
         shape: Annotated[str | None, typer.Option(
             "--shape", metavar="224x224x3",
             help="plan for this shape; HxWxC with C <= 4 is an image (pools H, W)")] = None,
         axes: Axes = None, pipeline_file: PipeFile = None) -> None:
    """Shapes after each stage and the arithmetic per axis; no data is processed."""
    from .describe import describe_input, plan_text

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
        info = describe_input(rest[0])
        dims, source = info.shape, rest[0]
        if info.image and ax is None:
            ax = (0, 1)
    else:
        raise UsageError("plan needs --shape (e.g. 224x224x3) or one INPUT")
    print(plan_text(pipe, tuple(dims), ax, source))


@app.command(epilog=EPILOG)
def info(inputs: Inputs) -> None:
    """Shape, dtype, image mode and size of each input, reading headers only."""
    from .describe import describe_input

    status = 0
    for name in inputs:
        try:
            print(describe_input(name).line())
        except (OSError, ValueError) as e:
            say("error", f"{name}: {e}")
            status = 1
    raise typer.Exit(status)


@app.command()
def bench(shape: Annotated[str, typer.Option("--shape", help="array shape")] = "4096x4096",
          kind: Annotated[str, typer.Option("--kind")] = "max", kernel: Kernel = None,
          stride: Stride = None, padding: Padding = None,
          dtype: Annotated[str, typer.Option("--dtype")] = "float32",
          repeat: Annotated[int, typer.Option("--repeat", help="timed runs")] = 7,
          threads: Annotated[int | None, typer.Option("--threads")] = None) -> None:
    """Time the core on synthetic data: median ms and the ratio to copying the input."""
    from .describe import bench_text

    dims = parse_ints("--shape", shape)
    stage = make_stage(kind, kernel, stride, padding)
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
    except (click.ClickException, typer.TyperException) as e:
        # Typer may vendor its own Click: both families carry exit_code and a message.
        if type(e).__name__ == "NoArgsIsHelpError" and getattr(e, "ctx", None) is not None:
            sys.stderr.write(e.ctx.get_help() + "\n")
            return 2
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        say("error", message)
        code = getattr(e, "exit_code", 2)
        code = 2 if code in (1, None) else code
    except (PoolError, TypeError) as e:
        say("error", e)
        code = 2
    except (KeyboardInterrupt, click.exceptions.Abort, typer.Abort):
        # Click turns Ctrl-C into Abort; outputs in flight were written whole or not at all.
        say("interrupted", "")
        code = 130
    except BrokenPipeError:
        # The reader of our standard output went away (e.g. `| head`): not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
