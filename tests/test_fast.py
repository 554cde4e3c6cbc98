"""poolcli.fast against the brute-force reference, and checks that each fast path is taken."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_pool

from poolcli import pool
from poolcli.core.fast import try_fast
from poolcli.core.kinds import result_dtype
from poolcli.core.plan import make_plan

PLAN_KEYS = ("kind", "kernel", "stride", "padding", "dilation", "ceil_mode",
             "count_include_pad", "divisor_override", "axes", "output_size", "ignore_nan",
             "return_indices")
INT_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]


def fast(x, **kw):
    """try_fast's result (None when it declines), for the options pool() would get."""
    plan = make_plan(x.shape, **{k: v for k, v in kw.items() if k in PLAN_KEYS})
    return try_fast(plan, x, result_dtype(plan, x.dtype, kw.get("dtype")), 1)


def values(rng, dtype, shape, *, few=False):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    if few:  # many ties: modes, equal sums
        lo = 0 if dtype.kind == "u" else -2
        return rng.integers(lo, lo + 3, size=shape, endpoint=True).astype(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def check(x, *, taken=True, threads=1, **kw):
    """pool() equals the reference bit for bit, and the fast path is (not) taken."""
    want = ref_pool(x, **kw)
    got = pool(x, threads=threads, **kw)
    if kw.get("return_indices"):
        np.testing.assert_array_equal(got[1], want[1])
        got, want = got[0], want[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    direct = fast(x, **kw)
    if taken:
        assert direct is not None, "the fast path declined"
        assert direct.dtype == want.dtype
        np.testing.assert_array_equal(direct, want)
    else:
        assert direct is None, "the fast path should decline"


# --- avg and sum ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (2, 5, 6), (2, 2)])
def test_avg_k2_to_own_dtype(dtype, shape):
    rng = np.random.default_rng(1)
    x = values(rng, dtype, shape)
    check(x, kind="avg", kernel=2, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_avg_default_float_and_other_dtypes(dtype):
    rng = np.random.default_rng(2)
    x = values(rng, dtype, (6, 10))
    check(x, kind="avg", kernel=2)  # float64 out
    for out in (np.float32, np.float16, np.int8, np.uint16, np.int64):
        check(x, kind="avg", kernel=2, dtype=out)


def test_avg_rounds_half_to_even_in_integers():
    # 2x2 sums 2, 6, 10, 14 are exact halves: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4.
    x = np.array([[1, 1, 3, 3, 5, 5, 7, 7], [0, 0, 0, 0, 0, 0, 0, 0]], np.uint8)
    out = fast(x, kind="avg", kernel=2, dtype=np.uint8)
    np.testing.assert_array_equal(out, [[0, 2, 2, 4]])
    check(x, kind="avg", kernel=2, dtype=np.uint8)
    xi = np.array([[-1, -2], [0, 0]], np.int8)  # -0.75 -> -1
    check(xi, kind="avg", kernel=2, dtype=np.int8)
    xh = np.array([[-1, -1], [0, 0]], np.int8)  # -0.5 -> -0
    check(xh, kind="avg", kernel=2, dtype=np.int8)


def test_avg_extremes_do_not_overflow_the_lanes():
    for dt in INT_DTYPES:
        info = np.iinfo(dt)
        for v in (info.min, info.max):
            x = np.full((4, 4, 4), v, dt)
            check(x, kind="avg", kernel=(2, 2, 2), dtype=dt)
            check(x, kind="sum", kernel=(2, 2, 2))


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16])
def test_avg_interleaved_channels(channels, dtype):
    rng = np.random.default_rng(channels)
    x = values(rng, dtype, (7, 9, channels))
    check(x, kind="avg", kernel=2, axes=(0, 1), dtype=dtype)
    check(x, kind="avg", kernel=2, axes=(0, 1))
    check(x, kind="sum", kernel=2, axes=(0, 1))


@pytest.mark.parametrize("kernel", [(2, 2, 2), (1, 2, 2), (2, 1, 2), (3, 2), (4, 2), (3, 3, 2)])
def test_avg_volumes_and_other_row_kernels(kernel):
    rng = np.random.default_rng(3)
    shape = tuple(2 * k + 1 for k in kernel)
    x = values(rng, np.uint8, shape)
    check(x, kind="avg", kernel=kernel, dtype=np.uint8)
    check(x, kind="avg", kernel=kernel)
    check(x, kind="sum", kernel=kernel)


@pytest.mark.parametrize("kernel", [3, (2, 3), (3, 1), (1, 3), (4, 4), (3, 3, 3), (5, 2)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint32, np.int32])
def test_avg_other_kernels_in_integers(kernel, dtype):
    rng = np.random.default_rng(21)
    ks = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x = values(rng, dtype, (*(2 * k + 1 for k in ks), 2))
    axes = tuple(range(len(ks)))
    pow2 = math.prod(ks) & (math.prod(ks) - 1) == 0 or ks[-1] == 2  # else: the engine
    check(x, kind="avg", kernel=kernel, axes=axes, dtype=dtype, taken=pow2)
    check(x, kind="avg", kernel=kernel, axes=axes)
    check(x, kind="sum", kernel=kernel, axes=axes)
    info = np.iinfo(dtype)
    for v in (info.min, info.max):
        check(np.full(x.shape, v, dtype), kind="avg", kernel=kernel, axes=axes, dtype=dtype,
              taken=pow2)


def test_avg_of_one_cell_windows():
    x = values(np.random.default_rng(22), np.uint8, (3, 5))
    check(x, kind="avg", kernel=1, dtype=np.uint8)
    check(x, kind="avg", kernel=(1, 1), dtype=np.int16)
    check(x, kind="sum", kernel=1)


def test_avg_exact_halves_other_kernels():
    # 3x2 windows: sums 3, 9, 15 -> 0.5, 1.5, 2.5 round to 0, 2, 2; -3 -> -0.5 -> 0.
    x = np.array([[1, 1, 3, 3, 5, 5, -1, -1], [1, 0, 3, 0, 5, 0, -1, 0],
                  [0, 0, 0, 0, 0, 0, 0, 0]], np.int16)
    np.testing.assert_array_equal(fast(x, kind="avg", kernel=(3, 2), dtype=np.float64),
                                  [[0.5, 1.5, 2.5, -0.5]])
    check(x, kind="avg", kernel=(3, 2), dtype=np.int16)  # integer division by 6
    y = np.array([[1, 1, 1, 3], [0, 0, 0, 3], [1, 0, 0, 3], [0, 0, 0, -1]], np.int8)
    # 4x4 window: sum 14 -> 0.875 -> 1; 4x2 windows: 2/8 -> 0, 8/8... via the integer path
    np.testing.assert_array_equal(fast(y, kind="avg", kernel=(4, 4), dtype=np.int8), [[1]])
    check(y, kind="avg", kernel=(4, 4), dtype=np.int8)
    z = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(fast(z, kind="avg", kernel=(4, 4), dtype=np.uint8), [[0]])
    check(z + np.eye(4, dtype=np.uint8)[::-1] * 4, kind="avg", kernel=(4, 4), dtype=np.uint8)


def test_batch_axes_and_one_pooled_axis():
    rng = np.random.default_rng(4)
    x = values(rng, np.uint8, (3, 4, 10))
    check(x, kind="avg", kernel=2, axes=(1, 2), dtype=np.uint8, threads=2)
    check(x, kind="avg", kernel=2, axes=2, dtype=np.uint8)
    check(x, kind="avg", kernel=(2,), axes=(2,))
    check(x, kind="sum", kernel=2, axes=(1, 2))


def test_bool_input():
    rng = np.random.default_rng(5)
    x = values(rng, np.bool_, (6, 8))
    check(x, kind="avg", kernel=2)
    check(x, kind="sum", kernel=2)
    check(x, kind="mode", kernel=2)
    check(x, kind="max", kernel=2)
    check(x, kind="min", kernel=2)


def test_adaptive_equal_windows_take_the_fast_path():
    rng = np.random.default_rng(6)
    x = values(rng, np.uint8, (8, 12))
    check(x, kind="avg", output_size=(4, 6), dtype=np.uint8)
    check(x, kind="avg", output_size=(3, 5), taken=False)  # unequal windows


def test_declines_where_windows_are_not_whole_blocks():
    rng = np.random.default_rng(7)
    x = values(rng, np.uint8, (7, 9))
    check(x, kind="avg", kernel=2, padding=1, dtype=np.uint8, taken=False)
    check(x, kind="avg", kernel=2, padding=1, count_include_pad=False, taken=False)
    check(x, kind="avg", kernel=2, ceil_mode=True, taken=False)  # partial windows
    check(x, kind="avg", kernel=2, stride=1, taken=False)
    check(x, kind="avg", kernel=2, dilation=2, taken=False)
    check(x, kind="avg", kernel=2, divisor_override=3, taken=False)
    check(x, kind="avg", kernel=2, axes=(1, 0), dtype=np.uint8)  # order given is fine
    check(x.T, kind="avg", kernel=2, taken=False)  # not C-contiguous
    check(x, kind="max", kernel=2, return_indices=True, taken=False)
    check(x.astype(np.float32), kind="avg", kernel=2, taken=False)
    check(x.astype(np.int64), kind="avg", kernel=2, taken=False)
    check(x[:6, :8].astype(np.uint8), kind="avg", kernel=2, ceil_mode=True)  # no partial


def test_non_native_byte_order_is_left_to_the_engine():
    x = values(np.random.default_rng(23), np.uint16, (6, 8))
    big = x.astype(">u2")
    for kw in (dict(kind="avg", kernel=2, dtype=np.uint16), dict(kind="mode", kernel=2),
               dict(kind="max", kernel=3, stride=1)):
        check(big, **kw, taken=False)
        np.testing.assert_array_equal(pool(big, **kw), pool(x, **kw))


def test_pooled_axes_must_be_consecutive():
    rng = np.random.default_rng(8)
    x = values(rng, np.uint8, (4, 3, 6))
    check(x, kind="avg", kernel=2, axes=(0, 2), taken=False)


def test_out_argument_of_the_engine():
    from poolcli.core.engine import execute

    x = values(np.random.default_rng(9), np.uint8, (8, 8))
    plan = make_plan(x.shape, "avg", 2)
    out = np.empty((4, 4), np.uint8)
    res = execute(plan, x, dtype=np.uint8, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ref_pool(x, "avg", 2, dtype=np.uint8))


# --- mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [*INT_DTYPES, np.int64, np.uint64])
@pytest.mark.parametrize("kernel", [2, (2, 2, 2), (1, 2), (2, 1), 3, (2, 3)])
def test_mode_ties_go_to_the_smallest(dtype, kernel):
    rng = np.random.default_rng(10)
    nd = 3 if isinstance(kernel, tuple) and len(kernel) == 3 else 2
    ks = kernel if isinstance(kernel, tuple) else (kernel,) * nd
    x = values(rng, dtype, tuple(3 * k + 1 for k in ks), few=True)
    check(x, kind="mode", kernel=kernel)


def test_mode_two_pairs_and_all_distinct():
    x = np.array([[5, 5, 9, 7], [2, 2, 8, 6]], np.uint8)
    # Left window: two pairs (5, 2) -> 2; right: all distinct -> 6.
    np.testing.assert_array_equal(fast(x, kind="mode", kernel=2), [[2, 6]])
    x = np.array([[7, 7], [7, 1]], np.int16)
    np.testing.assert_array_equal(fast(x, kind="mode", kernel=2), [[7]])
    x = np.array([[3, 1], [1, 3]], np.uint32)
    np.testing.assert_array_equal(fast(x, kind="mode", kernel=2), [[1]])


def test_mode_label_blobs_and_channels():
    rng = np.random.default_rng(11)
    lab = rng.integers(0, 5, (5, 6)).repeat(3, 0).repeat(3, 1).astype(np.uint32)
    check(lab, kind="mode", kernel=2, threads=2)
    rgb = values(rng, np.uint8, (6, 8, 3), few=True)
    check(rgb, kind="mode", kernel=2, axes=(0, 1))
    check(rgb, kind="mode", kernel=2, axes=(0, 1), dtype=np.int16)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint32, np.int32])
