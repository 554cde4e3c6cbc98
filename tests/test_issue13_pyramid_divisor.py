"""Issue 13, pyramids measured on a cluster: an avg level is its carried sums over the
level-0 cells under each block. Those counts are made once per level, as the product of
each pooled axis's line of counts (lazy lines chunked like the level on dask), and a
level without holes skips the search for empty blocks: the same values in less memory
and time, in memory and on dask."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from reference import ref_pool

from poolcli import pyramid


def _ref_level(x, i, axes, factors):
    """Level i as the mean of its level-0 blocks, rounded once (floats: from float64,
    whose sums of these few float32 cells are exact, as the pyramid's are)."""
    k = tuple(min(f**i, x.shape[a]) for a, f in zip(axes, factors, strict=True))
    if x.dtype.kind == "f":
        return ref_pool(x.astype(np.float64), "avg", k, ceil_mode=True,
                        axes=axes).astype(x.dtype)
    return ref_pool(x, "avg", k, ceil_mode=True, axes=axes, dtype=x.dtype)


@pytest.mark.parametrize("dtype, most", [(np.float32, 32), (np.uint8, 24)])
def test_an_avg_level_holds_its_sums_one_divisor_and_the_quotient(dtype, most):
    x = (np.random.default_rng(0).random((512, 1024)) * 250).astype(dtype)
    pyramid(x, 1, threads=1)  # plans and lazy imports made outside the measure
    tracemalloc.start()
    try:
        level = pyramid(x, 1, threads=1)[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # float32: float64 sums, int64 counts, the float64 quotient and the level, 28 bytes a
    # cell (36 when the counts were a level of ones multiplied axis by axis, and the
    # zero-count mask and fill came on top); uint8: 20 (29 before)
    assert peak / level.size < most


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64, np.float32])
def test_avg_levels_of_odd_shapes_equal_the_reference_in_memory_and_on_dask(dtype):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(5)
    x = (rng.random((3, 45, 37)) * 250).astype(dtype)
    axes, factors = (1, 2), (3, 2)  # a batch axis in front, two factors, odd lengths
    got = pyramid(x, factor=factors, axes=axes)
    lazy = pyramid(da.from_array(x, chunks=(2, 13, 11)), factor=factors, axes=axes)
    assert len(got) == len(lazy) > 3
    for i, (lv, lz) in enumerate(zip(got, lazy, strict=True)):
        want = x if i == 0 else _ref_level(x, i, axes, factors)
        np.testing.assert_array_equal(lz.compute(), lv, err_msg=f"dask level {i}")
        if x.dtype.kind == "f":
            # level 1's float sums are made in float32 (pool's dtype= casts the result),
            # so a float level may be an ulp or two off the correctly rounded mean
            np.testing.assert_allclose(lv, want, rtol=2.5e-7, atol=0, err_msg=f"level {i}")
        else:
            np.testing.assert_array_equal(lv, want, err_msg=f"level {i}")
