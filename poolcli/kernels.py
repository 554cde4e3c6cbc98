"""The reductions: one registry entry per kind, and the vectorised per-axis kernels they use.

Kernels never check arguments: they receive a validated plan (see plan.py). Separable kinds
(max, min, sum, avg, l2, lp) reduce one pooled axis at a time by combining the ``kernel``
strided views of the input into an accumulator, so no padded copy and no sliding-window
view is ever made; padded cells are simply never read. Median and mode need every cell of
a window at once and gather a window stack instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# --- dtype rules -------------------------------------------------------------------------


def _keep(dt: np.dtype) -> np.dtype:
    return dt


def _sum_out(dt: np.dtype) -> np.dtype:
    if dt == np.uint64:
        return dt
    if dt.kind in "biu":
        return np.dtype(np.int64)
    return dt


def _float_out(dt: np.dtype) -> np.dtype:
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _compute_float(dt: np.dtype) -> np.dtype:
    """The float type arithmetic happens in: float16 is computed in float32."""
    if dt == np.float16 or dt == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _sum_acc(dt: np.dtype, window: int) -> np.dtype:
    if dt.kind == "f":
        return _compute_float(dt)
    if dt == np.uint64:
        return dt
    # Small integers summed over small windows cannot overflow a narrow accumulator, and
    # a narrow one moves less memory; the result is widened at the end.
    top = 1 if dt.kind == "b" else max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    for acc in (np.int16, np.int32):
        if window * top <= np.iinfo(acc).max:
            return np.dtype(acc)
    return np.dtype(np.int64)


def lowest(dt: np.dtype) -> Any:
    """The value that never wins a max (padding)."""
    if dt.kind == "b":
        return False
    if dt.kind == "f":
        return -np.inf
    return np.iinfo(dt).min


def highest(dt: np.dtype) -> Any:
    """The value that never wins a min (padding), and sorts after every real cell."""
    if dt.kind == "b":
        return True
    if dt.kind == "f":
        return np.inf
    return np.iinfo(dt).max


# --- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One pooling kind: how windows are combined and what dtype comes out."""

    name: str
    summary: str
    out_dtype: Callable[[np.dtype], np.dtype]
    separable: bool = True
    supports_indices: bool = False
    combine: np.ufunc | None = None  # how two partial results merge (separable kinds)
    nan_combine: np.ufunc | None = None  # the same, skipping NaN (ignore_nan)
    identity: Callable[[np.dtype], Any] | None = None  # fills cells no input reaches yet
    divides: bool = False  # result = accumulated / count (avg, l2)
    power: str | None = None  # cells are transformed first: "square" or "norm"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("max", "largest value in each window", _keep, supports_indices=True,
             combine=np.maximum, nan_combine=np.fmax, identity=lowest),
        Kind("min", "smallest value in each window", _keep, supports_indices=True,
             combine=np.minimum, nan_combine=np.fmin, identity=highest),
        Kind("avg", "mean of each window (alias: mean)", _float_out, combine=np.add,
             identity=lambda dt: 0, divides=True),
        Kind("sum", "sum of each window", _sum_out, combine=np.add, identity=lambda dt: 0),
        Kind("l2", "root mean square of each window", _float_out, combine=np.add,
             identity=lambda dt: 0, divides=True, power="square"),
        Kind("lp", "p-norm of each window, (sum |x|**p)**(1/p)", _float_out, combine=np.add,
             identity=lambda dt: 0, power="norm"),
        Kind("median", "lower median of each window (always a cell of it)", _keep,
             separable=False),
        Kind("mode", "most frequent value in each window, ties to the smallest", _keep,
             separable=False),
    )
}
ALIASES: dict[str, str] = {"mean": "avg"}


def acc_dtype(kind: Kind, dt: np.dtype, plan: Any) -> np.dtype:
    """The dtype partial results are kept in while the windows are combined."""
    if kind.power is not None:
        return _compute_float(dt)
    if kind.combine is np.add:
        if kind.divides and dt.kind in "iu" and dt.itemsize == 8:
            # A mean must not wrap around: 64-bit integers are summed in float64.
            return np.dtype(np.float64)
        return _sum_acc(dt, plan.window_size)
    return dt