def test_mode_few_mixed_windows_are_gathered(dtype):
    rng = np.random.default_rng(19)
    x = np.full((40, 42), 7, dtype)
    spots = rng.integers(0, 40, (25, 2))
    x[spots[:, 0], spots[:, 1]] = rng.integers(-3, 9, 25).astype(dtype)  # < 1/4 mixed
    x[0, :4] = (1, 2, 2, 1)
    x[1, :4] = (2, 1, 3, 3)  # two pairs -> 1; a pair (3) and two singles -> 3
    out = fast(x, kind="mode", kernel=2)
    assert out[0, 0] == 1 and out[0, 1] == 3
    check(x, kind="mode", kernel=2)
    check(x[None].repeat(2, 0), kind="mode", kernel=(2, 2, 2))


def test_mode_of_big_windows_declines():
    x = values(np.random.default_rng(12), np.uint8, (8, 8), few=True)
    check(x, kind="mode", kernel=4, taken=False)
    check(x.astype(np.float32), kind="mode", kernel=2, taken=False)


# --- max and min -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [*INT_DTYPES, np.int64])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_max_min_blocks(dtype, kind):
    rng = np.random.default_rng(13)
    for kernel, shape in ((2, (7, 9)), ((2, 2, 2), (4, 5, 6)), (3, (7, 10)), ((2, 3), (5, 9))):
        x = values(rng, dtype, shape)
        check(x, kind=kind, kernel=kernel)
        check(x, kind=kind, kernel=kernel, dtype=np.float32)
    x = values(rng, dtype, (6, 8, 3))
    check(x, kind=kind, kernel=2, axes=(0, 1))


