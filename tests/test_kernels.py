"""Kernel internals a user cannot see directly: networks, accumulators, layouts, threads."""

import numpy as np
import pytest

from poolcli import pool
from poolcli.core.gather import network_select, selection_network
from poolcli.core.kinds import KINDS, acc_dtype
from poolcli.core.plan import make_plan


@pytest.mark.parametrize("k", range(1, 30))
def test_selection_network_selects_every_rank(k):
    x = np.random.default_rng(k).standard_normal((k, 300))
    x[:, :50] = np.round(x[:, :50])  # ties
    for r in {0, (k - 1) // 2, k - 1}:
        assert np.array_equal(network_select(list(x), r), np.sort(x, axis=0)[r])


def test_median_network_path_equals_sorting_path():
    x = np.random.default_rng(0).integers(0, 50, (61, 67)).astype(np.float32)
    fast = pool(x, "median", 3)  # whole windows: network
    slow = pool(x, "median", (3, 3), padding=((0, 0), (0, 0)), ignore_nan=True)
    sort = np.sort(x[:60, :66].reshape(20, 3, 22, 3).transpose(0, 2, 1, 3).reshape(20, 22, 9),
                   axis=-1)[..., 4]
    assert np.array_equal(fast, sort) and np.array_equal(slow, sort)
    assert len(selection_network(9, 4)) < 30


@pytest.mark.parametrize("dt,window,expect", [
    (np.uint8, 4, np.int16), (np.uint8, 128, np.int16), (np.uint8, 129, np.int32),
    (np.int16, 4, np.int32), (np.int32, 4, np.int64), (np.uint64, 4, np.uint64),
    (np.bool_, 9, np.int16), (np.float16, 4, np.float32)])
def test_narrow_accumulators_are_chosen_only_when_they_cannot_overflow(dt, window, expect):
    plan = make_plan((window, 1), "sum", (window, 1))
    assert acc_dtype(KINDS["sum"], np.dtype(dt), plan) == expect


@pytest.mark.parametrize("k", [(128, 1), (129, 1), (64, 4)])
def test_sums_at_the_accumulator_boundary_are_exact(k):
    x = np.full((260, 8), 255, np.uint8)
    got = pool(x, "sum", k)
    assert got.dtype == np.int64
    assert (got == 255 * k[0] * k[1]).all()
    avg = pool(x, "avg", k, dtype=np.uint8)
    assert (avg == 255).all()


def test_integer_avg_to_uint8_rounds_half_to_even_like_rint_of_float64():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for k in (2, 3, (2, 4)):
        exact = np.rint(pool(x, "avg", k, axes=(0, 1)))
        assert np.array_equal(pool(x, "avg", k, axes=(0, 1), dtype=np.uint8), exact)
    halves = np.array([[1, 2], [0, 0]], np.uint8)  # mean 0.75 -> 1; [1, 0, 0, 1] -> 0.5 -> 0
    assert pool(halves, "avg", 2, dtype=np.uint8)[0, 0] == 1
    assert pool(np.array([[1, 0], [0, 1]], np.uint8), "avg", 2, dtype=np.uint8)[0, 0] == 0
    assert pool(np.array([[3, 0], [0, 0]], np.uint8), "avg", (1, 2), dtype=np.uint8)[0, 0] == 2


def test_channels_last_layout_gives_the_same_cells_as_channels_first():
    x = np.random.default_rng(2).standard_normal((2, 37, 41, 3))
    for kind in KINDS:
        a = pool(x, kind, 3, stride=2, padding=1, axes=(1, 2))
        b = pool(np.moveaxis(x, -1, 1), kind, 3, stride=2, padding=1)
        assert np.array_equal(a, np.moveaxis(b, 1, -1), equal_nan=True), kind


def test_indices_in_channels_last_layout():
    x = np.random.default_rng(3).standard_normal((9, 10, 3))
    v, i = pool(x, "max", 3, stride=2, padding=1, axes=(0, 1), return_indices=True)
    for c in range(3):
        flat = x[..., c].ravel()
        assert np.array_equal(flat[i[..., c]], v[..., c])


@pytest.mark.parametrize("kind", list(KINDS))
def test_result_is_identical_whatever_the_thread_count(kind):
    x = np.random.default_rng(4).standard_normal((3, 300, 257)).astype(np.float32)
    x[0, 5, 5] = np.nan
    one = pool(x, kind, 3, stride=2, padding=1, threads=1)
    for t in (2, 3, 8):
        assert np.array_equal(pool(x, kind, 3, stride=2, padding=1, threads=t), one,
                              equal_nan=True)


def test_mean_of_64_bit_integers_does_not_wrap():
    big = np.array([[2**63, 2**63]], np.uint64)
    assert pool(big, "avg", (1, 2))[0, 0] == 2.0**63
    assert pool(np.array([[2**62, 2**62]], np.int64), "avg", (1, 2))[0, 0] == 2.0**62
    assert pool(big, "sum", (1, 2)).dtype == np.uint64  # sums keep NumPy's wrap-around
