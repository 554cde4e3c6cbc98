"""Jobs in worker processes: a fork server, bounded work in flight, no stray processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Any

from ..core.threads import signals_held
from ..pipeline import Pipeline
from .job import run_job
from .jobs import Job, Options
from .lifeline import die_with_parent, own_scratch_folder
from .report import FileRecord


def run_parallel(jobs_list, pipe, opts, workers, finished) -> None:
    """Run jobs in worker processes, at most 2 per worker in flight.

    Processes, not threads: Pillow holds the GIL while it decodes PNG, so threads gave
    1.2x on 2 cores. Workers fork from a server that has imported poolcli once, and are
    replaced every 100 files so a long batch does not grow. Starting them waits until
    the server has imported poolcli (0.2-0.3 s): a thread waits for that while this
    process pools the first files itself.
    """
    ctx = multiprocessing.get_context("forkserver")
    own_scratch_folder()
    # The fork server and every worker die with their parent, even a SIGKILLed one.
    ctx.set_forkserver_preload(["poolcli.batch.forkserver_init", "poolcli.batch.workers"])
    # The fork server starts with SIGINT ignored, which it inherits: a Ctrl-C while it
    # imports would print its traceback. Its workers take SIGINT only while they pool
    # (run_job_in_worker), so a Ctrl-C still stops them mid-file.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)
    stopping = ctx.Event()
    ex = ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=100,
                             initializer=_start_worker, initargs=(stopping,))

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
                # taken from pending and counted as one step: a signal between the two
                # would lose a job whose output is on disk from the count said
                with signals_held():
                    i = pending.pop(f)
                    try:
                        recs = f.result()
                    except BrokenProcessPool:  # killed (e.g. out of memory): input failed
                        recs = [FileRecord(jobs_list[i].src, jobs_list[i].dest,
                                           status="error",
                                           error="the worker process died (out of memory?)")]
                        stop = True
                    if finished(i, recs):
                        stop = True
    except KeyboardInterrupt:
        # A SIGTERM, or `kill -INT` of this process alone, reaches no worker: each would
        # finish its file, then the ones queued for it. Workers start no other job and
        # stop the one under way (whole or absent, like any output); every output they
        # wrote is counted, so the summary matches the folder.
        stopping.set()
        _interrupt(multiprocessing.active_children())
        starter.join()
        ex.shutdown(wait=True, cancel_futures=True)
        for f, i in sorted(pending.items(), key=lambda p: p[1]):
            if f.done() and not f.cancelled() and f.exception() is None:
                finished(i, f.result())
        raise
    finally:
        starter.join()
        ex.shutdown(wait=True, cancel_futures=True)


def _interrupt(processes) -> None:
    """SIGINT to each worker: the one a Ctrl-C sends to the whole process group."""
    for p in processes:
        with contextlib.suppress(ProcessLookupError, TypeError):  # ended, or not started
            os.kill(p.pid, signal.SIGINT)


# --- in a worker process -------------------------------------------------------------------

_stopping: Any = None  # the run's stop flag (a multiprocessing Event), set by _start_worker


def _start_worker(stopping) -> None:
    """Each worker's first call: it dies with poolcli, and learns the run's stop flag."""
    global _stopping
    die_with_parent()
    _stopping = stopping


def run_job_in_worker(job: Job, pipe: Pipeline, opts: Options) -> list[FileRecord]:
    """run_job in a worker process, which ignores SIGINT except while it runs a job.

    Workers inherit an ignored SIGINT from the fork server: an idle one, waiting for
    work, would print a traceback. While a job runs, SIGINT (a Ctrl-C to the whole
    process group, or the run stopping its workers) stops it mid-file with no partial
    output, and the executor hands the KeyboardInterrupt back as the job's result. Only
    the first SIGINT: a second must not cut short the removal of the temporary file.
    A job the run stopped before it began is not started; one whose output was already
    in place when the signal came is counted as written (a record of names only), so
    the count said is the count on disk.
    """
    before = _output_state(job.dest)
    try:
        signal.signal(signal.SIGINT, _interrupt_once)
        try:
            if _stopping is not None and _stopping.is_set():
                raise KeyboardInterrupt
            return run_job(job, pipe, opts)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:  # wherever it landed, the restoring of SIG_IGN included
        if _output_state(job.dest) != before:
            return [FileRecord(job.src, job.dest, pid=os.getpid())]
        raise


def _interrupt_once(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _output_state(path: str) -> tuple[int, int, int] | None:
    """What is at ``path`` now (None: nothing); a new output changes it."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