def test_max_of_floats_is_left_to_the_engine():
    x = np.array([[np.nan, 1.0], [2.0, 3.0]], np.float32)
    check(x, kind="max", kernel=2, taken=False)
    check(x, kind="max", kernel=2, ignore_nan=True, taken=False)


# --- random cases -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    dtype=st.sampled_from([*INT_DTYPES, np.bool_]),
    kind=st.sampled_from(["avg", "sum", "mode", "max", "min"]),
    kernel=st.lists(st.sampled_from([1, 2, 2, 3]), min_size=1, max_size=3),
    extra=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    channels=st.sampled_from([0, 1, 3, 4]),
    batch=st.sampled_from([0, 1, 2]),
    out=st.sampled_from([None, np.uint8, np.int16, np.float32]),
    few=st.booleans(),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_random_blocks_match_the_reference(dtype, kind, kernel, extra, channels, batch, out,
                                           few, threads, seed):
    rng = np.random.default_rng(seed)
    ks = tuple(kernel)
    shape = ((batch,) if batch else ()) + tuple(
        k + e for k, e in zip(ks, extra, strict=False)) + ((channels,) if channels else ())
    p0 = 1 if batch else 0
    axes = tuple(range(p0, p0 + len(ks)))
    x = values(rng, dtype, shape, few=few)
    kw = dict(kind=kind, kernel=ks, axes=axes)
    if out is not None and not (kind == "sum" and out == np.float32):
        kw["dtype"] = out
    want = ref_pool(x, **kw)
    got = pool(x, threads=threads, **kw)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    direct = fast(x, **kw)
    if direct is not None:
        np.testing.assert_array_equal(direct, want)
    if kind in ("avg", "sum") and ks[-1] == 2 and np.dtype(dtype).itemsize <= 4:
        assert direct is not None


