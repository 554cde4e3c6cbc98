"""--engine dask through the real executable: a folder and a zarr store on a real
LocalCluster (loopback), the same outputs as a local run; an unreachable scheduler is one
line and exit 1 before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import files_under, one_error_line, run_exe

from poolcli import Pipeline

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
pytestmark = pytest.mark.slow



def test_a_folder_with_engine_dask_equals_a_local_run(tmp_path, cluster):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        np.save(d / f"{i}.npy", rng.standard_normal((40, 30)).astype(np.float32))
    local = run_exe("avg", d, "-k", "3", "-s", "2", "-o", tmp_path / "local")
    remote = run_exe("avg", d, "-k", "3", "-s", "2", "-o", tmp_path / "remote",
                     "--engine", "dask", "--scheduler", cluster.scheduler_address,
                     "--report", "json")
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert files_under(tmp_path / "local") == files_under(tmp_path / "remote")
    for name in files_under(tmp_path / "local"):
        np.testing.assert_array_equal(np.load(tmp_path / "local" / name),
                                      np.load(tmp_path / "remote" / name))
    # warnings (cells k=3, s=2 never reads) come first; the dashboard is in the report
    summary = json.loads(remote.stderr[remote.stderr.index("{"):])["summary"]
    assert "note:" not in remote.stderr
    assert summary["ok"] == 5 and summary["dashboard"].startswith("http")


def test_a_zarr_store_is_pooled_chunk_parallel_on_the_cluster(tmp_path, cluster):
    x = np.random.default_rng(1).integers(0, 200, (90, 70), dtype=np.uint8)
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=x.shape, dtype=x.dtype,
                            chunks=(37, 23))
    src[...] = x
    p = run_exe("run", "max:k=3,s=2,p=1 | avg:k=2", tmp_path / "in.zarr", "-o",
                tmp_path / "out.zarr", "--engine", "dask", "--scheduler",
                cluster.scheduler_address)
    assert p.returncode == 0, p.stderr
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    want = Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2")(x)
    np.testing.assert_array_equal(out[...], want)
    assert out.dtype == want.dtype
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("command, out", [("max", "o.npy"), ("pyramid", "o.zarr")])
def test_an_unreachable_scheduler_is_one_line_and_exit_1(tmp_path, command, out):
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    p = run_exe(command, tmp_path / "a.npy", "-o", tmp_path / out, "--engine", "dask",
                "--scheduler", "tcp://127.0.0.1:9")
    assert p.returncode == 1
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in one_error_line(p)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.npy"]  # nothing written


def test_scheduler_without_the_dask_engine_is_a_usage_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    p = run_exe("max", tmp_path / "a.npy", "--scheduler", "tcp://127.0.0.1:9")
    assert p.returncode == 2
    assert "--scheduler applies to --engine dask only" in one_error_line(p)
