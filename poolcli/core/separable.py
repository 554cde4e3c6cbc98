"""Per-axis strided reductions for the separable kinds (max, min, sum, avg, l2, lp).

Each pooled axis is reduced on its own by combining the ``kernel`` strided views of the
source into an accumulator, so no padded copy and no sliding-window view is ever made:
padded cells are simply never read. Kernels never check arguments; they get a validated
plan (see plan.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .kinds import Kind

# --- per-axis kernels --------------------------------------------------------------------


def _at(ndim: int, axis: int, index: Any) -> tuple:
    key = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)


def along(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
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
            ufunc(out, part, out=out, where=along(mask, nd, axis))
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
            cand = along(pos, nd, axis)
            if idx is not None:
                cand = idx[_at(nd, axis, sel)] + cand
            take = better(v, dv) | (di < 0)
        else:
            v = np.take(vals, sel, axis=axis)
            cand = along((sel + base) * flat_stride, nd, axis)
            if idx is not None:
                cand = np.take(idx, sel, axis=axis) + cand
            dv, di = cur_v, cur_i
            take = (better(v, dv) | (di < 0)) & along(mask, nd, axis)
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


