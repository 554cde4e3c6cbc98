"""poolcli.pool against torch.nn.functional where PyTorch has the same operation."""

import itertools

import numpy as np
import pytest

from poolcli import pool

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def tensor(rng, shape, dtype, *, nonneg=False):
    x = rng.normal(size=shape)
    if nonneg:
        x = np.abs(x)
    return x.astype(dtype)


def close(got, want, dtype):
    assert got.dtype == np.dtype(dtype)
    want = want.numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype])


def spatial_shape(rng, nd):
    return tuple(int(v) for v in rng.integers(3, 9, size=nd))


def options(rng, nd, *, max_pool):
    k = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    s = tuple(int(v) for v in rng.integers(1, 4, size=nd))
    # PyTorch: padding <= half the kernel
    p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    d = tuple(int(v) for v in rng.integers(1, 3, size=nd)) if max_pool else (1,) * nd
    return k, s, p, d


MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_max_pool_with_indices(nd, dtype, seed):
    rng = np.random.default_rng(seed * 10 + nd)
    ceil = bool(seed % 2)
    k, s, p, d = options(rng, nd, max_pool=True)
    shape = (2, 3, *spatial_shape(rng, nd))
    x = tensor(rng, shape, dtype)
    if seed % 3 == 0:
        x = np.round(x).astype(dtype)  # ties: the first cell in window order wins
    kwargs = {"stride": s, "padding": p, "dilation": d, "ceil_mode": ceil}
    axes = tuple(range(2, 2 + nd))
    spans = [dd * (kk - 1) + 1 for kk, dd in zip(k, d, strict=True)]
    if any(sp > n + 2 * pp for sp, n, pp in zip(spans, shape[2:], p, strict=True)):
        # SPEC: a kernel longer than the padded input is an error (PyTorch's ceil mode
        # sometimes allows it)
        with pytest.raises(ValueError, match="kernel"):
            pool(x, "max", k, axes=axes, **kwargs)
        return
    try:
        want, want_idx = MAX[nd](
            torch.from_numpy(x), k, s, p, d, ceil_mode=ceil, return_indices=True
        )
    except RuntimeError:
        pytest.skip("PyTorch rejects these options (output too small)")
    got, idx = pool(x, "max", k, axes=axes, return_indices=True, **kwargs)
    close(got, want, dtype)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, want_idx.numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_avg_pool(nd, dtype, seed):
    rng = np.random.default_rng(seed * 10 + nd + 500)
    k, s, p, _ = options(rng, nd, max_pool=False)
    ceil, count_pad = bool(seed % 2), bool((seed // 2) % 2)
    divisor = int(rng.integers(1, 7)) if seed % 4 == 3 and nd > 1 else None
    shape = (2, 3, *spatial_shape(rng, nd))
    x = tensor(rng, shape, dtype)
    kwargs = {"ceil_mode": ceil, "count_include_pad": count_pad}
    if divisor is not None:
        kwargs["divisor_override"] = divisor
    try:
        want = AVG[nd](torch.from_numpy(x), k, s, p, **kwargs)
    except RuntimeError:
        pytest.skip("PyTorch rejects these options (output too small)")
    got = pool(x, "avg", k, stride=s, padding=p, axes=tuple(range(2, 2 + nd)), **kwargs)
    close(got, want, dtype)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_defaults_count_include_pad_and_ceil_drop_rule(kind):
    # the case where ceil mode's last window would start in the padding
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    want = fn(torch.from_numpy(x), 2, 2, 1, ceil_mode=True)
    got = pool(x, kind, 2, stride=2, padding=1, ceil_mode=True)
    assert got.shape == (1, 1, 3, 3) == tuple(want.shape)
    close(got, want, np.float64)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("norm", [1.0, 2.0, 3.0, 1.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lp_pool_nonnegative(nd, norm, dtype):
    rng = np.random.default_rng(int(norm * 10) + nd)
    for _ in range(3):
        k = tuple(int(v) for v in rng.integers(1, 4, size=nd))
        s = tuple(int(v) for v in rng.integers(1, 4, size=nd))
        x = tensor(rng, (2, 3, *spatial_shape(rng, nd)), dtype, nonneg=True)
        fn = F.lp_pool1d if nd == 1 else F.lp_pool2d
        # ceil_mode=False only: see test_lp_ceil_mode_partial_window_is_the_spec_norm
        want = fn(torch.from_numpy(x), norm, k if nd > 1 else k[0], s if nd > 1 else s[0])
        got = pool(x, "lp", k, stride=s, norm=norm, axes=tuple(range(2, 2 + nd)))
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want.numpy(), rtol=RTOL[dtype] * 10, atol=1e-6)


def test_lp_ceil_mode_partial_window_is_the_spec_norm():
    # PyTorch's lp_pool is avg_pool(x**p) * kernel_size, so a ceil-mode window cut short
    # by the input's end is scaled up by kernel/cells; SPEC defines lp as the p-norm of the
    # window's cells, so a cut window of one cell gives that cell.
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    got = pool(x, "lp", 2, norm=2.0, ceil_mode=True, axes=-1)
    np.testing.assert_allclose(got[0, 0], [np.sqrt(5.0), 5.0, 5.0], rtol=1e-12)
    full = F.lp_pool1d(torch.from_numpy(x), 2.0, 2, ceil_mode=True).numpy()
    np.testing.assert_allclose(got[0, 0, :2], full[0, 0, :2], rtol=1e-12)


OUTS = [(1, 1), (2, 3), (3, 2), (5, 7), (7, 5), (4, 4), (9, 11), (1, 6)]


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_max_and_avg(out, dtype):
    rng = np.random.default_rng(sum(out))
    for h, w in itertools.product((5, 8), (7, 9)):
        x = tensor(rng, (2, 3, h, w), dtype)
        want, want_idx = F.adaptive_max_pool2d(torch.from_numpy(x), out, return_indices=True)
        got, idx = pool(x, "max", output_size=out, return_indices=True)
        close(got, want, dtype)
        np.testing.assert_array_equal(idx, want_idx.numpy())
        close(
            pool(x, "avg", output_size=out), F.adaptive_avg_pool2d(torch.from_numpy(x), out), dtype
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_global_and_1d(dtype):
    rng = np.random.default_rng(5)
    x = tensor(rng, (2, 3, 6, 10), dtype)
    close(pool(x, "max", output_size=1), F.adaptive_max_pool2d(torch.from_numpy(x), 1), dtype)
    close(pool(x, "avg", output_size=1), F.adaptive_avg_pool2d(torch.from_numpy(x), 1), dtype)
    y = tensor(rng, (2, 3, 13), dtype)
    close(
        pool(y, "avg", output_size=5, axes=-1),
        F.adaptive_avg_pool1d(torch.from_numpy(y), 5),
        dtype,
    )


def test_single_nan_propagates_like_torch():
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 1, 2, 1] = np.nan
    want, want_idx = F.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    got, idx = pool(x, "max", 2, return_indices=True)
    np.testing.assert_array_equal(got, want.numpy())  # NaN positions and values alike
    np.testing.assert_array_equal(idx, want_idx.numpy())
    np.testing.assert_array_equal(pool(x, "avg", 2), F.avg_pool2d(torch.from_numpy(x), 2).numpy())
