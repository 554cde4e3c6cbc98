"""Jobs on a Dask cluster: one task per file, with the same jobs, naming, atomic writes and
records as a local run.

A task that dies with its worker is run again by Dask (``retries``); its output is
written by the one atomic writer, so a lost worker leaves no half-written file and the
retry writes the whole one. Without a scheduler address a LocalCluster sized to the
machine (loopback only) is started and closed with the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.engine import resolve_threads
from ..errors import PoolError, UsageError
from ..io.atomic import OutputRefused
from ..io.zarr_store import is_zarr_path
from ..pipeline import Pipeline
from .job import from_result, run_job
from .jobs import Job, Options
from .report import FileRecord

RETRIES = 3  # times a task lost with its worker is run again
CONNECT_SECONDS = 10


class ClusterError(OSError):
    """The cluster cannot be reached or started (an input's fault it is not)."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise PoolError("the dask engine needs the optional extra: "
                        "pip install 'poolcli[dask]'") from None
    return distributed


@contextmanager
def client_for(scheduler: str | None, workers: int | None = None,
               memory_limit: int | None = None) -> Iterator[Any]:
    """A Client of the scheduler at ``scheduler``, or of a LocalCluster started for the run
    whose workers each get ``memory_limit`` bytes (default: dask's share of the machine).
    A joined cluster's workers keep the limits they were started with."""
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError, ValueError) as e:
            raise ClusterError(f"cannot reach the dask scheduler at {scheduler} "
                               f"({' '.join(str(e).split()) or type(e).__name__})") from None
        with client:
            yield client
        return
    n = resolve_threads(workers)
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=50, memory_limit=memory_limit or "auto")
    with cluster, distributed.Client(cluster) as client:
        yield client


TaskCounts = Callable[[int, int], None]  # (tasks done, tasks in all) of the work in hand
POLL_SECONDS = 0.2


def _task_stream():
    """A listener of the scheduler's task stream: distributed's own progress bar (the
    one `distributed.progress` draws), drawn as counts that the caller shows itself."""
    from distributed.diagnostics.progressbar import ProgressBar

    class Counts(ProgressBar):
        done, total = 0, 0

        def _draw_bar(self, remaining: int = 0, all: int = 0, **kw: Any) -> None:
            self.done, self.total = all - remaining, all

    return Counts


def compute(client: Any, work: list[Any], on_tasks: TaskCounts | None = None,
            on_done: Callable[[int], None] | None = None) -> None:
    """Compute the dask collections ``work`` on ``client``'s cluster as one graph (what
    they share is computed once). ``on_done(i)`` as ``work[i]`` is finished, in the order
    they finish; ``on_tasks(done, total)`` counts every task of the graph, fed by the
    scheduler's task stream. A failed task raises here; the rest is cancelled."""
    import time

    futures = client.compute(work)
    counts = None
    if on_tasks is not None:
        counts = _task_stream()(futures, scheduler=client.scheduler.address,
                                interval=POLL_SECONDS)
        client.loop.add_callback(counts.listen)
    pending = dict(enumerate(futures))
    try:
        while pending:
            for i in [i for i, f in pending.items() if f.done()]:
                pending.pop(i).result()  # raises the task's error
                if on_done is not None:
                    on_done(i)
            if counts is not None and counts.total:
                on_tasks(counts.done, counts.total)
            if pending:
                time.sleep(POLL_SECONDS)
    finally:
        for f in pending.values():
            f.cancel()


def run_on_cluster(client: Any, jobs_list: list[Job], pipe: Pipeline, opts: Options,
                   finished: Callable[[int, list[FileRecord]], bool],
                   on_tasks: TaskCounts | None = None) -> None:
    """Run every job as a task on ``client``'s cluster; ``finished`` as in a local run.

    A zarr array into a zarr store is one job too big for one task: it is pooled
    chunk-parallel across the workers (``dask_engine.pool_store``), from here, its
    tasks counted by ``on_tasks``.
    """
    distributed = _distributed()
    stores = [i for i, job in enumerate(jobs_list)
              if is_zarr_path(job.src) and is_zarr_path(job.dest)]
    for i in stores:
        if finished(i, [_store_job(client, jobs_list[i], pipe, opts, on_tasks)]):
            return
    futures = {client.submit(run_job, job, pipe, opts, pure=False, retries=RETRIES): i
               for i, job in enumerate(jobs_list) if i not in stores}
    try:
        for fut in distributed.as_completed(futures):
            i = futures[fut]
            try:
                recs = fut.result()
            except Exception as e:  # the task failed RETRIES + 1 times (workers lost)
                recs = [FileRecord(jobs_list[i].src, jobs_list[i].dest, status="error",
                                   error=f"the cluster could not run it ({type(e).__name__})")]
            if finished(i, recs):
                break
    finally:
        for fut in futures:
            fut.cancel()


def _store_job(client: Any, job: Job, pipe: Pipeline, opts: Options,
               on_tasks: TaskCounts | None) -> FileRecord:
    """A zarr -> zarr job pooled across the cluster; a failure is a record, as in run_job."""
    import time

    from ..dask_engine import pool_store

    rec = FileRecord(job.src, job.dest)
    t0 = time.perf_counter()
    try:
        res = pool_store(job.src, job.dest, pipe, axes=opts.axes, dtype=opts.dtype,
                         overwrite=opts.overwrite, protect=opts.protect,
                         run=lambda work: compute(client, work, on_tasks))
    except OutputRefused as e:  # an input named as the output: a usage error, as locally
        rec.status, rec.error, rec.usage_error, rec.stop = "error", str(e), True, True
    except FileExistsError as e:
        rec.status, rec.error, rec.exists = "error", str(e), True
    except PoolError as e:
        rec.status, rec.error, rec.usage_error = "error", str(e), True
    except (OSError, ValueError) as e:
        rec.status, rec.error = "error", f"cannot pool it on the cluster ({e})"
    else:
        return from_result(rec, res, t0)
    rec.seconds = time.perf_counter() - t0
    return rec


def pyramids_on_cluster(client: Any, inputs: list[str], dest: str, opts: Any,
                        on_level: Any = None, on_tasks: TaskCounts | None = None,
                        ) -> Iterator[Any]:
    """``pyramid_job.run_pyramids`` on ``client``'s cluster: a zarr or .npy input into an
    OME-Zarr as one graph across the workers (its tasks counted by ``on_tasks``), every
    other input as one task, retried when its worker is lost."""
    from dataclasses import replace

    from .pyramid_job import PyramidOutcome, one_pyramid, spreads

    distributed = _distributed()
    here = replace(opts, engine="local", scheduler=None, retried=True)
    spread = [src for src in inputs if spreads(src, dest)]
    futures = {client.submit(one_pyramid, src, dest, here, pure=False, retries=RETRIES): src
               for src in inputs if src not in spread}
    try:
        for src in spread:
            yield one_pyramid(src, dest, opts, on_level,
                              run=lambda work, done: compute(client, work, on_tasks, done))
        for fut in distributed.as_completed(futures):
            try:
                out = fut.result()
            except (PoolError, UsageError):
                raise  # a mistake in the options, found by the task
            except Exception as e:  # its task failed RETRIES + 1 times (workers lost)
                out = PyramidOutcome(futures[fut], [], "the cluster could not run it "
                                     f"({type(e).__name__})")
            for rec in out.records:
                if on_level is not None:
                    on_level(out.src, rec)
            yield out
    finally:
        for fut in futures:
            fut.cancel()
