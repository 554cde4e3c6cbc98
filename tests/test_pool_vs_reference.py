"""poolcli.pool against the brute-force reference on many random small shapes and options."""

import numpy as np
import pytest
from reference import KINDS, ref_pool

from poolcli import pool

DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.int8,
    np.uint8,
    np.int32,
    np.int64,
    np.uint64,
    np.bool_,
]
EXACT_KINDS = ("max", "min", "median", "mode")
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5, np.dtype(np.float16): 2e-3}


def random_values(rng, dtype, shape, *, ties):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if ties:  # few distinct values: ties for max/min indices, median and mode
        lo = 0 if dtype.kind in "ub" else -2
        return rng.integers(lo, lo + 4, size=shape).astype(dtype)
    if dtype.kind == "f":
        x = rng.normal(0.0, 3.0, size=shape).astype(dtype)
        if rng.random() < 0.5:
            x[rng.random(shape) < 0.15] = np.nan
        return x
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    if dtype.itemsize == 1:
        lo, hi = info.min, info.max
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def random_case(rng):
    """A random valid (x, kwargs) pair: the reference decides what is valid."""
    while True:
        npool = int(rng.integers(1, 4))
        nbatch = int(rng.integers(0, 3))
        ndim = npool + nbatch
        pooled_sizes = [int(rng.integers(1, 8 if npool < 3 else 6)) for _ in range(npool)]
        batch_sizes = [int(rng.integers(1, 4)) for _ in range(nbatch)]
        if rng.random() < 0.5:
            positions = list(range(nbatch, ndim))  # pooled axes last (the default layout)
        else:
            positions = sorted(rng.choice(ndim, size=npool, replace=False).tolist())
        shape = [0] * ndim
        it = iter(batch_sizes)
        for a in range(ndim):
            shape[a] = pooled_sizes[positions.index(a)] if a in positions else next(it)
        axes_given = list(positions)
        if rng.random() < 0.3:
            rng.shuffle(axes_given)

        dtype = DTYPES[int(rng.integers(len(DTYPES)))]
        kind = str(rng.choice([*KINDS, "mean"]))
        kw = {"kind": kind}
        adaptive = rng.random() < 0.15

        def per_axis(make, as_int_prob=0.4, npool=npool):
            vals = [make() for _ in range(npool)]
            if rng.random() < as_int_prob:
                return vals[0]
            return tuple(vals)

        if adaptive:
            kw["output_size"] = per_axis(lambda: int(rng.integers(1, 6)))
        else:
            kw["kernel"] = per_axis(lambda: int(rng.integers(1, 5)))
            if rng.random() < 0.7:
                kw["stride"] = per_axis(lambda: int(rng.integers(1, 4)))
            if rng.random() < 0.4:
                kw["dilation"] = per_axis(lambda: int(rng.integers(1, 3)))
            form = rng.integers(6)
            if form == 1:
                kw["padding"] = int(rng.integers(0, 3))
            elif form == 2:
                kw["padding"] = tuple(int(rng.integers(0, 3)) for _ in range(npool))
            elif form == 3:
                kw["padding"] = tuple(
                    (int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(npool)
                )
            elif form == 4:
                kw["padding"] = "same"
            elif form == 5:
                kw["padding"] = "valid"
            if rng.random() < 0.4:
                kw["ceil_mode"] = True
            if kind in ("avg", "mean", "l2") and rng.random() < 0.5:
                kw["count_include_pad"] = bool(rng.random() < 0.5)
            if kind in ("avg", "mean") and rng.random() < 0.2:
                kw["divisor_override"] = int(rng.integers(1, 6))
        if kind == "lp":
            kw["norm"] = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        if dtype in (np.float64, np.float32, np.float16) and rng.random() < 0.4:
            kw["ignore_nan"] = True
        if kind in ("max", "min") and rng.random() < 0.5:
            kw["return_indices"] = True

        # pass axes unless the default picks the same axes in the same order
        last = axes_given == list(range(nbatch, ndim))
        by_kernel = not adaptive and isinstance(kw["kernel"], tuple)
        if not (last and (npool == min(ndim, 2) or by_kernel) and rng.random() < 0.5):
            kw["axes"] = tuple(axes_given) if npool > 1 or rng.random() < 0.5 else axes_given[0]

        x = random_values(rng, dtype, tuple(shape), ties=rng.random() < 0.35)
        try:
            expected = ref_pool(x, **kw)
        except (ValueError, TypeError):
            continue
        return x, kw, expected


def assert_matches(got, expected, x, kw):
    kind = kw["kind"]
    if kw.get("return_indices"):
        assert isinstance(got, tuple) and len(got) == 2
        (got, got_idx), (expected, exp_idx) = got, expected
        assert got_idx.dtype == np.int64
        np.testing.assert_array_equal(got_idx, exp_idx, err_msg=f"indices {kw}")
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape, kw
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype, kw)
    if kind in EXACT_KINDS or got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, expected, err_msg=str(kw))
        return
    rtol = RTOL[got.dtype]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"NaN at {kw}")
    # cancellation in sums/means: scale the tolerance by the same pooling of |x|
    scale = np.nan_to_num(ref_pool(np.abs(x), **{**kw, "dtype": np.float64}), nan=0.0)
    g, e = got.astype(np.float64), expected.astype(np.float64)
    ok = np.isnan(e) | (np.abs(g - e) <= rtol * (scale + np.abs(e)))
    assert ok.all(), f"{kw}\ngot {g[~ok][:5]} expected {e[~ok][:5]} (rtol {rtol})"


