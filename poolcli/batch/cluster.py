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
from ..errors import PoolError
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
def client_for(scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """A Client of the scheduler at ``scheduler``, or of a LocalCluster started for the run."""
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
                                       silence_logs=50)
    with cluster, distributed.Client(cluster) as client:
        yield client


def run_on_cluster(client: Any, jobs_list: list[Job], pipe: Pipeline, opts: Options,
                   finished: Callable[[int, list[FileRecord]], bool]) -> None:
    """Run every job as a task on ``client``'s cluster; ``finished`` as in a local run.

    A zarr array into a zarr store is one job too big for one task: it is pooled
    chunk-parallel across the workers (``dask_engine.pool_store``), from here.
    """
    distributed = _distributed()
    stores = [i for i, job in enumerate(jobs_list)
              if is_zarr_path(job.src) and is_zarr_path(job.dest)]
    for i in stores:
        if finished(i, [_store_job(jobs_list[i], pipe, opts)]):
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


def _store_job(job: Job, pipe: Pipeline, opts: Options) -> FileRecord:
    """A zarr -> zarr job pooled across the cluster; a failure is a record, as in run_job."""
    import time

    from ..dask_engine import pool_store

    rec = FileRecord(job.src, job.dest)
    t0 = time.perf_counter()
    try:
        res = pool_store(job.src, job.dest, pipe, axes=opts.axes, dtype=opts.dtype,
                         overwrite=opts.overwrite, protect=opts.protect)
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
