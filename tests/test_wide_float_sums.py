"""A wider float dtype= is what sum and avg add in (as np.sum(x, dtype=) and torch do), so
float32 avg pyramids are the exact means SPEC 5 promises, in memory, streamed and on dask."""

from __future__ import annotations

import numpy as np
import pytest

from poolcli import pool, pyramid


def _cancelling(shape, seed=0):
    """float32 cells whose float32 sums lose what float64 sums keep (exactly: integers)."""
    rng = np.random.default_rng(seed)
    big = rng.choice([1e8, -1e8], shape)
    return (big + rng.integers(-50, 50, shape)).astype(np.float32)


def _exact_levels(x, count):
    """Each level's mean of its level-0 cells, summed exactly (float64 holds these
    integers), divided once and rounded once to float32."""
    x64, out = x.astype(np.float64), [x]
    for i in range(1, count):
        f = 2**i
        h, w = -(-x.shape[0] // f), -(-x.shape[1] // f)
        lv = np.empty((h, w), np.float32)
        for r in range(h):
            for c in range(w):
                block = x64[r * f:(r + 1) * f, c * f:(c + 1) * f]
                lv[r, c] = np.float32(block.sum() / block.size)
        out.append(lv)
    return out


@pytest.mark.parametrize("kind", ["sum", "avg", "l2"])
def test_a_wider_float_dtype_is_summed_in(kind):
    x = _cancelling((6, 40))
    got = pool(x, kind, (2, 4), dtype=np.float64)
    want = pool(x.astype(np.float64), kind, (2, 4))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float64
    assert not np.array_equal(pool(x, kind, (2, 4)).astype(np.float64), want) or kind == "l2"


def test_float32_avg_pyramid_levels_are_exact_means():
    x = _cancelling((37, 29))
    got = pyramid(x, levels=4)
    for i, (lv, want) in enumerate(zip(got, _exact_levels(x, 5), strict=True)):
        np.testing.assert_array_equal(lv, want, err_msg=f"level {i}")


def test_streamed_and_dask_float32_pyramids_agree_with_memory(cli, tmp_path):
    zarr = pytest.importorskip("zarr")
    da = pytest.importorskip("dask.array")
    x = _cancelling((300, 260), seed=1)
    want = pyramid(x, levels=4)
    z = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=x.shape, dtype=x.dtype,
                          chunks=(64, 64))
    z[...] = x
    p = cli("pyramid", tmp_path / "in.zarr", "-o", tmp_path / "o.zarr", "--levels", "4",
            "--memory-limit", "1MiB", "-q")  # streamed: the input, sums and a level > 1MB
    assert p.returncode == 0, p.stderr
    g = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    lazy = pyramid(da.from_array(x, chunks=(70, 50)), levels=4)
    for i, w in enumerate(want):
        np.testing.assert_array_equal(g[str(i)][...], w, err_msg=f"streamed level {i}")
        np.testing.assert_array_equal(lazy[i].compute(), w, err_msg=f"dask level {i}")
