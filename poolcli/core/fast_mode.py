"""Mode of integer blocks without sorting window stacks, and the run counting of the
engine's general mode over sorted stacks.

A block's mode first writes every uniform window's value (for 2x2 checked on the lanes),
then gathers the mixed windows: four cells get a 5-comparator sorting network, more get
pairwise-equality counts (COUNTLESS-style, no sort): each cell counts the later cells
equal to it, so the first occurrence of a value holds its multiplicity; the largest count
wins and ties go to the smallest value. Selections are bitwise, never ``np.where``.
"""

from __future__ import annotations

import numpy as np

from .fast_blocks import LANES, UNSIGNED, Scratch, split_cells, window_rows

# Windows of up to this many cells take the pairwise-equality mode (n*(n-1)/2 compares).
MODE_MAX_CELLS = 9
# The mode of mixed windows (two or more values) is computed on gathered cells when at
# most 1/MIXED_SHARE of a tile's windows are mixed; otherwise on every window.
MIXED_SHARE = 4


def block_mode(dt: np.dtype, ks: tuple[int, ...], C: int):
    """Most frequent cell of each window, ties to the smallest, without sorting stacks."""
    u = UNSIGNED[dt.itemsize]
    # Signed cells are compared in unsigned order: flipping the sign bit keeps the order.
    sign = u.type(1 << (8 * dt.itemsize - 1)) if dt.kind == "i" else None

    lanes = LANES.get(dt.itemsize)
    pairs = ks == (2, 2) and C == 1 and lanes is not None

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        if pairs and rt.flags.c_contiguous:
            _mode_2x2_uniform(xt, rt, scratch)
            return
        cells = [c.view(u) for i, r in enumerate(window_rows(xt, ks))
                 for c in split_cells(r, ks[-1], C, scratch, f"cell{i}_")]
        # Label masks are mostly made of uniform windows, whose mode is their value:
        # write the first cell everywhere, then compute the mode only where a window
        # holds two values (gathered), unless that is a large share of the windows.
        mixed = scratch.get("mixed", cells[0].shape, bool)
        eq = scratch.get("eq", cells[0].shape, bool)
        np.not_equal(cells[0], cells[1], out=mixed)
        for c in cells[2:]:
            np.not_equal(cells[0], c, out=eq)
            np.logical_or(mixed, eq, out=mixed)
        flat_rt = rt.reshape(-1) if rt.flags.c_contiguous else None
        where = np.flatnonzero(mixed) if flat_rt is not None else None
        if where is not None and where.size <= mixed.size // MIXED_SHARE:
            np.copyto(rt, cells[0].view(dt), casting="unsafe")
            if where.size == 0:
                return
            cells = [np.take(c.reshape(-1), where) for c in cells]
            scratch = Scratch()  # the gathered cells are smaller than the tile's
            np.put(flat_rt, where, _mode_of(cells, scratch))
            return
        np.copyto(rt, _mode_of(cells, scratch), casting="unsafe")

    def _mode_2x2_uniform(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        """2x2 windows straight from the lanes: a window is uniform when its two rows'
        lanes are equal and a lane's two halves are."""
        top, bottom = (r.view(lanes) for r in window_rows(xt, ks))
        bits = lanes.type(8 * dt.itemsize)
        lo = scratch.get("lo", top.shape, u)
        hi = scratch.get("hi", top.shape, u)
        t = scratch.get("lanes_t", top.shape, lanes)
        np.copyto(lo, top, casting="unsafe")  # keeps the low half
        np.right_shift(top, bits, out=t)
        np.copyto(hi, t, casting="unsafe")
        mixed = scratch.get("mixed", top.shape, bool)
        eq = scratch.get("eq", top.shape, bool)
        np.not_equal(top, bottom, out=mixed)
        np.not_equal(lo, hi, out=eq)
        np.logical_or(mixed, eq, out=mixed)
        where = np.flatnonzero(mixed)
        if where.size > mixed.size // MIXED_SHARE:  # the mode of every window
            lo2 = scratch.get("lo2", top.shape, u)
            hi2 = scratch.get("hi2", top.shape, u)
            np.copyto(lo2, bottom, casting="unsafe")
            np.right_shift(bottom, bits, out=t)
            np.copyto(hi2, t, casting="unsafe")
            np.copyto(rt, _mode_of([lo, hi, lo2, hi2], scratch), casting="unsafe")
            return
        np.copyto(rt, lo.view(dt), casting="unsafe")
        if where.size:
            at = np.unravel_index(where, top.shape)
            a, b = top[at], bottom[at]
            cells = [a.astype(u), np.right_shift(a, bits).astype(u),
                     b.astype(u), np.right_shift(b, bits).astype(u)]
            np.put(rt.reshape(-1), where, _mode_of(cells, Scratch()))

    def _mode_of(cells: list[np.ndarray], scratch: Scratch) -> np.ndarray:
        if sign is not None:
            cells = [np.bitwise_xor(c, sign, out=scratch.get(f"ord{i}", c.shape, u))
                     for i, c in enumerate(cells)]
        res = _mode4(cells, scratch) if len(cells) == 4 else _mode_pairwise(cells, scratch)
        if sign is not None:
            np.bitwise_xor(res, sign, out=res)
        return res.view(dt)

    return tile


def _all_ones_where(cond: np.ndarray, dt: np.dtype, scratch: Scratch, name: str) -> np.ndarray:
    """A mask of unsigned ``dt``: all bits set where ``cond`` holds, else 0 (no np.where:
    NumPy's where and masked ufuncs run ten times slower than plain bitwise calls)."""
    m = scratch.get(name, cond.shape, dt)
    if dt.itemsize == 1:
        np.negative(cond.view(np.uint8), out=m)
    else:
        np.copyto(m, cond, casting="unsafe")
        np.negative(m, out=m)
    return m


def _select(x: np.ndarray, y: np.ndarray, mask: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``y`` where ``mask`` is all ones, else ``x``: x ^ ((x ^ y) & mask)."""
    np.bitwise_xor(x, y, out=out)
    np.bitwise_and(out, mask, out=out)
    return np.bitwise_xor(out, x, out=out)


def _mode_pairwise(cells: list[np.ndarray], scratch: Scratch) -> np.ndarray:
    """COUNTLESS-style counting: cell i counts the later cells equal to it, so the first
    occurrence of a value holds the value's multiplicity minus one (later ones less).
    The largest count wins; among the winners (first occurrences only) the smallest.
    Cells are unsigned, so ``cell | all-ones`` takes a loser out of the minimum."""
    n = len(cells)
    shape, u = cells[0].shape, cells[0].dtype
    eq = scratch.get("eq", shape, bool)
    f = []
    for i in range(n - 1):
        acc = scratch.get(f"f{i}", shape, np.uint8)
        for j in range(i + 1, n):
            if j == i + 1:
                np.equal(cells[i], cells[j], out=acc.view(bool))
            else:
                np.equal(cells[i], cells[j], out=eq)
                np.add(acc, eq.view(np.uint8), out=acc)
        f.append(acc)
    best = scratch.get("best", shape, np.uint8)
    np.copyto(best, f[0])
    for fi in f[1:]:
        np.maximum(best, fi, out=best)
    res = scratch.get("res", shape, u)
    cand = scratch.get("cand", shape, u)
    for i in range(n):
        if i < n - 1:
            np.not_equal(f[i], best, out=eq)
        else:
            np.not_equal(best, 0, out=eq)  # the last cell counts 0
        lost = _all_ones_where(eq, u, scratch, "lost")
        np.bitwise_or(cells[i], lost, out=res if i == 0 else cand)
        if i:
            np.minimum(res, cand, out=res)
    return res


def _mode4(cells: list[np.ndarray], scratch: Scratch) -> np.ndarray:
    """Mode of four cells: sort them with five comparators, then look at equal neighbours.

    With s0 <= s1 <= s2 <= s3: if s1 equals s0 or s2 it is the mode (a value seen twice
    or more; any other pair is larger); else s2 == s3 gives s2; else all differ and the
    smallest, s0, wins.
    """
    shape, u = cells[0].shape, cells[0].dtype
    s = [scratch.get(f"sort{i}", shape, u) for i in range(4)]
    t = scratch.get("sort_t", shape, u)
    np.minimum(cells[0], cells[1], out=s[0])
    np.maximum(cells[0], cells[1], out=s[1])
    np.minimum(cells[2], cells[3], out=s[2])
    np.maximum(cells[2], cells[3], out=s[3])
    for a, b in ((0, 2), (1, 3), (1, 2)):
        np.minimum(s[a], s[b], out=t)
        np.maximum(s[a], s[b], out=s[b])
        s[a], t = t, s[a]
    eq = scratch.get("eq", shape, bool)
    eq2 = scratch.get("eq2", shape, bool)
    np.equal(s[2], s[3], out=eq)
    res = _select(s[0], s[2], _all_ones_where(eq, u, scratch, "m"), out=s[3])
    np.equal(s[0], s[1], out=eq)
    np.equal(s[1], s[2], out=eq2)
    np.logical_or(eq, eq2, out=eq)
    return _select(res, s[1], _all_ones_where(eq, u, scratch, "m"), out=t)


# --- mode of sorted window stacks (the general path) ------------------------------------


def mode_of_sorted(ordered: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
    """Mode of each row of ``ordered`` (sorted along the last axis), ties to the smallest.

    ``count`` (optional, broadcastable to the rows) says how many leading cells of each
    row are real; the rest (padding sorted to the end) never count. The run ending at
    each position is tracked with plain arithmetic on one contiguous position at a time,
    and a longer run replaces the result with a bitwise select: no np.where, no argmax,
    no take_along_axis. The result is the cell at the end of the first longest run,
    bit for bit.
    """
    k = ordered.shape[-1]
    lead = ordered.shape[:-1]
    dt = ordered.dtype
    u = UNSIGNED[dt.itemsize] if dt.kind != "b" else np.dtype(np.uint8)
    o = np.ascontiguousarray(np.moveaxis(ordered, -1, 0).reshape(k, -1))
    bits = o.view(u)
    m = o.shape[1]
    rt = np.uint8 if k < 255 else np.uint16 if k < 65535 else np.uint32
    run = np.ones(m, rt)
    best = np.ones(m, rt)
    val = bits[0].copy()
    valid = None
    if count is not None:
        valid = np.ascontiguousarray(np.broadcast_to(count, lead).reshape(-1))
    same = np.empty(m, bool)
    eff = np.empty(m, rt)
    mask = np.empty(m, u)
    tmp = np.empty(m, u)
    for p in range(1, k):
        np.equal(o[p], o[p - 1], out=same)
        np.multiply(run, same.view(np.uint8), out=run, casting="unsafe")
        np.add(run, 1, out=run, casting="unsafe")
        cur = run
        if valid is not None:
            np.greater(valid, p, out=same)
            np.multiply(run, same.view(np.uint8), out=eff, casting="unsafe")
            cur = eff
        np.greater(cur, best, out=same)
        np.maximum(best, cur, out=best)
        if u.itemsize == 1:
            np.negative(same.view(np.uint8), out=mask)
        else:
            np.copyto(mask, same, casting="unsafe")
            np.negative(mask, out=mask)
        np.bitwise_xor(val, bits[p], out=tmp)
        np.bitwise_and(tmp, mask, out=tmp)
        np.bitwise_xor(val, tmp, out=val)
    return val.view(dt).reshape(lead)