# --- running max/min, stride 1 ----------------------------------------------------------


@pytest.mark.parametrize("kernel", [3, 4, 5, 7, 9, (3, 5), (8, 3)])
@pytest.mark.parametrize("padding", [0, 1, ((2, 0), (0, 1)), "same"])
def test_running_max_min_with_padding(kernel, padding):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(11, 13)).astype(np.float32)
    for kind in ("max", "min"):
        ks = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        pad_ok = padding in (0, "same") or (
            isinstance(padding, int) and padding <= min(ks) // 2) or (
            isinstance(padding, tuple) and all(max(p) <= k // 2 for p, k in zip(padding, ks,
                                                                              strict=True)))
        if not pad_ok:
            continue
        check(x, kind=kind, kernel=kernel, stride=1, padding=padding)
        check(x, kind=kind, kernel=kernel, stride=1, padding=padding, ceil_mode=True)


def test_running_nan_and_ignore_nan():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(9, 10))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:4, :4] = np.nan  # some all-NaN windows
    for kind in ("max", "min"):
        check(x, kind=kind, kernel=3, stride=1, padding=1)
        check(x, kind=kind, kernel=3, stride=1, padding=1, ignore_nan=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float64, np.float16])
def test_running_dtypes_batches_and_one_axis(dtype):
    rng = np.random.default_rng(16)
    x = (rng.integers(-50, 50, size=(2, 3, 8, 9)) % 200).astype(dtype)
    check(x, kind="max", kernel=5, stride=1, padding=2)
    check(x, kind="min", kernel=3, stride=1, axes=3, padding=(1,))
    check(x, kind="max", kernel=(3,), stride=1, axes=(3,))


