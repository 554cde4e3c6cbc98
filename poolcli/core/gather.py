"""Median and mode: kinds that need every cell of a window at once.

A window stack gathers the cells of each window into one trailing axis; whole windows of
a small median instead go through a selection network over strided views, with no stack.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

import numpy as np

from .fast_mode import mode_of_sorted
from .kinds import Kind, highest
from .separable import offsets

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
           ignore_nan: bool, nodata: Any = None) -> np.ndarray:
    """Median or mode over the trailing window axis; padded cells, ``nodata`` cells and
    (optionally) NaN skipped. A window with no cell left gives nodata (or NaN)."""
    dt = stack.dtype
    if nodata is not None:
        keep = stack != nodata
        valid = keep if valid is None else valid & keep
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
        res = mode_of_sorted(ordered, count if valid is not None or (has_nan and ignore_nan)
                             else None)
    if has_nan:
        if ignore_nan:
            res = np.where(count == 0, np.nan, res)
        else:
            any_nan = nan.any(axis=-1) if valid is None else (nan & valid).any(axis=-1)
            res = np.where(any_nan, np.nan, res)
    if nodata is not None:
        res = np.where(count == 0, np.array(nodata).astype(dt), res)
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


# Past this many cells a sort of the window stack beats the network's passes.
NETWORK_MAX_CELLS = 25


def full_window_views(plan: Any, src: np.ndarray, steps) -> list[np.ndarray] | None:
    """One strided view per window cell, if every window of the tile lies inside the input."""
    if plan.window_size > NETWORK_MAX_CELLS:
        return None
    per_axis = []
    for a, ap, lo, hi, shift, _ in steps:
        if ap.adaptive:
            return None
        offs = list(offsets(ap, lo, hi, shift, src.shape[a]))
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
