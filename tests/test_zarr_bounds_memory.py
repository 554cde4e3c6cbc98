"""Zarr runs keep --memory-limit: a store pooled out of core is cut into blocks along
every axis whose cells and zarr's codec copies fit the limit (the real executable, its
peak RSS measured), or refused before any work when one output chunk cannot fit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from clitools import one_error_line
from rss import peak_rss

from poolcli import Pipeline, pool, pyramid
from poolcli.stores import CODEC_ALLOWANCE, block_bytes, block_grid, blocks, pool_store

zarr = pytest.importorskip("zarr")

# README, Promises > Memory: a zarr run stays within --memory-limit plus this
ZARR_OVERHEAD = 128 << 20
MiB = 1 << 20


def _big_store(path, shape, chunks, seed=0):
    """A uint8 zarr of random cells, written a chunk row at a time."""
    a = zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for i in range(0, shape[0], chunks[0]):
        n = min(chunks[0], shape[0] - i)
        a[i:i + n] = rng.integers(0, 256, (n, *shape[1:]), dtype=np.uint8)
    return a


def _run(*args):
    return peak_rss([sys.executable, "-m", "poolcli", *map(str, args), "-q"], timeout=600)


@pytest.mark.slow
def test_a_store_four_times_the_limit_stays_within_it(tmp_path):
    # 128 MiB in 4 MiB chunks; a row of output chunks (1024 x 8192) reads 32 MiB: more
    # than the whole limit, which is where slabs of whole chunk rows went over it
    limit = 32 * MiB
    src = _big_store(tmp_path / "in.zarr", (8192, 16384), (2048, 2048))
    peak = _run("max", tmp_path / "in.zarr", "-o", tmp_path / "out.zarr",
                "--memory-limit", limit)
    x = src[...]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[...],
                                  pool(x, "max", 2))
    if sys.platform == "linux":
        assert peak <= limit + ZARR_OVERHEAD, f"peak RSS {peak / MiB:.0f} MiB"


@pytest.mark.slow
def test_a_npy_into_a_store_and_a_pipeline_stay_within_the_limit(tmp_path):
    limit = 24 * MiB
    x = np.random.default_rng(1).integers(0, 256, (2048, 49152), dtype=np.uint8)  # 96 MiB
    np.save(tmp_path / "in.npy", x)
    peak = _run("avg", tmp_path / "in.npy", "-k", "3", "-s", "2", "-p", "1", "-o",
                tmp_path / "out.zarr", "--memory-limit", limit)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[...],
                                  pool(x, "avg", 3, stride=2, padding=1))
    if sys.platform == "linux":
        assert peak <= limit + ZARR_OVERHEAD, f"peak RSS {peak / MiB:.0f} MiB"
    src = _big_store(tmp_path / "s.zarr", (4, 2048, 8192), (1, 2048, 2048))  # 64 MiB
    peak = _run("run", "max:k=3,s=2,p=1 | median:k=2", tmp_path / "s.zarr", "-o",
                tmp_path / "p.zarr", "--memory-limit", 16 * MiB)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "p.zarr"))[...],
                                  Pipeline.parse("max:k=3,s=2,p=1 | median:k=2")(src[...]))
    if sys.platform == "linux":
        assert peak <= 16 * MiB + ZARR_OVERHEAD, f"peak RSS {peak / MiB:.0f} MiB"


@pytest.mark.slow
def test_a_streamed_pyramid_of_big_chunks_stays_within_the_limit(tmp_path):
    # chunks of 8 MiB against a 32 MiB limit: each read decodes a whole chunk
    limit = 32 * MiB
    src = _big_store(tmp_path / "in.zarr", (4, 4096, 8192), (1, 1024, 8192))  # 128 MiB
    peak = _run("pyramid", tmp_path / "in.zarr", "-o", tmp_path / "p.zarr", "--levels", "3",
                "--memory-limit", limit)
    g = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    for i, lv in enumerate(pyramid(src[...], levels=3)):
        np.testing.assert_array_equal(g[str(i)][...], lv)
    if sys.platform == "linux":
        assert peak <= limit + ZARR_OVERHEAD, f"peak RSS {peak / MiB:.0f} MiB"


def test_one_output_chunk_that_cannot_fit_is_refused_before_any_work(cli, tmp_path):
    # chunks of 64 MiB (as stored: the store itself is tiny, the chunk is mostly fill)
    zarr.create_array(store=str(tmp_path / "in.zarr"), shape=(8192, 8192),
                      chunks=(8192, 8192), dtype=np.uint8)
    r = cli("max", tmp_path / "in.zarr", "-o", tmp_path / "out.zarr", "--memory-limit",
            "48MiB")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "one output chunk of stage 'max:k=2'" in line and "--memory-limit" in line
    assert "input chunks 8192x8192" in line
    assert not (tmp_path / "out.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.zarr"]  # no temporary store left


def test_blocks_tile_the_output_once_within_the_budget():
    plan = Pipeline.parse("avg:k=3,s=2,p=1").plans((3, 1000, 700))[0]
    out_chunks, in_chunks = (1, 64, 50), (1, 128, 100)
    budget = 400_000
    grid, streams = block_grid(plan, out_chunks, in_chunks, 1, 8, budget, 10)
    assert block_bytes(plan, grid, out_chunks, in_chunks, 1, 8, streams) <= budget
    assert grid[2] == -(-350 // 50) and grid[1] < -(-500 // 64)  # rows whole, cut in y
    seen = np.zeros(plan.out_shape, int)
    x = np.random.default_rng(2).integers(0, 9, plan.in_shape).astype(np.uint8)
    want = pool(x, "avg", 3, stride=2, padding=1)
    for b in blocks(plan, grid, out_chunks):
        seen[b.out] += 1
        for s, c in zip(b.out, out_chunks, strict=True):  # whole output chunks
            assert s.start % c == 0
        from poolcli.core.engine import execute

        np.testing.assert_array_equal(execute(b.plan, x[b.key]), want[b.out])
    assert (seen == 1).all()


def test_codec_copies_of_big_chunks_count_against_the_budget():
    plan = Pipeline.parse("max:k=2").plans((8192, 8192))[0]
    cells = 1024 * 1024 * 4 + 512 * 512 * 4  # a block's input and output, float32
    # input chunks of 4 MiB: a decoded and an encoded one are within the allowance
    assert block_bytes(plan, (1, 1), (512, 512), (1024, 1024), 4, 4, 10) == cells
    # one chunk of 256 MiB: the same cells, but the whole chunk is decoded for them
    assert block_bytes(plan, (1, 1), (512, 512), (8192, 8192), 4, 4, 10) == (
        cells + 2 * 8192 * 8192 * 4 - CODEC_ALLOWANCE)


def test_fewer_chunks_in_flight_before_a_block_is_refused():
    # windows across a seam of 4 MiB chunks: a block meets 4 of them; 10 in flight would
    # hold 32 MiB of codec copies, 2 in flight hold 16 MiB (the allowance)
    plan = Pipeline.parse("max:k=3,s=2,p=1").plans((8192, 8192))[0]
    assert block_bytes(plan, (1, 1), (512, 512), (1024, 1024), 4, 4, 10) > 10 * MiB
    grid, streams = block_grid(plan, (512, 512), (1024, 1024), 4, 4, 10 * MiB, 10)
    assert streams == 2 and grid == (1, 1)
    assert block_bytes(plan, grid, (512, 512), (1024, 1024), 4, 4, streams) <= 10 * MiB


def test_pool_store_refuses_in_the_library_too(tmp_path):
    from poolcli.tiled import OverLimit

    zarr.create_array(store=str(tmp_path / "in.zarr"), shape=(4096, 4096),
                      chunks=(4096, 4096), dtype=np.float32)
    with pytest.raises(OverLimit, match="one output chunk"):
        pool_store(tmp_path / "in.zarr", tmp_path / "o.zarr", Pipeline.parse("max:k=2"),
                   memory_limit="16MiB")
    assert not (tmp_path / "o.zarr").exists()