def test_running_declines():
    x = np.random.default_rng(17).normal(size=(9, 10)).astype(np.float32)
    check(x, kind="max", kernel=3, stride=2, padding=1, taken=False)
    check(x, kind="max", kernel=3, stride=1, dilation=2, taken=False)
    check(x, kind="max", kernel=2, stride=1, taken=False)  # k < 3: the engine is direct
    check(x, kind="max", kernel=3, stride=1, return_indices=True, taken=False)
    check(x, kind="max", kernel=3, stride=1, dtype=np.int16, taken=False)
    check((x * 10).astype(np.uint8), kind="avg", kernel=3, stride=1, taken=False)
    check(x[..., None], kind="max", kernel=(3, 3), stride=1, axes=(0, 1), taken=False)


# --- tiles and threads ------------------------------------------------------------------


def test_many_tiles_on_two_threads(monkeypatch):
    import poolcli.core.fast as fast_mod

    monkeypatch.setattr(fast_mod, "TILE_BYTES", 200)
    monkeypatch.setattr(fast_mod, "THREAD_MIN_BYTES", 0)
    rng = np.random.default_rng(18)
    img = values(rng, np.uint8, (37, 50, 3))
    check(img, kind="avg", kernel=2, axes=(0, 1), dtype=np.uint8, threads=2)
    vol = values(rng, np.int16, (9, 21, 30))
    check(vol, kind="avg", kernel=(2, 2, 2), dtype=np.int16, threads=2)
    lab = values(rng, np.uint32, (3, 33, 40), few=True)
    check(lab, kind="mode", kernel=2, threads=2)
    blobs = rng.integers(-3, 3, (3, 11, 9)).repeat(3, 1).repeat(5, 2).astype(np.int16)
    check(blobs, kind="mode", kernel=2, threads=2)  # few mixed windows: gathered
    check(blobs, kind="mode", kernel=(1, 2, 2), threads=2)
    check(lab, kind="max", kernel=2, threads=2)
    f = rng.normal(size=(2, 41, 37)).astype(np.float32)
    check(f, kind="max", kernel=7, stride=1, padding=3, threads=2)
    check(f, kind="min", kernel=5, stride=1, padding=(0, 2), threads=2)


# --- the general mode (sorted window stacks) --------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32, np.bool_])
def test_general_mode_large_and_padded_windows(dtype):
    rng = np.random.default_rng(20)
    x = values(rng, dtype, (13, 14), few=True) if dtype != np.float32 else \
        rng.integers(-2, 2, (13, 14)).astype(dtype)
    check(x, kind="mode", kernel=4, taken=False)  # 16 cells: sort, then runs
    check(x, kind="mode", kernel=5, stride=2, padding=2, taken=False)
    check(x, kind="mode", kernel=3, stride=1, padding=1, ceil_mode=True, taken=False)
    check(x, kind="mode", output_size=(4, 5), taken=False)


def test_general_mode_nan():
    x = np.array([[0.0, 6.0, 1.0, 1.0], [np.nan, 2.0, 2.0, np.nan],
                  [3.0, np.nan, np.nan, 3.0], [5.0, 5.0, 4.0, 4.0]])
    for kw in ({}, {"ignore_nan": True}):
        check(x, kind="mode", kernel=4, **kw, taken=False)
        check(x, kind="mode", kernel=3, stride=1, padding=1, **kw, taken=False)


def test_mode_of_sorted_directly():
    from poolcli.core.fast import mode_of_sorted

    rows = np.array([[1, 1, 2, 2, 3], [0, 4, 4, 4, 9], [5, 6, 7, 8, 9], [2, 2, 2, 9, 9]],
                    np.uint8)
    np.testing.assert_array_equal(mode_of_sorted(rows), [1, 4, 5, 2])
    # Only the first 2, 1, 3 and 4 cells are real.
    np.testing.assert_array_equal(mode_of_sorted(rows, np.array([2, 1, 3, 4])), [1, 0, 5, 2])
