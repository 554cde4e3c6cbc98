"""Execute a plan on an in-memory array: working views, cache-sized tiles, threads, store."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import PoolError
from . import gather, separable
from . import kinds as K
from .fast import try_fast
from .plan import AxisPlan, PoolPlan
from .threads import run_on_threads

# Input bytes one tile reads: small enough that a tile's partial results stay in the
# L2 cache between the per-axis passes, large enough that NumPy's per-call cost vanishes.
TILE_BYTES = 2 * 1024 * 1024


def resolve_threads(threads: int | None) -> int:
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {threads!r}")
    if threads < 1:
        raise PoolError(f"threads {threads} must be >= 1 (or None for all cores)")
    return threads


def execute(plan: PoolPlan, x: np.ndarray, *, dtype: Any = None, threads: int | None = None,
            out: np.ndarray | None = None, rows: tuple[int, int, int] | None = None,
            ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run a plan on an array of the plan's shape (see _execute); running out of memory
    on the way is a PoolError naming the shapes, not NumPy's words."""
    try:
        return _execute(plan, x, dtype=dtype, threads=threads, out=out, rows=rows)
    except MemoryError:
        raise PoolError(f"out of memory pooling shape {plan.in_shape} to {plan.out_shape} "
                        f"({plan.kind}, windows of {plan.window_size:,} cells); check "
                        "`kernel`, `stride` and `output_size`") from None


