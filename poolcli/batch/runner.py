"""A whole batch: jobs run here or in worker processes, tallied, and told to a listener.

The runner decides nothing about how a run looks: it hands every finished record, every
note on cells never pooled, and its progress to a ``Listener`` (the command line prints
them; a library user may log them), and returns the records and the summary.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

from ..core.engine import resolve_threads
from ..errors import PoolError
from ..io.atomic import file_id, remove_leftovers
from ..pipeline import Pipeline
from .job import run_job
from .jobs import STDIO, Job, Options, plan_jobs
from .lifeline import remove_dead_scratch_folders
from .report import FileRecord, Summary

# Worker processes take ~0.4 s to start (a fresh interpreter importing NumPy and Pillow),
# the time to decode and encode ~5 MB of PNG; without a set number of jobs they are used
# for batches of at least this much input, where they pay for themselves.
PROCESS_MIN_BYTES = 16 * 2**20
ENGINES = ("local", "dask")


@dataclass(frozen=True)
class BatchOptions:
    """Everything a batch needs: the pipeline, the inputs, where outputs go, and how."""

    pipeline: Pipeline
    inputs: tuple[str, ...]
    tag: str = "pooled"  # default outputs are named NAME.<tag>.EXT
    output: str | None = None
    recursive: bool = False
    glob: str | None = None
    jobs: int | None = None  # worker processes; None: all cores for big batches
    fail_fast: bool = False
    keep_records: bool = True  # keep every record for a report
    engine: str = "local"  # "local" (this machine) or "dask" (one task per file)
    scheduler: str | None = None  # the dask scheduler to join; None starts a LocalCluster
    job: Options = field(default_factory=Options)  # the output settings of each job

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise PoolError(f"engine={self.engine!r} is not known; use {' or '.join(ENGINES)}")
        if self.scheduler is not None and self.engine != "dask":
            raise PoolError("`scheduler` applies to engine=dask only")


class Listener(Protocol):
    """What a batch tells while it runs."""

    def finished(self, record: FileRecord, notes: list[str]) -> None:
        """One input is done (``record.status`` says how); ``notes`` on cells never pooled."""

    def advanced(self, done: int, total: int, failed: int, current: str) -> None:
        """``done`` of ``total`` jobs are finished; ``current`` was the last."""

    # Optional: ``tasks(done, total)``, the cluster's tasks of a job that runs across
    # the workers (a zarr store), counted from the scheduler's task stream.


@dataclass
class Tally:
    """Counters of a running batch."""

    ok: int = 0
    failed: int = 0
    usage_failures: int = 0  # failures that are the options' fault (exit status 2)
    input_bytes: int = 0
    worker_peak: int = 0  # the largest peak RSS a worker process reported
    done: int = 0  # jobs finished (a .npz job may give several records)
    stopped: bool = False


@dataclass
class BatchResult:
    records: list[FileRecord]
    summary: Summary
    tally: Tally
    workers: int
    interrupted: bool = False


def plan(opts: BatchOptions) -> list[Job]:
    """Every job of the batch, outputs named and checked (UsageError)."""
    return plan_jobs(list(opts.inputs), opts.output, opts.tag, recursive=opts.recursive,
                     pattern=opts.glob, fmt=opts.job.format)


# ... and only for batches of at least this many files per worker: a worker's start-up is
# paid once per worker, and with only a file or two each, pooling them here on all cores
# (threaded pooling and PNG encoding) is faster (2 files: 0.95 s here, 1.63 s in workers).
PROCESS_MIN_FILES_PER_WORKER = 4


def worker_count(opts: BatchOptions, jobs_list: list[Job]) -> int:
    """Worker processes for this batch: 1 means the jobs run in this process.

    The default (``jobs`` None) never makes a run slower than one process: workers only
    for batches big enough to pay for their start-up, in bytes and in files per worker;
    never more processes than cores, which would only add memory and switching.
    """
    if opts.engine == "dask":
        return max(2, resolve_threads(opts.jobs))  # each job on one thread of a worker
    workers = min(resolve_threads(opts.jobs), cores(), len(jobs_list))
    if opts.jobs is None and workers > 1:
        workers = min(workers, len(jobs_list) // PROCESS_MIN_FILES_PER_WORKER)
        if workers < 2 or not worth_processes(jobs_list):
            workers = 1  # a small batch runs here, each file pooled on all cores
    return max(workers, 1)


def cores() -> int:
    """The cores this process may use."""
    return resolve_threads(None)


def input_ids(jobs_list: list[Job]) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of every input file."""
    ids = set()
    for job in jobs_list:
        if job.src != STDIO:
            try:
                ids.add(file_id(os.stat(job.src)))
            except OSError:
                continue  # gone: its job will say so
    return frozenset(ids)