@pytest.mark.parametrize("seed", range(400))
def test_random_case_matches_reference(seed):
    rng = np.random.default_rng(seed)
    x, kw, expected = random_case(rng)
    got = pool(x, **kw)
    assert_matches(got, expected, x, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", [*KINDS, "mean"])
def test_every_kind_and_dtype_2d_with_padding(kind, dtype):
    rng = np.random.default_rng(hash((kind, np.dtype(dtype).str)) % 2**32)
    x = random_values(rng, dtype, (2, 7, 6), ties=kind in ("median", "mode"))
    kw = {"kind": kind, "kernel": (3, 2), "stride": (2, 1), "padding": 1, "ceil_mode": True}
    if kind in ("max", "min"):
        kw["return_indices"] = True
    assert_matches(pool(x, **kw), ref_pool(x, **kw), x, kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("kind", [*KINDS])
@pytest.mark.parametrize("ignore_nan", [False, True])
def test_nan_windows(kind, dtype, ignore_nan):
    x = np.arange(1.0, 25.0).reshape(4, 6).astype(dtype)
    x[0, 0] = np.nan  # one NaN in window (0, 0)
    x[2:4, 4:6] = np.nan  # window (1, 2) all NaN
    kw = {"kind": kind, "kernel": 2, "ignore_nan": ignore_nan}
    assert_matches(pool(x, **kw), ref_pool(x, **kw), x, kw)


@pytest.mark.parametrize("kind", ["avg", "l2", "lp", "sum"])
@pytest.mark.parametrize("target", [np.float32, np.float64, np.float16])
def test_dtype_override_float(kind, target):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 50, size=(5, 6)).astype(np.int32)
    kw = {"kind": kind, "kernel": 2, "padding": 1, "dtype": target}
    got = pool(x, **kw)
    assert got.dtype == np.dtype(target)
    assert_matches(got, ref_pool(x, **kw), x, kw)


def test_dtype_override_integer_rounds_half_even_and_clips():
    # README's documented choice for an integer dtype=: round half to even, clip to range
    x = np.array([[0, 1, 2, 3, 254, 255, 255, 255]], dtype=np.uint8)
    got = pool(x, "avg", (1, 2), dtype=np.uint8)  # means 0.5, 2.5, 254.5, 255
    assert got.dtype == np.uint8
    assert got.tolist() == ref_pool(x, "avg", (1, 2), dtype=np.uint8).tolist() == [[0, 2, 254, 255]]
    neg = pool(np.array([[-3.0, -4.0]]), "avg", (1, 2), dtype=np.uint8)
    assert neg.tolist() == [[0]]


def test_uint8_sum_over_a_large_window_does_not_wrap():
    x = np.full((2, 40, 40), 255, dtype=np.uint8)
    for k in (16, 20, 40):
        got = pool(x, "sum", k)
        assert got.dtype == np.int64
        assert np.all(got == 255 * k * k), k


def test_int8_sum_and_avg_extremes():
    x = np.full((1, 32, 32), -128, dtype=np.int8)
    assert np.all(pool(x, "sum", 32) == -128 * 32 * 32)
    assert np.all(pool(x, "avg", 32) == -128.0)
    assert np.all(pool(x, "l2", 32) == 128.0)


def test_uint64_sum_stays_uint64_and_large_values_are_exact():
    x = np.array([[2**63, 2**62, 1, 2]], dtype=np.uint64)
    got = pool(x, "sum", (1, 2))
    assert got.dtype == np.uint64
    assert got.tolist() == ref_pool(x, "sum", (1, 2)).tolist() == [[2**63 + 2**62, 3]]
    big = np.array([[2**64 - 1, 2**64 - 2]], dtype=np.uint64)
    assert pool(big, "max", (1, 2)).tolist() == [[2**64 - 1]]
    assert pool(big, "min", (1, 2), return_indices=True)[1].tolist() == [[1]]


def test_int64_max_is_exact_beyond_float_precision():
    x = np.array([[2**62 + 1, 2**62, 2**62 + 3, 2**62 + 2]], dtype=np.int64)
    assert pool(x, "max", (1, 2)).tolist() == [[2**62 + 1, 2**62 + 3]]
    assert pool(x, "median", (1, 4)).tolist() == [[2**62 + 1]]


@pytest.mark.parametrize(
    "kind,kw",
    [
        ("max", {"kernel": 3, "stride": 2, "padding": 1}),
        ("avg", {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
        ("sum", {"kernel": (2, 3), "dilation": 2}),
        ("l2", {"kernel": 2, "padding": "same", "stride": 3}),
        ("lp", {"kernel": 2, "norm": 3.0}),
        ("median", {"kernel": 3, "stride": 1}),
        ("mode", {"kernel": 2, "padding": 1}),
        ("min", {"output_size": (17, 9)}),
    ],
)
def test_threads_one_and_two_give_identical_results(kind, kw):
    rng = np.random.default_rng(3)
    if kind == "mode":
        x = rng.integers(0, 5, size=(3, 300, 260)).astype(np.uint8)
    else:
        x = rng.normal(size=(3, 300, 260)).astype(np.float32)
        x[rng.random(x.shape) < 0.001] = np.nan
    one = pool(x, kind, threads=1, **kw)
    two = pool(x, kind, threads=2, **kw)
    assert one.dtype == two.dtype
    assert np.array_equal(one, two, equal_nan=x.dtype.kind == "f")
    # and a corner of it against the reference
    corner = x[:1, :20, :20]
    ckw = {"kind": kind, **kw}
    assert_matches(pool(corner, threads=2, **ckw), ref_pool(corner, **ckw), corner, ckw)


def test_threads_identical_with_indices():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(4, 257, 255)).astype(np.int16)
    a, ia = pool(x, "max", 3, stride=2, padding=1, return_indices=True, threads=1)
    b, ib = pool(x, "max", 3, stride=2, padding=1, return_indices=True, threads=2)
    assert np.array_equal(a, b) and np.array_equal(ia, ib)
