"""`poolcli pyramid --engine dask` on a real LocalCluster (processes, loopback): the same
levels, files and metadata as a local run; a worker killed mid-pyramid loses nothing;
the cluster's tasks drive the progress bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys

import numpy as np
import pytest
from clitools import files_under, one_error_line, run_exe
from PIL import Image

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
pytestmark = pytest.mark.slow



def _zarr(path, x, chunks):
    z = zarr.create_array(store=str(path), shape=x.shape, dtype=x.dtype, chunks=chunks)
    z[...] = x
    return path


def _doc(stderr: str) -> dict:
    """The JSON report: all of standard error (the dashboard is in it, not a note)."""
    return json.loads(stderr)


def _same_ome_zarr(a, b):
    """Two OME-Zarr images with the same datasets, values, dtypes, chunks and metadata."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert dict(ga.attrs) == dict(gb.attrs)
    names = sorted(k for k, _ in ga.arrays())
    assert names == sorted(k for k, _ in gb.arrays()) and names
    for k in names:
        assert ga[k].dtype == gb[k].dtype and ga[k].chunks == gb[k].chunks
        np.testing.assert_array_equal(ga[k][...], gb[k][...], err_msg=f"level {k}")
    return len(names)


@pytest.mark.parametrize("kind, dtype", [("avg", np.uint16), ("max", np.float32),
                                         ("mode", np.uint8), ("median", np.int16)])
def test_a_zarr_pyramid_on_the_cluster_equals_the_local_one(tmp_path, cluster, kind, dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 9 if kind == "mode" else 3000, (181, 203)).astype(dtype)
    src = _zarr(tmp_path / "in.zarr", x, (37, 29))  # seams that no factor divides
    args = ["pyramid", src, "--kind", kind, "--report", "json"]
    local = run_exe(*args, "-o", tmp_path / "local.zarr")
    remote = run_exe(*args, "-o", tmp_path / "remote.zarr", "--engine", "dask",
                     "--scheduler", cluster.scheduler_address)
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert _same_ome_zarr(tmp_path / "local.zarr", tmp_path / "remote.zarr") == 9
    assert _doc(remote.stderr)["dashboard"].startswith("http")
    assert "dashboard" not in _doc(local.stderr)
    shapes = [[lv["level"], lv["shape"]] for lv in _doc(remote.stderr)["files"][0]["levels"]]
    assert shapes == [[lv["level"], lv["shape"]]
                      for lv in _doc(local.stderr)["files"][0]["levels"]]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary


def test_channels_nodata_and_a_npy_on_the_cluster(tmp_path, cluster):
    """A .npy volume with channels last (stored channel-first, NGFF's order) and nodata
    holes: the transposed, hole-aware path, as locally."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 250, (70, 90, 3)).astype(np.uint8)
    x[rng.random(x.shape) < 0.2] = 255
    np.save(tmp_path / "in.npy", x)
    args = ["pyramid", tmp_path / "in.npy", "--axes", "0,1", "--axes-names", "yxc",
            "--nodata", "255", "--ngff", "0.5", "-q"]
    local = run_exe(*args, "-o", tmp_path / "local.zarr")
    remote = run_exe(*args, "-o", tmp_path / "remote.zarr", "--engine", "dask",
                     "--scheduler", cluster.scheduler_address)
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert _same_ome_zarr(tmp_path / "local.zarr", tmp_path / "remote.zarr") == 8
    assert zarr.open_group(str(tmp_path / "remote.zarr"), mode="r")["0"].shape == (3, 70, 90)


def test_a_folder_of_images_is_one_task_per_file_with_the_same_files(tmp_path, cluster):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50 + i, 70, 3), dtype=np.uint8)).save(
            d / f"p{i}.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    local = run_exe("pyramid", d, "-o", str(tmp_path / "local") + "/", "--levels", "3", "-q")
    remote = run_exe("pyramid", d, "-o", str(tmp_path / "remote") + "/", "--levels", "3", "-q",
                     "--engine", "dask", "--scheduler", cluster.scheduler_address)
    assert local.returncode == remote.returncode == 1  # the broken file, in both
    assert one_error_line(remote).startswith(f"poolcli: error: {d / 'broken.png'}: ")
    names = files_under(tmp_path / "local")
    assert names == files_under(tmp_path / "remote") and len(names) == 12
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == \
            (tmp_path / "remote" / name).read_bytes(), name


def test_a_worker_killed_mid_pyramid_loses_nothing(tmp_path, cluster):
    from poolcli.batch.pyramid_job import PyramidOptions, run_pyramids
    from poolcli.pyramid import pyramid

    x = np.random.default_rng(6).integers(0, 60000, (2400, 2000)).astype(np.uint16)
    src = _zarr(tmp_path / "in.zarr", x, (128, 128))
    client = distributed.Client(cluster)
    pids = list(client.run(os.getpid).values())
    killed = []

    def tasks(done, total):
        if not killed and done >= total // 5:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(done)

    opts = PyramidOptions(engine="dask", scheduler=cluster.scheduler_address)
    [out] = run_pyramids([str(src)], str(tmp_path / "out.zarr"), opts, on_tasks=tasks)
    client.close()
    assert killed and out.error is None
    g = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    for i, want in enumerate(pyramid(x)):
        np.testing.assert_array_equal(g[str(i)][...], want, err_msg=f"level {i}")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_progress_bar_counts_the_clusters_tasks_on_a_terminal(tmp_path, cluster):
    x = np.random.default_rng(7).integers(0, 255, (1500, 1500)).astype(np.uint8)
    src = _zarr(tmp_path / "in.zarr", x, (100, 100))
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "poolcli", "max", str(src), "-o", str(tmp_path / "o.zarr"),
         "--engine", "dask", "--scheduler", cluster.scheduler_address],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0, seen.decode(errors="replace")
    os.close(main)
    text = seen.decode(errors="replace")
    counts = [tuple(map(int, m)) for m in __import__("re").findall(r"(\d+)/(\d+)", text)]
    assert "tasks" in text and counts, text
    assert any(done < total for done, total in counts) or len(set(counts)) > 1
    assert max(total for _, total in counts) >= 225  # one task per chunk at least
