"""pool(): plan the operation once, then run the kernels over cache-sized tiles on threads."""

from __future__ import annotations

import itertools
import math
import os
from functools import lru_cache
from typing import Any

import numpy as np

from . import kernels as K
from .errors import PoolError
from .fast import try_fast
from .plan import AxisPlan, PoolPlan, make_plan

# Input bytes one tile reads: small enough that a tile's partial results stay in the
# L2 cache between the per-axis passes, large enough that NumPy's per-call cost vanishes.
TILE_BYTES = 2 * 1024 * 1024


def pool(x: Any, kind: str = "max", kernel: int | tuple[int, ...] = 2,
         stride: int | tuple[int, ...] | None = None, padding: Any = 0,
         dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
         count_include_pad: bool | None = None, divisor_override: float | None = None,
         norm: float = 2.0, axes: int | tuple[int, ...] | None = None,
         output_size: int | tuple[int | None, ...] | None = None, ignore_nan: bool = False,
         return_indices: bool = False, dtype: Any = None,
         threads: int | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pool ``x`` over some of its axes with windows of ``kernel`` cells.

    Parameters
    ----------
    x : array_like of bool, integer or floating dtype, ndim >= 1.
    kind : "max", "min", "avg" (or "mean"), "sum", "l2", "lp", "median" or "mode".
    kernel, stride, dilation : int or one int per pooled axis; ``stride=None`` is the kernel.
    padding : int, one int per axis, (before, after) pairs, "valid" or "same".
    ceil_mode : use ceil instead of floor for the output length (PyTorch's rule).
    count_include_pad : whether padded zeros count in avg/l2's divisor (default True,
        False for "same").
    divisor_override : the divisor for avg instead of the cell count.
    norm : p for kind "lp".
    axes : the pooled axes (default: the last ``len(kernel)``, or the last two).
    output_size : adaptive pooling to this many windows per axis (1 = global pooling).
    ignore_nan : skip NaN cells instead of propagating them.
    return_indices : for max/min, also return the flat index of each chosen cell.
    dtype : the output dtype (floats are rounded half to even and clipped for integers).
    threads : worker threads (None = all cores); the result does not depend on it.

    Returns
    -------
    ndarray, or (ndarray, int64 ndarray) with ``return_indices``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1, 17).reshape(4, 4)
    >>> pool(x, "max", 2)
    array([[ 6,  8],
           [14, 16]])
    >>> pool(x, "avg", 2)
    array([[ 3.5,  5.5],
           [11.5, 13.5]])
    >>> pool(x, "max", 3, stride=2, padding=1, return_indices=True)[1]
    array([[ 5,  7],
           [13, 15]])
    >>> pool(np.zeros((1, 1, 5, 5)), "max", 2, ceil_mode=True).shape
    (1, 1, 3, 3)
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"pool() needs a bool, integer or floating array, got dtype "
                        f"{arr.dtype}; convert it first (complex: take .real or abs())")
    plan = make_plan(arr.shape, kind, kernel, stride, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, norm, axes, output_size,
                     ignore_nan, return_indices)
    return execute(plan, arr, dtype=dtype, threads=threads)


def resolve_threads(threads: int | None) -> int:
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {threads!r}")
    if threads < 1:
        raise PoolError(f"threads {threads} must be >= 1 (or None for all cores)")
    return threads


def result_dtype(plan: PoolPlan, in_dtype: np.dtype, dtype: Any = None) -> np.dtype:
    """The dtype pool() returns for this plan and input dtype."""
    if dtype is not None:
        try:
            out = np.dtype(dtype)
        except TypeError:
            raise PoolError(f"dtype {dtype!r} is not a NumPy dtype; use e.g. uint8, "
                            "float32") from None
        if out.kind not in "biuf":
            raise PoolError(f"dtype {out} is not allowed; use a bool, integer or float dtype")
        return out
    return K.KINDS[plan.kind].out_dtype(np.dtype(in_dtype))


