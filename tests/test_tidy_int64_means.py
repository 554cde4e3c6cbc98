"""Tidy item 3: the mean of 64-bit integers comes from the window's exact sum, rounded
once to float64 and divided once: within one unit in the last place of the true mean
(bit-exact whenever that sum fits in 53 bits), whatever the size of the values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_pool

from poolcli import pool

# two roundings (the sum to float64, then the quotient) against the reference's one
ULPS = 2.0**-51


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64
    ok = np.abs(got - want) <= ULPS * np.abs(want)
    assert ok.all(), f"got {got[~ok][:4]} want {want[~ok][:4]}"


big = st.integers(2**62 - 2**40, 2**62)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_int64_avg_near_2_62_matches_the_exact_reference(data):
    h = data.draw(st.integers(1, 6), label="h")
    w = data.draw(st.integers(1, 6), label="w")
    sign = st.sampled_from([1, -1])
    cells = data.draw(st.lists(st.tuples(big, sign), min_size=h * w, max_size=h * w))
    x = np.array([v * s for v, s in cells], np.int64).reshape(h, w)
    k = data.draw(st.integers(1, min(h, w, 3)), label="k")
    stride = data.draw(st.integers(1, 2), label="s")
    pad = data.draw(st.integers(0, k // 2), label="p")
    opts = {"kernel": k, "stride": stride, "padding": pad,
            "ceil_mode": data.draw(st.booleans(), label="ceil")}
    _close(pool(x, "avg", **opts), ref_pool(x, "avg", **opts))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2**63 - 2**41, 2**64 - 1), min_size=8, max_size=8))
def test_uint64_avg_near_2_64_matches_the_exact_reference(vals):
    x = np.array(vals, np.uint64).reshape(2, 4)
    _close(pool(x, "avg", 2), ref_pool(x, "avg", 2))


def test_cancellation_keeps_the_small_mean():
    # float64 holds neither 2**62 + 1 nor 2**62 + 3: summed as floats the window gave 0
    x = np.array([[2**62 + 1, -(2**62)], [2**62 + 3, -(2**62)]], np.int64)
    assert pool(x, "avg", 2).tolist() == [[1.0]]
    assert pool(x, "avg", (1, 2)).tolist() == [[0.5], [1.5]]


def test_exact_sums_below_2_53_give_the_correctly_rounded_mean():
    rng = np.random.default_rng(5)
    x = rng.integers(-(2**50), 2**50, (9, 12), dtype=np.int64)
    got = pool(x, "avg", 3)
    want = [[float(Fraction(int(x[3 * i:3 * i + 3, 3 * j:3 * j + 3].sum()), 9))
             for j in range(4)] for i in range(3)]
    assert got.tolist() == want


@pytest.mark.parametrize("dt", [np.int64, np.uint64])
def test_nodata_and_divisor_override_with_huge_values(dt):
    x = np.array([[2**62 + 1, 7, 2**62 + 3, 2**62 + 1]], dt)
    got = pool(x, "avg", (1, 2), nodata=7)
    assert got.tolist() == [[float(2**62 + 1), float(2**62 + 2)]]
    over = pool(x, "avg", (1, 2), divisor_override=3)
    _close(over, np.array([[float(Fraction(2**62 + 8, 3)), float(Fraction(2**63 + 4, 3))]]))