def _execute(plan: PoolPlan, x: np.ndarray, *, dtype: Any = None, threads: int | None = None,
             out: np.ndarray | None = None, rows: tuple[int, int, int] | None = None,
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run a plan on an array of the plan's shape (``out``: where to write the result).

    ``rows=(o0, o1, r0)`` computes only output rows o0..o1 of the first pooled axis from
    an ``x`` that holds input rows r0.. of it (all those windows read); the out-of-core
    path feeds chunks this way, and every cell comes out as in a whole-array run.
    """
    nthreads = resolve_threads(threads)
    kind = K.KINDS[plan.kind]
    K.check_nodata(plan.nodata, x.dtype)
    final = K.result_dtype(plan, x.dtype, dtype)
    if rows is None:
        fast = try_fast(plan, x, final, nthreads, out)
        if fast is not None:
            return fast
    lo, hi, r_off = (0, plan.axis_plans[0].out, 0) if rows is None else rows
    if out is None:
        shape = list(plan.out_shape)
        shape[plan.axes[0]] = hi - lo
        out = _allocate(shape, final)
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
        run_on_threads(work, tiles, nthreads)  # stops within a tile when interrupted
    else:
        for t in tiles:
            work(t)
    if idx is not None:
        return res, _unpermute(plan, idx, res.shape)
    return res


def _allocate(shape: list[int], dtype: np.dtype) -> np.ndarray:
    """The result array, or a PoolError saying why it cannot be: NumPy's own words
    ("array is too big", "Unable to allocate 8.00 GiB") name no option."""
    try:
        return np.empty(shape, dtype)
    except (MemoryError, ValueError):
        size = math.prod(shape) * dtype.itemsize
        raise PoolError(f"the result, shape {tuple(shape)} of {dtype}, needs {size:,} bytes, "
                        "more than this machine can allocate; check `kernel`, `stride` and "
                        "`output_size`") from None


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
    """Indices were written in the working layout; give them the output's layout.

    The layout is the one the input got: channels moved in front when they merged with
    the batch axes, else the natural one. The output alone cannot tell (a pooled axis of
    length 1 lets axes merge that the input's could not), so both are tried for the shape
    the indices have.
    """
    out = np.empty(shape, np.int64)
    _, out_r = _working_views(plan, out, out)
    if out_r.shape != idx_r.shape:
        p0 = plan.axes[0]
        out_r = _as_view(out, (math.prod(shape[:p0]), *shape[p0:]))
    out_r[...] = idx_r
    return out


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


def _steps(plan: PoolPlan, axes_r: tuple[int, ...], o0: int, o1: int, r0: int):
    """(axis, plan, first window, last window, shift, base) per pooled axis, tile axis first."""
    ap0 = plan.axis_plans[0]
    yield axes_r[0], ap0, o0, o1, -ap0.before - r0, r0
    for a, ap in zip(axes_r[1:], plan.axis_plans[1:], strict=True):
        yield a, ap, 0, ap.out, -ap.before, 0


def _separable_tile(kind: K.Kind, plan: PoolPlan, xr: np.ndarray, axes_r, res, tile,
                    off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = plan.axis_plans[0].input_range(o0, o1)
    src = xr[b0:b1, r0 - off[0]:r1 - off[0]]
    dest = res[b0:b1, o0 - off[1]:o1 - off[1]]
    steps = list(_steps(plan, axes_r, o0, o1, r0))

    def combine(values, ufunc, identity, dt, out=None):
        for k, (a, ap, lo, hi, shift, _) in enumerate(steps):
            last = k == len(steps) - 1
            values = separable.reduce_axis(values, a, ap, lo, hi, shift, ufunc, identity, dt,
                                           out=out if last else None)
        return values

    def count(include: bool, override: bool = True):
        return _divisor(plan, steps, src.ndim, include=include, override=override)

    K.pool_separable(kind, plan, src, dest, combine, count)


def _divisor(plan: PoolPlan, steps, ndim: int, *, include: bool, override: bool = True):
    """Cells counted per window of a tile: a scalar where every window counts the same."""
    if override and plan.divisor_override is not None:
        return plan.divisor_override
    scalar, vectors = 1, []
    for a, ap, lo, hi, *_ in steps:
        c = _counts(ap, include)[lo:hi]
        if (c == c[0]).all():
            scalar *= int(c[0])
        else:
            vectors.append(separable.along(c, ndim, a))
    div: Any = scalar
    for v in vectors:
        div = div * v
    return div


@lru_cache(maxsize=256)
def _counts(ap: AxisPlan, include: bool) -> np.ndarray:
    return ap.counts(include)


def _arg_tile(kind: K.Kind, plan: PoolPlan, xr, axes_r, res, idx, tile, off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = plan.axis_plans[0].input_range(o0, o1)
    vals, ids = xr[b0:b1, r0 - off[0]:r1 - off[0]], None
    better = separable.better_fn(kind, xr.dtype, plan.ignore_nan)
    steps = list(_steps(plan, axes_r, o0, o1, r0))
    ns = [ap.n for ap in plan.axis_plans]
    # Trailing axes first, each strictly-better: ties keep the first cell in row-major order.
    for k in reversed(range(len(steps))):
        a, ap, lo, hi, shift, base = steps[k]
        vals, ids = separable.arg_reduce_axis(vals, ids, a, ap, lo, hi, shift, base,
                                      math.prod(ns[k + 1:]), better)
    K.store(res[b0:b1, o0 - off[1]:o1 - off[1]], vals)
    idx[b0:b1, o0 - off[1]:o1 - off[1]] = ids


def _select_tile(kind: K.Kind, plan: PoolPlan, xr, axes_r, res, tile, off=(0, 0)) -> None:
    b0, b1, o0, o1 = tile
    r0, r1 = plan.axis_plans[0].input_range(o0, o1)
    src = xr[b0:b1, r0 - off[0]:r1 - off[0]]
    dest = res[b0:b1, o0 - off[1]:o1 - off[1]]
    steps = list(_steps(plan, axes_r, o0, o1, r0))
    views = (gather.full_window_views(plan, src, steps)
             if kind.name == "median" and plan.nodata is None else None)
    if views is not None:
        # Every window is whole: select the median from the window's views with a
        # comparator network, without gathering a window stack. Each view is copied to
        # contiguous memory first (one pass), since NumPy's min/max are several times
        # faster on contiguous data than on strided views. min/max carry NaN to every
        # output they make, so a NaN result means a window held NaN: such a tile takes
        # the general path, which applies the NaN rules.
        med = gather.network_select([np.ascontiguousarray(v) for v in views], (len(views) - 1) // 2)
        if not (med.dtype.kind == "f" and np.isnan(med).any()):
            K.store(dest, med)
            return
    stack, valid = gather.window_stack(src, axes_r, plan.axis_plans,
                                  tuple((lo, hi) for _, _, lo, hi, _, _ in steps),
                                  tuple(s[4] for s in steps))
    K.store(dest, gather.select(kind, stack, valid, plan.ignore_nan, plan.nodata))