def leftovers(jobs_list: list[Job]) -> list[str]:
    """Remove what killed runs left in this batch's output folders; returns their names.

    Their scratch folders for worker processes go too (silently: they are not the user's).
    """
    remove_dead_scratch_folders()
    folders = {os.path.dirname(j.dest) or "." for j in jobs_list if j.dest != STDIO}
    return [str(p) for folder in sorted(folders) for p in remove_leftovers(folder)]


def worth_processes(jobs_list: list[Job]) -> bool:
    total = 0
    for job in jobs_list:
        try:
            total += os.path.getsize(job.src)
        except OSError:
            continue  # "-" or a file gone: its job will say so
        if total >= PROCESS_MIN_BYTES:
            return True
    return False


def run(opts: BatchOptions, jobs_list: list[Job], listener: Listener, *,
        stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> BatchResult:
    """Run every job; a Ctrl-C ends the batch with ``interrupted`` set (outputs whole)."""
    workers = worker_count(opts, jobs_list)
    # Several files at once: each pools on one thread, so cores are not oversubscribed.
    # No output may replace an input, whatever name either is reached by.
    protect = opts.job.protect | input_ids(jobs_list)
    job_opts = replace(opts.job, threads=1 if workers > 1 else None, protect=protect,
                       retried=opts.engine == "dask")
    tally = Tally()
    kept: list[tuple[int, FileRecord]] = []
    t0 = time.perf_counter()

    def finished(index: int, recs: list[FileRecord]) -> bool:
        """Count and tell one job's records; True when the batch should stop."""
        stop = False
        for r in recs:
            tally.input_bytes += r.input_bytes
            if r.status == "ok":
                tally.ok += 1
            else:
                tally.failed += 1
                tally.usage_failures += r.usage_error
                stop = stop or opts.fail_fast or r.stop
            if r.pid not in (0, os.getpid()):
                tally.worker_peak = max(tally.worker_peak, r.process_peak_rss)
            notes = _notes(opts.pipeline, r) if r.status == "ok" else []
            listener.finished(r, notes)
            if opts.keep_records:
                kept.append((index, r))
        tally.done += 1
        listener.advanced(tally.done, len(jobs_list), tally.failed, jobs_list[index].src)
        tally.stopped = tally.stopped or stop
        return stop

    interrupted, dashboard = False, None
    try:
        if opts.engine == "dask":
            from .cluster import client_for, run_on_cluster

            with client_for(opts.scheduler, opts.jobs, opts.job.memory_limit) as client:
                dashboard = client.dashboard_link
                run_on_cluster(client, jobs_list, opts.pipeline, job_opts, finished,
                               getattr(listener, "tasks", None))
        elif workers <= 1:
            for i, job in enumerate(jobs_list):
                if finished(i, run_job(job, opts.pipeline, job_opts, stdin=stdin,
                                       stdout=stdout)):
                    break
        else:
            from .workers import run_parallel

            run_parallel(jobs_list, opts.pipeline, job_opts, workers, finished)
    except KeyboardInterrupt:
        interrupted = True
    summary = Summary.of((tally.ok, tally.failed), time.perf_counter() - t0, tally.input_bytes,
                         tally.worker_peak, workers if tally.worker_peak else 0)
    summary.dashboard = dashboard
    records = [r for _, r in sorted(kept, key=lambda p: p[0])]
    return BatchResult(records, summary, tally, workers, interrupted)


def _notes(pipe: Pipeline, rec: FileRecord) -> list[str]:
    if rec.input_shape is None:
        return list(rec.notes)
    try:
        plans = pipe.plans(rec.input_shape, axes=rec.axes)
    except PoolError:
        return list(rec.notes)
    return [*rec.notes, *(f"{p.kind} stage {i + 1}: {n}" if len(plans) > 1 else n
                          for i, p in enumerate(plans) for n in p.notes())]


__all__ = ["STDIO", "BatchOptions", "BatchResult", "Listener", "Tally", "plan", "run"]