def prepare(kind: Kind, tile: np.ndarray, plan: Any) -> np.ndarray:
    """Transform input cells before combining (squares, |x|**p, NaN -> 0 when ignored)."""
    if kind.power is None:
        if plan.ignore_nan and kind.combine is np.add and tile.dtype.kind == "f":
            return np.where(np.isnan(tile), 0, tile)
        return tile
    t = tile.astype(_compute_float(tile.dtype))
    if kind.power == "norm" and np.isinf(plan.norm):
        np.abs(t, out=t)
    elif kind.power == "square" or plan.norm == 2:
        np.square(t, out=t)
    else:
        np.abs(t, out=t)
        if plan.norm != 1:
            np.power(t, plan.norm, out=t)
    if plan.ignore_nan:
        t[np.isnan(t)] = 0
    return t


def combiner(kind: Kind, plan: Any) -> np.ufunc:
    if kind.power == "norm" and np.isinf(plan.norm):
        return np.fmax if plan.ignore_nan else np.maximum
    if plan.ignore_nan and kind.nan_combine is not None:
        return kind.nan_combine
    return kind.combine


def identity_of(kind: Kind, plan: Any, dt: np.dtype) -> Any:
    if kind.nan_combine is not None and plan.ignore_nan and dt.kind == "f":
        return np.nan  # fmax(nan, x) == x, and an all-NaN window stays NaN
    if kind.power == "norm" and np.isinf(plan.norm):
        return 0
    return kind.identity(dt)


# --- per-axis kernels --------------------------------------------------------------------


def _at(ndim: int, axis: int, index: Any) -> tuple:
    key = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)


