"""Folders on a real dask LocalCluster (processes on loopback): the same outputs, naming,
records and atomic writes as a local run, and no output lost when a worker is killed."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from poolcli import Pipeline, PoolError
from poolcli.batch import runner
from poolcli.batch.cluster import ClusterError, client_for
from poolcli.batch.report import FileRecord

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


class Collect:
    def __init__(self, on_first=None):
        self.records: list[FileRecord] = []
        self.on_first = on_first

    def finished(self, record, notes):
        self.records.append(record)
        if self.on_first is not None and len(self.records) == 1:
            self.on_first()

    def advanced(self, done, total, failed, current):
        pass



def _folder(tmp_path: Path, n: int, size=(300, 400)) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        np.save(d / f"{i:02d}.npy", rng.standard_normal(size).astype(np.float32))
    (d / "broken.npy").write_bytes(b"\x93NUMPY not really")
    return d


def _opts(d: Path, out: Path, **kw) -> runner.BatchOptions:
    return runner.BatchOptions(pipeline=Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2"),
                               inputs=(str(d),), output=str(out), **kw)


def test_a_folder_on_the_cluster_equals_a_local_run(tmp_path, cluster):
    d = _folder(tmp_path, 6)
    local = _opts(d, tmp_path / "local")
    remote = _opts(d, tmp_path / "remote", engine="dask", scheduler=cluster.scheduler_address)
    res_local = runner.run(local, runner.plan(local), Collect())
    res_remote = runner.run(remote, runner.plan(remote), Collect())
    assert (res_remote.tally.ok, res_remote.tally.failed) == (6, 1) == (
        res_local.tally.ok, res_local.tally.failed)
    for i in range(6):
        a = np.load(tmp_path / "local" / f"{i:02d}.npy")
        b = np.load(tmp_path / "remote" / f"{i:02d}.npy")
        np.testing.assert_array_equal(a, b)
    bad = [r for r in res_remote.records if r.status != "ok"]
    assert bad[0].input.endswith("broken.npy") and "cannot read" in bad[0].error
    # records come back in input order, each done by a worker process, not this one
    assert [r.input for r in res_remote.records] == [r.input for r in res_local.records]
    assert all(r.pid != os.getpid() for r in res_remote.records)


def test_a_worker_killed_mid_run_loses_no_output(tmp_path, cluster):
    d = _folder(tmp_path, 24, size=(1500, 1500))
    client = distributed.Client(cluster)
    pids = list(client.run(os.getpid).values())

    def kill_one():
        os.kill(pids[0], signal.SIGKILL)

    opts = _opts(d, tmp_path / "out", engine="dask", scheduler=cluster.scheduler_address)
    res = runner.run(opts, runner.plan(opts), Collect(on_first=kill_one))
    client.close()
    assert res.tally.ok == 24 and res.tally.failed == 1
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{i:02d}.npy" for i in range(24)]  # no .part file left behind
    for i in (0, 11, 23):
        x = np.load(d / f"{i:02d}.npy")
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{i:02d}.npy"),
                                      opts.pipeline(x))


def test_an_unreachable_scheduler_is_one_error_before_any_work():
    where = "tcp://127.0.0.1:9"
    said = re.escape(f"cannot reach the dask scheduler at {where}")
    with pytest.raises(ClusterError, match=said), client_for(where):
        pass


def test_an_unknown_engine_is_refused():
    with pytest.raises(PoolError, match="engine='spark'"):
        runner.BatchOptions(pipeline=Pipeline.parse("max"), inputs=("x",), engine="spark")


def test_the_memory_limit_is_each_local_workers_limit():
    with client_for(None, 2, 300 * 2**20) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["memory_limit"] for w in workers] == [300 * 2**20] * 2
