"""Running a batch for the command line: jobs, worker processes, progress, warnings and the
report, and the one-line messages on standard error."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from .cli_options import make_options
from .errors import PoolError, UsageError
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


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


TABLE_ROWS = 20  # rows of the default report table on a terminal
EXISTS_LINES = 3  # outputs that exist already, named one per line before they are counted
# Worker processes take ~0.4 s to start (a fresh interpreter importing NumPy and Pillow),
# the time to decode and encode ~5 MB of PNG; without -j they are used for batches of at
# least this much input, where they pay for themselves.
PROCESS_MIN_BYTES = 16 * 2**20


def _worth_processes(jobs_list) -> bool:
    total = 0
    for job in jobs_list:
        try:
            total += os.path.getsize(job.src)
        except OSError:
            continue  # "-" or a file gone: its job will say so
        if total >= PROCESS_MIN_BYTES:
            return True
    return False


def run_batch(pipe: Pipeline, tag: str, inputs, output, fmt, overwrite, dtype, jobs, report,
              report_file, quiet, fail_fast, memory_limit, recursive, glob, axes, premultiply,
              quality, compress_level) -> int:
    """Pool every input through ``pipe``, report, and return the exit status (0, 1, 2, 130).

    ``tag`` names default outputs (``photo.<tag>.png``); the rest are the output options.
    """
    from .batch import STDIO, Options, plan_jobs, run_job
    from .pool import resolve_threads
    from .report import Summary, json_document, table

    if report not in (None, "table", "json", "none"):
        raise UsageError(f"--report {report!r} is not known; use table, json or none")
    opts = make_options(axes, dtype, fmt, overwrite, premultiply, quality, compress_level,
                        memory_limit, jobs)
    if report_file is not None and not report_file.parent.is_dir():
        raise UsageError(f"--report-file {report_file}: the folder {report_file.parent} "
                         "does not exist")
    jobs_list = plan_jobs(inputs, output, tag, recursive=recursive, pattern=glob,
                          fmt=opts.format)
    _check_streams(jobs_list)
    workers = min(resolve_threads(jobs), len(jobs_list))
    if jobs is None and workers > 1 and not _worth_processes(jobs_list):
        workers = 1  # a small batch runs here, each file pooled on all cores
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
    repeated: dict[str, int] = {}  # a usage error already shown -> how many more had it
    exists = [0, 0]  # outputs that exist already: named on a line, only counted
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
        )
        progress = Progress(TextColumn("pooling"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                            console=stderr_console(), transient=True)
        task = progress.add_task("files", total=len(jobs_list), rate="")
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
                if stopped and r.stop:
                    pass  # other workers' copies of the one mistake that stopped the batch
                elif r.usage_error and r.error in repeated:
                    repeated[r.error] += 1  # a pipeline too big for many same-sized inputs
                elif r.exists and exists[0] >= EXISTS_LINES:
                    exists[1] += 1  # a batch run again: a few names are enough
                else:
                    say("error", f"{r.input}: {r.error}")
                    if r.usage_error:
                        repeated[r.error] = 0
                    exists[0] += r.exists
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
            done = progress.tasks[0].completed + 1
            elapsed = time.perf_counter() - t0
            progress.update(task, advance=1, rate=f"{done / elapsed:.1f} files/s"
                            if elapsed > 0 else "")
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
        return 130
    finally:
        if progress is not None:
            progress.stop()
    if exists[1]:
        say("error", f"{exists[1]} more output{'s' if exists[1] > 1 else ''} exist already; "
            "pass --overwrite to replace them")
    for error, more in repeated.items():
        if more:
            say("error", f"{more} more input{'s' if more > 1 else ''} failed the same way: "
                f"{error}")
    summary = Summary.of((counts[0], counts[1]), time.perf_counter() - t0, in_bytes,
                         worker_peak[0], workers if worker_peak[0] else 0)
    ordered = [r for _, r in sorted(records, key=lambda p: p[0])]
    if report_file is not None or mode == "json":
        doc = json_document([r.as_json() for r in ordered], summary)
        if report_file is not None:  # the file instead of standard error (SPEC)
            from .io.atomic import atomic_write

            try:
                atomic_write(report_file, lambda f: f.write(doc.encode() + b"\n"),
                             overwrite=True)
            except OSError as e:
                say("error", f"--report-file {report_file}: {e.strerror or e}")
                counts[1] += 1
        elif mode == "json":
            sys.stderr.write(doc + "\n")
    if mode == "table" and not quiet:
        # The default table of a long batch is cut short; --report table asks for every row.
        stderr_console().print(table(ordered, summary,
                                      max_rows=None if report == "table" else TABLE_ROWS))
    if usage_failures[0]:
        return 2  # a pipeline that cannot fit an input is a usage error (SPEC: exit 2)
    return 1 if counts[1] else 0


def _check_streams(jobs_list) -> None:
    """Refuse to wait on a terminal for data, or to print binary data onto one."""
    from .batch import STDIO

    if any(j.src == STDIO for j in jobs_list) and sys.stdin.isatty():
        raise UsageError("standard input (-) is a terminal; pipe or redirect a file into it")
    if any(j.dest == STDIO for j in jobs_list) and sys.stdout.isatty():
        raise UsageError("-o - would write binary data to the terminal; redirect or pipe "
                         "standard output")


def _notes(pipe: Pipeline, rec) -> list[str]:
    try:
        plans = pipe.plans(rec.input_shape, axes=rec.axes)
    except PoolError:
        return []
    return [f"{p.kind} stage {i + 1}: {n}" if len(plans) > 1 else n
            for i, p in enumerate(plans) for n in p.notes()]


def _parallel(jobs_list, pipe, opts, workers, finished) -> None:
    """Run jobs in worker processes, at most 2 per worker in flight.

    Processes, not threads: Pillow holds the GIL while it decodes PNG, so threads gave
    1.2x on 2 cores. Workers fork from a server that has imported poolcli once, and are
    replaced every 100 files so a long batch does not grow. Starting them waits until
    the server has imported poolcli (0.2-0.3 s): a thread waits for that while this
    process pools the first files itself.
    """
    import multiprocessing
    import signal
    import threading
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import forkserver

    from .batch import run_job, run_job_in_worker
    from .report import FileRecord

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["poolcli.batch"])
    # The fork server starts with SIGINT ignored, which it inherits: a Ctrl-C while it
    # imports would print its traceback. Its workers take SIGINT only while they pool
    # (run_job_in_worker), so a Ctrl-C still stops them mid-file.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)
    ex = ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=100)

    def start_workers() -> None:
        # each submit starts a worker while none is idle; int() is a task that does nothing
        try:
            for _ in range(workers):
                ex.submit(int)
        except (RuntimeError, OSError, EOFError):
            pass  # interrupted, or the pool broke: the main loop reports what matters

    starter = threading.Thread(target=start_workers, daemon=True)
    starter.start()
    pending: dict[Any, int] = {}
    it = iter(enumerate(jobs_list))
    stop = False
    try:
        while starter.is_alive() and not stop:
            nxt = next(it, None)
            if nxt is None:
                break
            stop = finished(nxt[0], run_job(nxt[1], pipe, opts))
        starter.join()
        while True:
            while not stop and len(pending) < 2 * workers:
                nxt = next(it, None)
                if nxt is None:
                    break
                i, job = nxt
                pending[ex.submit(run_job_in_worker, job, pipe, opts)] = i
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
        starter.join()
        ex.shutdown(wait=True, cancel_futures=True)
