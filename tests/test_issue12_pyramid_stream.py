"""Issue 12: pyramids of zarr and .npy inputs larger than --memory-limit, slab by slab."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from rss import peak_rss

from poolcli import pyramid

zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).integers(0, 256, (3, 700, 530)).astype(np.uint8)


@pytest.mark.parametrize("kind", ["avg", "mode", "max", "median"])
def test_streamed_levels_equal_in_memory_levels(exe, tmp_path, volume, kind):
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=volume.shape,
                            chunks=(1, 100, 128), dtype=volume.dtype)
    src[...] = volume
    r = exe("pyramid", tmp_path / "in.zarr", "-o", tmp_path / "out.zarr", "--kind", kind,
            "--memory-limit", "1MiB", "--report", "json")
    assert r.returncode == 0, r.stderr
    levels = pyramid(volume, kind=kind)
    report = json.loads(r.stderr)["files"][0]["levels"]
    assert [lv["shape"] for lv in report] == [list(lv.shape) for lv in levels]
    g = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert sorted(g.array_keys(), key=int) == [str(i) for i in range(len(levels))]
    assert "_scratch" not in g  # carried sums are removed
    for i, lv in enumerate(levels):
        np.testing.assert_array_equal(g[str(i)][...], lv)


def test_streamed_nodata_pyramid_from_npy(cli, tmp_path, volume):
    y = volume.astype(np.float32)
    y[:, :300, :300][np.random.default_rng(1).random((3, 300, 300)) < 0.6] = -1
    np.save(tmp_path / "y.npy", y)
    r = cli("pyramid", tmp_path / "y.npy", "-o", tmp_path / "y.zarr", "--nodata", -1,
            "--memory-limit", "1MiB", "--ngff", "0.5")
    assert r.returncode == 0, r.stderr
    g = zarr.open_group(str(tmp_path / "y.zarr"), mode="r")
    assert g.attrs["ome"]["multiscales"][0]["axes"][0]["name"] == "z"
    for i, lv in enumerate(pyramid(y, nodata=-1)):
        np.testing.assert_array_equal(g[str(i)][...], lv)


@pytest.mark.slow
def test_peak_memory_of_a_pyramid_8x_the_limit(tmp_path):
    limit = 16 << 20
    shape = (8, 4096, 4096)  # 128 MiB of uint8: 8x the limit
    src = zarr.create_array(store=str(tmp_path / "big.zarr"), shape=shape,
                            chunks=(1, 512, 512), dtype=np.uint8)
    rng = np.random.default_rng(2)
    for z in range(shape[0]):
        src[z] = rng.integers(0, 256, shape[1:], dtype=np.uint8)
    # measured in a wrapper whose only child is the run: this process's other children
    # (workers of earlier tests) would otherwise count
    peak = peak_rss([sys.executable, "-m", "poolcli", "pyramid", str(tmp_path / "big.zarr"),
                     "-o", str(tmp_path / "out.zarr"), "--levels", "5", "--memory-limit",
                     str(limit), "-q"], timeout=600)
    if sys.platform == "linux":
        overhead = 128 << 20  # the README's fixed overhead of a streamed pyramid
        assert peak <= limit + overhead, f"peak RSS {peak / 2**20:.0f} MiB"