def execute(plan: PoolPlan, x: np.ndarray, *, dtype: Any = None, threads: int | None = None,
            out: np.ndarray | None = None, rows: tuple[int, int, int] | None = None,
            ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run a plan on an array of the plan's shape (``out``: where to write the result).

    ``rows=(o0, o1, r0)`` computes only output rows o0..o1 of the first pooled axis from
    an ``x`` that holds input rows r0.. of it (all those windows read); the out-of-core
    path feeds chunks this way, and every cell comes out as in a whole-array run.
    """
    nthreads = resolve_threads(threads)
    kind = K.KINDS[plan.kind]
    final = result_dtype(plan, x.dtype, dtype)
    if rows is None:
        fast = try_fast(plan, x, final, nthreads, out)
        if fast is not None:
            return fast
    lo, hi, r_off = (0, plan.axis_plans[0].out, 0) if rows is None else rows
    if out is None:
        shape = list(plan.out_shape)
        shape[plan.axes[0]] = hi - lo
        out = np.empty(shape, final)
    res = out
    xr, res_r = _working_views(plan, x, res)
    axes_r = tuple(a - plan.axes[0] + 1 for a in plan.axes)
    shape_r = res_r.shape
    idx = np.empty(shape_r, np.int64) if plan.return_indices else None

    if plan.return_indices:
        def work(tile):
            _arg_tile(kind, plan, xr, axes_r, res_r, idx, tile, (r_off, lo))
    elif kind.separable:
        def work(tile):
            _separable_tile(kind, plan, xr, axes_r, res_r, tile, (r_off, lo))
    else:
        def work(tile):
            _select_tile(kind, plan, xr, axes_r, res_r, tile, (r_off, lo))

    tiles = _tiles(plan, kind, xr, shape_r, nthreads, lo, hi)
    if len(tiles) > 1:
        # One task per thread, each taking every n-th tile: a future per tile costs more
        # than a small tile's work, and interleaving balances ragged last tiles. Even one
        # thread runs off the main thread: glibc gives the main thread's multi-MiB
        # temporaries fresh mmap'd pages each time, and page faults cost 7x the work here.
        from concurrent.futures import ThreadPoolExecutor

        n = min(nthreads, len(tiles))
        with ThreadPoolExecutor(n) as ex:
            done = [ex.submit(_run_all, work, tiles[i::n]) for i in range(n)]
            for f in done:
                f.result()
    else:
        for t in tiles:
            work(t)
    if idx is not None:
        return res, _unpermute(plan, idx, res.shape)
    return res


def _working_views(plan: PoolPlan, x: np.ndarray, res: np.ndarray):
    """(input, output) as (batch, first pooled axis, ..., last pooled axis) arrays.

    Batch axes in front of the pooled ones merge into one, so a tile can hold many small
    images at once. A few trailing batch axes (an image's channels) move to the front as
    well, as views: NumPy's inner loops then run along a pooled axis instead of over 3
    channels at a time, which was 3x slower.
    """
    p0, last = plan.axes[0], plan.axes[-1]
    trailing = tuple(range(last + 1, x.ndim))
    region = tuple(range(p0, last + 1))
    if trailing and math.prod(x.shape[a] for a in trailing) <= 16:
        perm = (*range(p0), *trailing, *region)
        xt, rt = x.transpose(perm), res.transpose(perm)
        nb = math.prod(xt.shape[: p0 + len(trailing)])
        try:
            return (_as_view(xt, (nb, *x.shape[p0:last + 1])),
                    _as_view(rt, (nb, *res.shape[p0:last + 1])))
        except AttributeError:
            pass  # the batch axes cannot merge without a copy: keep the natural layout
    nb = math.prod(x.shape[:p0])
    return (x.reshape((nb, *x.shape[p0:])),
            _as_view(res, (nb, *res.shape[p0:])))


def _as_view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape without copying (AttributeError if the strides do not allow it)."""
    v = a.view()
    v.shape = shape
    return v


def _unpermute(plan: PoolPlan, idx_r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Indices were written in the working layout; give them the output's layout."""
    out = np.empty(shape, np.int64)
    _, out_r = _working_views(plan, out, out)
    out_r[...] = idx_r
    return out


def _run_all(work, tiles) -> None:
    for t in tiles:
        work(t)


# --- tiles -------------------------------------------------------------------------------


def _tiles(plan: PoolPlan, kind: K.Kind, xr: np.ndarray, shape_r: tuple,
           nthreads: int, lo: int, hi: int) -> list[tuple[int, int, int, int]]:
    """(b0, b1, o0, o1) blocks: batch range and output rows lo..hi of the first pooled axis."""
    nb = xr.shape[0]
    ap0 = plan.axis_plans[0]
    itemsize = max(xr.itemsize, 4)
    per_b_in = math.prod(xr.shape[1:]) * itemsize
    per_row_out = math.prod(shape_r[2:]) * itemsize
    per_row_in = per_b_in / ap0.n * (ap0.kernel if ap0.adaptive else max(ap0.stride, 1))
    if not kind.separable and not plan.return_indices:
        # Median/mode gather every window's cells: the stack is what must fit.
        per_row_in = max(per_row_in, per_row_out * plan.window_size * 2)
    per_b = per_row_in * (hi - lo)
    want = 4 * nthreads if nthreads > 1 else 1
    if nb > 1 and per_b <= TILE_BYTES:
        step = max(1, min(int(TILE_BYTES // max(per_b, 1)), -(-nb // want)))
        return [(b, min(b + step, nb), lo, hi) for b in range(0, nb, step)]
    rows = max(1, int(TILE_BYTES // max(per_row_in, 1)))
    if nb * -(-(hi - lo) // rows) < want:
        rows = max(1, -(-(hi - lo) * nb // want))
    # Rows outer, batch inner: channels moved to the batch axis read the same cache lines.
    return [(b, b + 1, o, min(o + rows, hi)) for o in range(lo, hi, rows) for b in range(nb)]


def _rows(ap: AxisPlan, o0: int, o1: int) -> tuple[int, int]:
    """The input range along an axis that windows o0..o1 read."""
    if ap.adaptive:
        starts, ends = ap.bounds()
        return int(starts[o0]), int(ends[o1 - 1])
    r0 = max(0, o0 * ap.stride - ap.before)
    r1 = min(ap.n, (o1 - 1) * ap.stride - ap.before + ap.span)
    return r0, r1


def _steps(plan: PoolPlan, axes_r: tuple[int, ...], o0: int, o1: int, r0: int):
    """(axis, plan, first window, last window, shift, base) per pooled axis, tile axis first."""
    ap0 = plan.axis_plans[0]
    yield axes_r[0], ap0, o0, o1, -ap0.before - r0, r0
    for a, ap in zip(axes_r[1:], plan.axis_plans[1:], strict=True):
        yield a, ap, 0, ap.out, -ap.before, 0


def _separable_tile(kind: K.Kind, plan: PoolPlan, xr: np.ndarray, axes_r, res, tile,
                    off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = _rows(plan.axis_plans[0], o0, o1)
    src = xr[b0:b1, r0 - off[0]:r1 - off[0]]
    dest = res[b0:b1, o0 - off[1]:o1 - off[1]]
    acc_dt = K.acc_dtype(kind, xr.dtype, plan)
    natural = kind.out_dtype(xr.dtype)
    ufunc = K.combiner(kind, plan)
    ident = K.identity_of(kind, plan, acc_dt)
    nan_count = None
    if plan.ignore_nan and kind.combine is np.add and src.dtype.kind == "f":
        nans = np.isnan(src)
        if nans.any():
            nan_count = _reduce_all(nans, plan, axes_r, o0, o1, r0, np.add, 0,
                                    np.dtype(np.int32))
    finishing = kind.power is not None or nan_count is not None
    direct = not finishing and acc_dt == natural == res.dtype
    acc = _reduce_all(K.prepare(kind, src, plan), plan, axes_r, o0, o1, r0, ufunc, ident,
                      acc_dt, out=dest if direct else None)
    if direct:
        if kind.divides:  # avg of floats: divide in place, in the output itself
            np.divide(dest, _divisor(plan, axes_r, o0, o1, acc.ndim,
                                     include=plan.count_include_pad), out=dest)
        return
    val = acc
    if (kind.divides and kind.power is None and dest.dtype.kind in "iu"
            and xr.dtype.kind in "biu" and plan.divisor_override is None
            and plan.window_size * _max_abs(xr.dtype) < 2**23):
        # Integer in, integer out: float32 division then rint is exact below 2**23
        # (a tie a/b = m + 1/2 is exact, and other quotients are >= 1/(2b) from one).
        val = np.divide(acc, _divisor(plan, axes_r, o0, o1, acc.ndim,
                                      include=plan.count_include_pad), dtype=np.float32)
        np.rint(val, out=val)
        if dest.dtype != xr.dtype:  # the mean stays within the input dtype's range
            info = np.iinfo(dest.dtype)
            np.clip(val, info.min, info.max, out=val)
        np.copyto(dest, val, casting="unsafe")
        return
    if kind.divides:
        div = _divisor(plan, axes_r, o0, o1, acc.ndim, include=plan.count_include_pad)
        if nan_count is not None and plan.divisor_override is None:
            div = div - nan_count
        fdt = K._compute_float(xr.dtype) if xr.dtype.kind == "f" else np.dtype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN windows: 0/0
            val = np.divide(acc, div, dtype=fdt)
        if kind.power == "square":
            np.sqrt(val, out=val)
    elif kind.power == "norm":
        p = plan.norm
        if p == 2:
            val = np.sqrt(acc)
        elif p != 1 and not math.isinf(p):
            val = np.power(acc, 1.0 / p)
    if nan_count is not None:
        real = _divisor(plan, axes_r, o0, o1, acc.ndim, include=False, override=False)
        val = np.where(real - nan_count == 0, np.nan, val)
    store(dest, np.asarray(val).astype(natural, copy=False))


def _max_abs(dt: np.dtype) -> int:
    if dt.kind == "b":
        return 1
    info = np.iinfo(dt)
    return max(abs(int(info.min)), int(info.max))


def _reduce_all(src, plan, axes_r, o0, o1, r0, ufunc, ident, dt, out=None):
    steps = list(_steps(plan, axes_r, o0, o1, r0))
    for k, (a, ap, lo, hi, shift, _) in enumerate(steps):
        last = k == len(steps) - 1
        src = K.reduce_axis(src, a, ap, lo, hi, shift, ufunc, ident, dt,
                            out=out if last else None)
    return src


def _divisor(plan: PoolPlan, axes_r, o0: int, o1: int, ndim: int, *, include: bool,
             override: bool = True):
    """Cells counted per window of a tile: a scalar where every window counts the same."""
    if override and plan.divisor_override is not None:
        return plan.divisor_override
    scalar, vectors = 1, []
    for a, ap, lo, hi, *_ in _steps(plan, axes_r, o0, o1, 0):
        c = _counts(ap, include)[lo:hi]
        if (c == c[0]).all():
            scalar *= int(c[0])
        else:
            vectors.append(K._along(c, ndim, a))
    div: Any = scalar
    for v in vectors:
        div = div * v
    return div


@lru_cache(maxsize=256)
def _counts(ap: AxisPlan, include: bool) -> np.ndarray:
    return ap.counts(include)


def store(dest: np.ndarray, val: np.ndarray) -> None:
    """Write results into ``dest``; to an integer dtype, round half to even and clip."""
    if dest.dtype == val.dtype:
        np.copyto(dest, val)
    elif dest.dtype.kind in "iu" and val.dtype.kind == "f":
        info = np.iinfo(dest.dtype)
        v = np.rint(val)
        np.nan_to_num(v, copy=False, nan=0.0)
        np.clip(v, info.min, info.max, out=v)
        np.copyto(dest, v, casting="unsafe")
    elif dest.dtype.kind == "b":
        np.not_equal(val, 0, out=dest)
    else:
        np.copyto(dest, val, casting="unsafe")


def _arg_tile(kind: K.Kind, plan: PoolPlan, xr, axes_r, res, idx, tile, off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = _rows(plan.axis_plans[0], o0, o1)
    vals, ids = xr[b0:b1, r0 - off[0]:r1 - off[0]], None
    better = K.better_fn(kind, xr.dtype, plan.ignore_nan)
    steps = list(_steps(plan, axes_r, o0, o1, r0))
    ns = [ap.n for ap in plan.axis_plans]
    # Trailing axes first, each strictly-better: ties keep the first cell in row-major order.
    for k in reversed(range(len(steps))):
        a, ap, lo, hi, shift, base = steps[k]
        vals, ids = K.arg_reduce_axis(vals, ids, a, ap, lo, hi, shift, base,
                                      math.prod(ns[k + 1:]), better)
    store(res[b0:b1, o0 - off[1]:o1 - off[1]], vals)
    idx[b0:b1, o0 - off[1]:o1 - off[1]] = ids


def _select_tile(kind: K.Kind, plan: PoolPlan, xr, axes_r, res, tile, off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = _rows(plan.axis_plans[0], o0, o1)
    src = xr[b0:b1, r0 - off[0]:r1 - off[0]]
    dest = res[b0:b1, o0 - off[1]:o1 - off[1]]
    steps = list(_steps(plan, axes_r, o0, o1, r0))
    views = _full_window_views(plan, src, steps) if kind.name == "median" else None
    if views is not None:
        # Every window is whole: select the median from the window's views with a
        # comparator network, without gathering a window stack. Each view is copied to
        # contiguous memory first (one pass), since NumPy's min/max are several times
        # faster on contiguous data than on strided views. min/max carry NaN to every
        # output they make, so a NaN result means a window held NaN: such a tile takes
        # the general path, which applies the NaN rules.
        med = K.network_select([np.ascontiguousarray(v) for v in views], (len(views) - 1) // 2)
        if not (med.dtype.kind == "f" and np.isnan(med).any()):
            store(dest, med)
            return
    stack, valid = K.window_stack(src, axes_r, plan.axis_plans,
                                  tuple((lo, hi) for _, _, lo, hi, _, _ in steps),
                                  tuple(s[4] for s in steps))
    store(dest, K.select(kind, stack, valid, plan.ignore_nan))


# Past this many cells a sort of the window stack beats the network's passes.
NETWORK_MAX_CELLS = 25


def _full_window_views(plan: PoolPlan, src: np.ndarray, steps) -> list[np.ndarray] | None:
    """One strided view per window cell, if every window of the tile lies inside the input."""
    if plan.window_size > NETWORK_MAX_CELLS:
        return None
    per_axis = []
    for a, ap, lo, hi, shift, _ in steps:
        if ap.adaptive:
            return None
        offs = list(K.offsets(ap, lo, hi, shift, src.shape[a]))
        if len(offs) != ap.kernel or any(d.start != 0 or d.stop != hi - lo for d, *_ in offs):
            return None
        per_axis.append([(a, sel) for _, sel, _, _ in offs])
    views = []
    for combo in itertools.product(*per_axis):
        key = [slice(None)] * src.ndim
        for a, sel in combo:
            key[a] = sel
        views.append(src[tuple(key)])
    return views