def _along(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Reshape a 1-d vector so it broadcasts along ``axis`` of an ndim-d array."""
    shape = [1] * ndim
    shape[axis] = values.shape[0]
    return values.reshape(shape)


def offsets(ap: Any, o0: int, o1: int, shift: int, n: int):
    """Yield (dst, src, mask, where) per kernel offset, for windows o0..o1 of ``ap``.

    Window i's first cell sits at position ``i*stride + shift`` of a source of length ``n``
    (``shift`` folds in the padding and where the source starts). A regular axis yields
    slices and mask None: only windows whose cell at that offset is real are touched, so
    padding is never read. An adaptive axis yields an index array and a validity mask.
    """
    if ap.regular:
        s = ap.stride
        for j in range(ap.kernel):
            off = j * ap.dilation + shift  # window i reads position i*s + off
            lo = max(o0, _ceil_div(-off, s))
            hi = min(o1, (n - 1 - off) // s + 1)
            if lo >= hi:
                continue
            yield (slice(lo - o0, hi - o0), slice(lo * s + off, (hi - 1) * s + off + 1, s), None,
                   (lo, hi, off))
    else:
        starts, ends = ap.bounds()
        starts, ends = starts[o0:o1] + shift, ends[o0:o1] + shift
        for j in range(ap.kernel):
            pos = starts + j
            valid = pos < ends
            if not valid.any():
                continue
            yield slice(None), np.minimum(pos, n - 1), valid, pos


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def reduce_axis(src: np.ndarray, axis: int, ap: Any, o0: int, o1: int, shift: int,
                ufunc: np.ufunc, identity: Any, dtype: np.dtype,
                out: np.ndarray | None = None) -> np.ndarray:
    """Combine the cells of windows o0..o1 along ``axis``; window i starts at i*stride+shift."""
    n = src.shape[axis]
    shape = list(src.shape)
    shape[axis] = o1 - o0
    if out is None:
        out = np.empty(shape, dtype)
    nd = src.ndim
    if ap.regular and ufunc in _IDEMPOTENT and ap.kernel >= 4 and (
            ap.kernel.bit_length() + 1) * ap.stride < ap.kernel:
        # Large overlapping windows: max/min of every whole window by doubling (about
        # log2(kernel) passes instead of kernel - 1); windows touching the padding below.
        k, d, s = ap.kernel, ap.dilation, ap.stride
        ia = min(max(o0, _ceil_div(-shift, s)), o1)
        ib = max(min(o1, (n - 1 - (k - 1) * d - shift) // s + 1), ia)
        if ib - ia > 1:
            m = _doubled(src, axis, k, d, ufunc)
            sel = slice(ia * s + shift, (ib - 1) * s + shift + 1, s)
            np.copyto(out[_at(nd, axis, slice(ia - o0, ib - o0))], m[_at(nd, axis, sel)],
                      casting="unsafe")
            for lo, hi in ((o0, ia), (ib, o1)):
                if hi > lo:
                    _direct(src, axis, ap, lo, hi, shift, ufunc, identity,
                            out[_at(nd, axis, slice(lo - o0, hi - o0))])
            return out
    return _direct(src, axis, ap, o0, o1, shift, ufunc, identity, out)


_IDEMPOTENT = (np.maximum, np.minimum, np.fmax, np.fmin)


def _doubled(src: np.ndarray, axis: int, k: int, d: int, ufunc: np.ufunc) -> np.ndarray:
    """m[p] = ufunc over src[p], src[p+d], ..., src[p+(k-1)d], for every whole window p."""
    nd = src.ndim
    m, w = src, 1
    while 2 * w <= k:
        length = m.shape[axis] - w * d
        m = ufunc(m[_at(nd, axis, slice(0, length))],
                  m[_at(nd, axis, slice(w * d, w * d + length))])
        w *= 2
    if w < k:  # the last step overlaps the two halves, harmless for max and min
        r = (k - w) * d
        length = m.shape[axis] - r
        m = ufunc(m[_at(nd, axis, slice(0, length))], m[_at(nd, axis, slice(r, r + length))])
    return m


def _direct(src: np.ndarray, axis: int, ap: Any, o0: int, o1: int, shift: int,
            ufunc: np.ufunc, identity: Any, out: np.ndarray) -> np.ndarray:
    """Combine offset by offset: one strided view per kernel cell, padding never read."""
    n = src.shape[axis]
    nd = src.ndim
    filled = False
    for dst, sel, mask, _ in offsets(ap, o0, o1, shift, n):
        if mask is None:
            part = src[_at(nd, axis, sel)]
            target = out[_at(nd, axis, dst)]
            if not filled:
                if dst.start == 0 and dst.stop == o1 - o0:
                    np.copyto(out, part, casting="unsafe")
                    filled = True
                    continue
                out.fill(identity)
                filled = True
            ufunc(target, part, out=target)
        else:
            if not filled:
                out.fill(identity)
                filled = True
            part = np.take(src, sel, axis=axis)
            ufunc(out, part, out=out, where=_along(mask, nd, axis))
    return out


def arg_reduce_axis(vals: np.ndarray, idx: np.ndarray | None, axis: int, ap: Any, o0: int,
                    o1: int, shift: int, base: int, flat_stride: int, better: Callable,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Like reduce_axis for max/min, carrying the flat index of the winning cell.

    ``base`` turns a position in ``vals`` into a position in the whole input; later kernel
    offsets replace the winner only when strictly better, so ties keep the first cell.
    """
    n = vals.shape[axis]
    nd = vals.ndim
    shape = list(vals.shape)
    shape[axis] = o1 - o0
    cur_v = np.empty(shape, vals.dtype)
    cur_i = np.full(shape, -1, np.int64)
    for dst, sel, mask, where in offsets(ap, o0, o1, shift, n):
        if mask is None:
            lo, hi, off = where
            v = vals[_at(nd, axis, sel)]
            pos = (np.arange(lo, hi, dtype=np.int64) * ap.stride + off + base) * flat_stride
            dv = cur_v[_at(nd, axis, dst)]
            di = cur_i[_at(nd, axis, dst)]
            cand = _along(pos, nd, axis)
            if idx is not None:
                cand = idx[_at(nd, axis, sel)] + cand
            take = better(v, dv) | (di < 0)
        else:
            v = np.take(vals, sel, axis=axis)
            cand = _along((sel + base) * flat_stride, nd, axis)
            if idx is not None:
                cand = np.take(idx, sel, axis=axis) + cand
            dv, di = cur_v, cur_i
            take = (better(v, dv) | (di < 0)) & _along(mask, nd, axis)
        np.copyto(dv, v, where=take)
        np.copyto(di, np.broadcast_to(cand, di.shape), where=take)
    return cur_v, cur_i


def better_fn(kind: Kind, dt: np.dtype, ignore_nan: bool) -> Callable:
    """Strictly-better test for max/min with PyTorch's NaN rule (a NaN wins, the first one)."""
    cmp = np.greater if kind.name == "max" else np.less
    if dt.kind != "f":
        return cmp
    if ignore_nan:
        return lambda v, cur: cmp(v, cur) | (np.isnan(cur) & ~np.isnan(v))
    return lambda v, cur: cmp(v, cur) | (np.isnan(v) & ~np.isnan(cur))


# --- median and mode: gather each window's cells -----------------------------------------


def window_stack(src: np.ndarray, axes: tuple[int, ...], aps: tuple, ranges: tuple,
                 shifts: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """Gather windows: (stack, valid) with the window cells in one trailing axis.

    ``valid`` (broadcastable to the stack, or None when every cell is real) marks the
    cells that are input rather than padding.
    """
    nd = src.ndim
    masks = []
    for a, ap, (o0, o1), shift in zip(axes, aps, ranges, shifts, strict=True):
        idx, valid = ap.positions()
        idx, valid = idx[o0:o1] + shift + ap.before, valid[o0:o1]
        n = src.shape[a]
        src = np.take(src, np.clip(idx, 0, n - 1).ravel(), axis=a)
        src = src.reshape((*src.shape[:a], *idx.shape, *src.shape[a + 1:]))
        # The window axis goes to the end at once, so the next pooled axis keeps its index.
        src = np.moveaxis(src, a + 1, -1)
        masks.append(valid)
    m = len(axes)
    shape = src.shape
    stack = src.reshape((*shape[:nd], -1))
    if all(v.all() for v in masks):
        return stack, None
    full = np.ones([1] * nd + [1] * m, dtype=bool)
    for k, (a, v) in enumerate(zip(axes, masks, strict=True)):
        vshape = [1] * (nd + m)
        vshape[a] = v.shape[0]
        vshape[nd + k] = v.shape[1]
        full = full & v.reshape(vshape)
    return stack, full.reshape((*full.shape[:nd], -1))


def select(kind: Kind, stack: np.ndarray, valid: np.ndarray | None,
           ignore_nan: bool) -> np.ndarray:
    """Median or mode over the trailing window axis; padded cells and (optionally) NaN skipped."""
    dt = stack.dtype
    is_float = dt.kind == "f"
    nan = np.isnan(stack) if is_float else None
    has_nan = nan is not None and bool(nan.any())
    k = stack.shape[-1]
    if valid is None and not has_nan and kind.name == "median":
        r = (k - 1) // 2
        return np.partition(stack, r, axis=-1)[..., r]
    if valid is not None:
        stack = np.where(valid, stack, highest(dt))
    if has_nan and ignore_nan:
        stack = np.where(nan, highest(dt), stack)
    count = np.full(stack.shape[:-1], k, np.int64) if valid is None else \
        np.broadcast_to(valid, stack.shape).sum(axis=-1)
    if has_nan and ignore_nan:
        real_nan = nan if valid is None else nan & valid
        count = count - real_nan.sum(axis=-1)
    ordered = np.sort(stack, axis=-1)
    if kind.name == "median":
        rank = np.maximum(count - 1, 0) // 2
        res = np.take_along_axis(ordered, rank[..., None], axis=-1)[..., 0]
    else:
        from .fast import mode_of_sorted

        res = mode_of_sorted(ordered, count if valid is not None or (has_nan and ignore_nan)
                             else None)
    if has_nan:
        if ignore_nan:
            res = np.where(count == 0, np.nan, res)
        else:
            any_nan = nan.any(axis=-1) if valid is None else (nan & valid).any(axis=-1)
            res = np.where(any_nan, np.nan, res)
    return res.astype(dt, copy=False)


# --- median by a selection network -------------------------------------------------------


@lru_cache(maxsize=64)
def selection_network(k: int, rank: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Comparators (i, j, need_min, need_max) that put the rank-th smallest of k wires on
    wire ``rank``: Batcher's odd-even merge sort, cut to k wires and pruned backwards.

    Wires past k would hold +inf; a comparator touching one is a no-op, so it is dropped.
    """
    n = 1 << max(0, (k - 1).bit_length())
    net = []
    p = 1
    while p < n:
        q = p
        while q >= 1:
            for j in range(q % p, n - q, 2 * q):
                for i in range(min(q, n - j - q)):
                    a, b = i + j, i + j + q
                    if a // (2 * p) == b // (2 * p) and b < k:
                        net.append((a, b))
            q //= 2
        p *= 2
    live = {rank}
    kept = []
    for a, b in reversed(net):
        need_min, need_max = a in live, b in live
        if need_min or need_max:
            kept.append((a, b, need_min, need_max))
            live |= {a, b}
    return tuple(reversed(kept))


def network_select(wires: list[np.ndarray], rank: int) -> np.ndarray:
    """The rank-th smallest of the arrays ``wires``, cell by cell (no NaN allowed)."""
    w = list(wires)
    for a, b, need_min, need_max in selection_network(len(w), rank):
        lo = np.minimum(w[a], w[b]) if need_min else None
        if need_max:
            w[b] = np.maximum(w[a], w[b])
        w[a] = lo
    return w[rank]
