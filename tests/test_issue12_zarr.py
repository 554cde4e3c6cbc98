"""Issue 12: zarr stores in and out, streamed chunk by chunk, equal to in-memory runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from clitools import one_error_line

from poolcli import Pipeline, pool
from poolcli.stores import pool_store

zarr = pytest.importorskip("zarr")

KINDS = ["max", "min", "avg", "sum", "l2", "lp", "median", "mode"]


def _store(path, x, chunks, zarr_format=3):
    a = zarr.create_array(store=str(path), shape=x.shape, chunks=chunks, dtype=x.dtype,
                          zarr_format=zarr_format)
    a[...] = x
    return a


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    return rng.integers(0, 9, (1, 1500, 160)).astype(np.float64)  # wide rows: many slabs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stage", ["k=3,s=2,p=1", "k=4,s=3,ceil=true", "k=3,s=1,d=2",
                                   "k=5,s=2,p=same"])
def test_every_seam_equals_in_memory(tmp_path, volume, kind, stage):
    # chunks of 37 x 53 cells divide neither the kernel, the stride nor the padding
    src = tmp_path / "in.zarr"
    _store(src, volume, (1, 37, 53))
    pipe = Pipeline.parse(f"{kind}:{stage}")
    res = pool_store(src, tmp_path / "out.zarr", pipe, memory_limit="1MiB", force_tiled=True)
    assert res.chunks > 2  # really cut into several slabs along the pooled axis
    got = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    want, _ = pipe.run(volume)
    np.testing.assert_array_equal(got, want)


def test_nodata_and_pipelines_stream_too(tmp_path, volume):
    src = tmp_path / "in.zarr"
    _store(src, volume, (2, 50, 64), zarr_format=2)  # v2 is read as well
    for text in ("avg:k=3,s=2,nodata=0 | max:k=2", "median:k=3,s=2,nodata=4"):
        pipe = Pipeline.parse(text)
        pool_store(src, tmp_path / "o.zarr", pipe, memory_limit="1MiB", force_tiled=True,
                   overwrite=True)
        got = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[...]
        np.testing.assert_array_equal(got, pipe.run(volume)[0])


def test_output_chunks_follow_the_input_scaled_by_the_stride(tmp_path, volume):
    _store(tmp_path / "in.zarr", volume, (1, 64, 100))
    pool_store(tmp_path / "in.zarr", tmp_path / "o.zarr", Pipeline.parse("max:k=2"))
    out = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert out.chunks == (1, 32, 50)  # (1, 64, 100) / stride 2
    assert out.metadata.zarr_format == 3


def test_cli_zarr_paths_inside_a_store_and_npy_to_zarr(exe, tmp_path, volume):
    g = zarr.open_group(str(tmp_path / "data.zarr"), mode="w")
    a = g.create_array("scans/raw", shape=volume.shape, chunks=(1, 33, 50), dtype=volume.dtype)
    a[...] = volume
    r = exe("avg", tmp_path / "data.zarr/scans/raw", "-k", 3, "-s", 2, "--memory-limit", "1MiB",
            "-o", tmp_path / "o.zarr")
    assert r.returncode == 0, r.stderr
    got = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[...]
    np.testing.assert_array_equal(got, pool(volume, "avg", 3, stride=2))
    np.save(tmp_path / "v.npy", volume)
    r = exe("max", tmp_path / "v.npy", "--memory-limit", "1MiB", "-o", tmp_path / "v.zarr")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "v.zarr"), mode="r")[...],
                                  pool(volume, "max", 2))
    r = exe("max", tmp_path / "data.zarr", "-o", tmp_path / "g.npy")
    assert r.returncode == 1
    assert "data.zarr" in one_error_line(r) and "scans" in one_error_line(r)
    again = exe("max", tmp_path / "v.npy", "-o", tmp_path / "v.zarr")
    assert again.returncode == 1 and "exists" in one_error_line(again)


def test_without_zarr_one_line_says_what_to_install(cli, tmp_path, monkeypatch, volume):
    np.save(tmp_path / "v.npy", volume)
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now fails
    r = cli("max", tmp_path / "v.npy", "-o", tmp_path / "v.zarr")
    assert r.returncode == 2
    assert "poolcli[zarr]" in one_error_line(r)
    assert not (tmp_path / "v.zarr").exists()
