"""Fast paths for block pooling of integer arrays (avg, sum, mode, max, min), chosen from the plan.

The general engine combines strided views one kernel offset at a time. That suits floats,
but NumPy cannot vectorise the strided views of narrow integers, computes their averages
through floats, and finds a mode by sorting window stacks. Here, when every window is a
whole block (stride = kernel, no padding or dilation, no partial window) of a C-contiguous
array whose pooled axes are consecutive, the work is reorganised:

- The pooled axes before the last one are "vertical": the window's rows are whole
  contiguous rows, combined with one vectorised call per kernel offset.
- The two cells of a horizontal pair are split without a strided copy: a row of 8-bit
  cells viewed as 16-bit lanes holds two cells per lane, ``lane & 0xFF`` and ``lane >> 8``
  (16-bit cells in 32-bit lanes, 32-bit cells in 64-bit lanes).
- avg and sum add those lanes in the wider lane type, so sums are exact integers (a
  signed input is first biased to unsigned by flipping its sign bit); an average is
  rounded half to even in integer arithmetic, for a power-of-two divisor D
  ``(s + D/2 - 1 + ((s >> log2 D) & 1)) >> log2 D``. Interleaved channels (RGB) are
  realigned with shifted adds and periodic masks, never with a strided copy.
- mode first writes every uniform window's value (for 2x2 checked on the lanes), then
  gathers the mixed windows: four cells get a 5-comparator sorting network, more get
  pairwise-equality counts (COUNTLESS-style, no sort): each cell counts the later
  cells equal to it, so the first occurrence of a value holds its multiplicity; the
  largest count wins and ties go to the smallest value. Selections are bitwise.
- max and min combine the rows first (contiguous), then the split pairs.

Also here, not limited to blocks: a running max/min for stride 1 (``running_job``) and
the run counting of the engine's general mode over sorted stacks (``mode_of_sorted``).

``try_fast`` is the one entry point the engine calls; it returns None for every case it
does not cover, and the engine runs as before. Results are bit-identical to the general
engine's and to the brute-force reference (tests/test_fast.py).
"""

from __future__ import annotations

import math

import numpy as np

from .plan import PoolPlan
from .threads import run_on_threads

# Input bytes one tile reads. Smaller tiles would keep the temporaries in the L2 cache,
# but each NumPy call costs a few microseconds whatever its size, and with 20-30 calls
# per tile that overhead dominated below 1 MiB (measured: 2 MiB tiles 1.5-2x faster
# than 256 KiB ones for W6, W8, W9, W10).
TILE_BYTES = 2 * 1024 * 1024
# Below this many input bytes one thread does it all: starting threads costs more.
THREAD_MIN_BYTES = 1 << 20
# Windows of up to this many cells take the pairwise-equality mode (n*(n-1)/2 compares).
MODE_MAX_CELLS = 9
# The mode of mixed windows (two or more values) is computed on gathered cells when at
# most 1/MIXED_SHARE of a tile's windows are mixed; otherwise on every window.
MIXED_SHARE = 4

_LANES = {1: np.dtype(np.uint16), 2: np.dtype(np.uint32), 4: np.dtype(np.uint64)}
_UNSIGNED = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
             8: np.dtype(np.uint64)}


def try_fast(plan: PoolPlan, x: np.ndarray, out_dtype: np.dtype, threads: int,
             out: np.ndarray | None = None) -> np.ndarray | None:
    """Pool ``x`` (of the plan's shape) by a fast path, or return None if none applies.

    ``out_dtype`` is the dtype the result must have (pool()'s rule or its ``dtype=``);
    ``out``, if given, receives the result; ``threads`` is the number of worker threads.
    """
    out_dtype = np.dtype(out_dtype)
    job = plan_job(plan, x, out_dtype)
    if job is None:
        return None
    if out is not None and (out.shape != plan.out_shape or out.dtype != out_dtype
                            or not out.flags.c_contiguous):
        return None
    res = np.empty(plan.out_shape, out_dtype) if out is None else out
    nb, no, per_row, work = job(res)
    tiles = _tiles(nb, no, per_row * getattr(work, "tile_scale", 1), threads)
    n = min(threads, len(tiles)) if nb * no * per_row >= THREAD_MIN_BYTES else 1
    if len(tiles) > 1:
        # Even one thread works off the main thread: there glibc returns freed
        # temporaries of a few hundred KiB to the system and page-faults them back in.
        run_on_threads(lambda tile, scratch: work(*tile, scratch), tiles, n, state=Scratch)
    else:
        scratch = Scratch()
        for tile in tiles:
            work(*tile, scratch)
    return res


class Scratch:
    """Temporaries reused from tile to tile (one per thread).

    Fresh temporaries of a few hundred KiB are page-faulted in again at every tile
    (glibc maps or trims them), which cost more than the arithmetic on them.
    """

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        need = math.prod(shape) * dtype.itemsize
        buf = self.bufs.get(name)
        if buf is None or buf.nbytes < need:
            buf = self.bufs[name] = np.empty(max(need, 64), np.uint8)
        return buf[:need].view(dtype).reshape(shape)


def _tiles(nb: int, no: int, per_row: int, threads: int) -> list[tuple[int, int, int, int]]:
    """(b0, b1, o0, o1) blocks over the batch axis and the first pooled axis's windows;
    ``per_row`` is the input bytes one window row of one batch entry reads."""
    want = 4 * threads if threads > 1 else 1
    per_b = per_row * no
    if nb > 1 and per_b <= TILE_BYTES:
        step = max(1, min(TILE_BYTES // max(per_b, 1), -(-nb // want)))
        return [(b, min(b + step, nb), 0, no) for b in range(0, nb, step)]
    rows = max(1, TILE_BYTES // max(per_row, 1))
    if nb * -(-no // rows) < want:
        rows = max(1, -(-no * nb // want))
    return [(b, b + 1, o, min(o + rows, no)) for o in range(0, no, rows) for b in range(nb)]


# --- which plans qualify ------------------------------------------------------------------


def block_kernel(plan: PoolPlan) -> tuple[int, ...] | None:
    """The per-axis block sizes if every window is a whole block of the input, else None.

    Whole blocks: stride = kernel, dilation 1, no padding, and no window that runs past
    the input (cells past the last whole block are dropped, as floor mode does).
    """
    ks = []
    for ap in plan.axis_plans:
        if (ap.adaptive or ap.stride != ap.kernel or ap.dilation != 1 or ap.before
                or ap.after or ap.out * ap.kernel > ap.n):
            return None
        ks.append(ap.kernel)
    return tuple(ks)


def plan_job(plan: PoolPlan, x: np.ndarray, out_dtype: np.dtype):
    """For a covered case a function of the result array returning (batch entries,
    windows along the first pooled axis, input bytes per window row, work(b0, b1, o0,
    o1, scratch)); else None.

    Block pooling works on an input view

    ``(B, o1, k1, ..., o_{m-1}, k_{m-1}, o_m * k_m * C)``: batch axes in
    front merged into B, every pooled axis but the last split into (window, offset), and
    the last one merged with the trailing axes (C cells, an image's channels) into rows.
    The result view is ``(B, o1, ..., o_{m-1}, o_m * C)``. With one pooled axis a unit
    axis stands in for o1.
    """
    axes = plan.axes
    if (plan.return_indices or plan.nodata is not None  # missing cells: the engine's rules
            or x.shape != plan.in_shape or not x.flags.c_contiguous
            or not x.dtype.isnative  # lanes reinterpret bytes: native order only
            or axes != tuple(range(axes[0], axes[0] + len(axes)))):
        return None
    ks = block_kernel(plan)
    if ks is None:
        return running_job(plan, x, out_dtype)
    if x.dtype.kind == "b":
        x = x.view(np.uint8)
    dt = x.dtype
    if dt.kind not in "iu" or out_dtype.kind not in "biuf":
        return None
    p0, m = axes[0], len(axes)
    nb = math.prod(x.shape[:p0])
    C = math.prod(x.shape[p0 + m:])
    outs = [ap.out for ap in plan.axis_plans]
    cells = math.prod(ks)
    if plan.kind in ("avg", "sum"):
        if (dt.itemsize > 4 or out_dtype.kind == "b"
                or (plan.kind == "avg" and plan.divisor_override is not None)
                or (plan.kind == "sum" and out_dtype.kind == "f")):
            return None
        if ks[-1] == 2 and cells <= 2 ** (8 * dt.itemsize):  # lanes hold every sum
            tile_fn = _box(plan.kind, dt, ks, C)
        elif cells & (cells - 1) == 0 or plan.kind == "sum" or out_dtype.kind == "f":
            tile_fn = _box_strided(plan.kind, dt, ks, C)
        else:
            # An integer mean over a divisor that is not a power of two: the engine's
            # float32 division is exact there and measured faster than integer division.
            return None
    elif plan.kind == "mode":
        if not 2 <= cells <= MODE_MAX_CELLS:
            return None
        tile_fn = _mode(dt, ks, C)
    elif plan.kind in ("max", "min"):
        if cells < 2:
            return None
        tile_fn = _extreme(plan.kind, dt, ks, C)
    else:
        return None
    crop = tuple(slice(0, o * k) for o, k in zip(outs, ks, strict=True))
    xc = x.reshape(nb, *x.shape[p0:p0 + m], C)[(slice(None), *crop, slice(None))]
    shape = [nb]
    for o, k in zip(outs[:-1], ks[:-1], strict=True):
        shape += [o, k]
    if m == 1:
        shape.append(1)
    shape.append(outs[-1] * ks[-1] * C)
    try:
        xv = _as_view(xc, tuple(shape))
    except AttributeError:
        return None
    rshape = (nb, *outs[:-1], outs[-1] * C) if m > 1 else (nb, 1, outs[-1] * C)

    def job(res: np.ndarray):
        rv = res.reshape(rshape)

        def work(b0, b1, o0, o1, scratch):
            tile_fn(xv[b0:b1, o0:o1], rv[b0:b1, o0:o1], scratch)

        return xv.shape[0], xv.shape[1], math.prod(xv.shape[2:]) * xv.itemsize, work

    return job


def _as_view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape without copying (AttributeError if the strides do not allow it)."""
    v = a.view()
    v.shape = shape
    return v


def _rows(xt: np.ndarray, ks: tuple[int, ...]) -> list[np.ndarray]:
    """The window's rows: one view per offset of every pooled axis but the last."""
    if len(ks) == 1:
        return [xt]
    rows = []
    for offs in np.ndindex(*ks[:-1]):
        key: list = [slice(None), slice(None)]
        for j, off in enumerate(offs):
            key.append(off)
            if j < len(offs) - 1:
                key.append(slice(None))
        key.append(slice(None))
        rows.append(xt[tuple(key)])
    return rows


def _split(row: np.ndarray, k: int, C: int, scratch: Scratch, name: str) -> list[np.ndarray]:
    """The k cells of each window along a row (k windows' cells apart), as contiguous arrays."""
    if k == 1:
        return [row]
    w = row.dtype.itemsize
    shape = (*row.shape[:-1], row.shape[-1] // k)
    outs = [scratch.get(f"{name}{j}", shape, row.dtype) for j in range(k)]
    if k == 2 and C == 1 and w in _LANES:
        # Two neighbours share one lane of twice the width: no strided copy.
        u = _UNSIGNED[w]
        lanes = row.view(_LANES[w])
        np.copyto(outs[0].view(u), lanes, casting="unsafe")  # keeps the low half
        t = scratch.get("split", shape, _LANES[w])
        np.right_shift(lanes, _LANES[w].type(8 * w), out=t)
        np.copyto(outs[1].view(u), t, casting="unsafe")
        return outs
    blocks = row.reshape(*row.shape[:-1], -1, k, C)
    for j in range(k):
        np.copyto(outs[j].reshape(*shape[:-1], -1, C), blocks[..., j, :])
    return outs


# --- avg and sum ------------------------------------------------------------------------


def _box(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """avg/sum with last kernel 2: exact sums in lanes of twice the width, integer rounding."""
    w = dt.itemsize
    lanes = _LANES[w]
    bits = 8 * w
    low = lanes.type((1 << bits) - 1)
    shift = lanes.type(bits)
    signed = dt.kind == "i"
    # Flipping both cells' sign bits maps a signed cell v to v + 2**(bits-1) >= 0.
    flip = lanes.type((1 << (bits - 1)) | (1 << (2 * bits - 1))) if signed else None
    bias = 1 << (bits - 1) if signed else 0
    D = math.prod(ks)

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = _rows(xt, ks)
        half = rows[0].shape[-1] // 2
        lead = rows[0].shape[:-1]
        # e/o: per lane, the sum of the low / high cells over the window's rows, kept
        # contiguous, with C zero lanes at the end so that the shifted reads of
        # _pair_sums stay in bounds (values read across a row's end are masked out).
        total = math.prod(lead) * half
        e = scratch.get("e", (total + C,), lanes)
        o = scratch.get("o", (total + C,), lanes)
        e[total:] = 0
        o[total:] = 0
        ev, ov = e[:total].reshape(*lead, half), o[:total].reshape(*lead, half)
        # A lane holds lo + 2**bits * hi, so the plain sum of the rows' lanes is
        # sum(lo) + 2**bits * sum(hi) modulo the lane width, exact once sum(hi) is known.
        tmp = scratch.get("tmp", ev.shape, lanes)
        views = [r.view(lanes) for r in rows]
        if signed:
            flipped = [np.bitwise_xor(v, flip, out=scratch.get(f"flip{i}", ev.shape, lanes))
                       for i, v in enumerate(views)]
            views = flipped
        # Each row is shifted right after it was added, while it is still in cache.
        if len(views) == 1:
            np.copyto(ev, views[0])
        else:
            np.add(views[0], views[1], out=ev)
        for i, v in enumerate(views):
            if i > 1:
                np.add(ev, v, out=ev)
            np.right_shift(v, shift, out=ov if i == 0 else tmp)
            if i:
                np.add(ov, tmp, out=ov)
        if C == 1:
            # lo + hi = (lo + 2**bits * hi) - (2**bits - 1) * hi
            np.multiply(ov, low, out=tmp)
            np.subtract(ev, tmp, out=ev)
            _finish(kind, ev, rt, D, bias, scratch, dt)
            return
        np.left_shift(ov, shift, out=tmp)
        np.subtract(ev, tmp, out=ev)
        s = _pair_sums(e, o, total, half, C, scratch)
        _finish(kind, s.reshape(ev.shape), rt, D, bias, scratch, dt)

    return tile


def _box_strided(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """avg/sum for other last kernels: rows summed in a wide signed integer, then the
    window's cells along the row (strided views); the same integer rounding."""
    D = math.prod(ks)
    top = max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    acc = next(np.dtype(t) for t in (np.int16, np.int32, np.int64)
               if D * top <= np.iinfo(t).max)
    k = ks[-1]

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = _rows(xt, ks)
        v = scratch.get("rows", rows[0].shape, acc)
        if len(rows) == 1:
            np.copyto(v, rows[0])
        else:
            np.add(rows[0], rows[1], out=v, dtype=acc)
            for r in rows[2:]:
                np.add(v, r, out=v, dtype=acc)
        cells = v.reshape(*v.shape[:-1], -1, k, C)
        s = scratch.get("sums", (*v.shape[:-1], v.shape[-1] // k), acc)
        sv = s.reshape(*v.shape[:-1], -1, C)
        if k == 1:
            np.copyto(sv, cells[..., 0, :])
        else:
            np.add(cells[..., 0, :], cells[..., 1, :], out=sv)
            for j in range(2, k):
                np.add(sv, cells[..., j, :], out=sv)
        _finish(kind, s, rt, D, 0, scratch)

    return tile


def _pair_sums(e: np.ndarray, o: np.ndarray, total: int, half: int, C: int,
               scratch: Scratch) -> np.ndarray:
    """Window sums in output order from the low/high lane sums of interleaved rows.

    ``e``/``o`` hold rows of ``half`` lanes back to back (``total`` lanes, then C zeros).
    Output cell q (pixel j, channel c = q % C) sums row positions p = 2jC + c and p + C.
    Position p is the low cell of lane p // 2 when p is even, the high cell when odd; so
    with Se[i] = V[2i] + V[2i + C] and So[i] = V[2i + 1] + V[2i + 1 + C], output q is
    Se[q - c/2] for even c and So[q - (c + 1)/2] for odd c: a fixed shift per channel.
    """
    ev, ov = e[:total], o[:total]
    se = scratch.get("se", (total,), e.dtype)
    so = scratch.get("so", (total,), e.dtype)
    if C % 2 == 0:
        h = C // 2
        np.add(ev, e[h:h + total], out=se)
        np.add(ov, o[h:h + total], out=so)
    else:
        np.add(ev, o[(C - 1) // 2:(C - 1) // 2 + total], out=se)
        np.add(ov, e[(C + 1) // 2:(C + 1) // 2 + total], out=so)
    s = ev  # e is no longer needed: the sums go there
    tmp = scratch.get("tmp", (total,), e.dtype)
    for c in range(C):
        src = se if c % 2 == 0 else so
        sh = (c + 1) // 2
        mask = _channel_mask(total, C, c, se.dtype)
        if c == 0:
            np.bitwise_and(src, mask, out=s)
            continue
        np.bitwise_and(src[:total - sh], mask[sh:], out=tmp[sh:])
        np.bitwise_or(s[sh:], tmp[sh:], out=s[sh:])
    return s


_MASKS: dict = {}


def _channel_mask(n: int, C: int, c: int, dt: np.dtype) -> np.ndarray:
    """All ones at the positions of channel c in a row of n interleaved cells, else 0."""
    key = (n, C, c, dt)
    m = _MASKS.get(key)
    if m is None:
        if len(_MASKS) > 64:
            _MASKS.clear()
        m = np.where(np.arange(n) % C == c, np.iinfo(dt).max, 0).astype(dt)
        _MASKS[key] = m
    return m


def _finish(kind: str, s: np.ndarray, rt: np.ndarray, D: int, bias: int,
            scratch: Scratch, lanes_of: np.dtype | None = None) -> None:
    """Write window sums ``s`` (each cell biased by ``bias``) as avg or sum into ``rt``.

    ``lanes_of``: the input dtype when ``s`` holds unsigned lanes of twice its width
    (then a result in that dtype is a plain narrowing). Signed sums (no bias) round the
    same way: NumPy's right shift and floor division round towards minus infinity.
    """
    out = rt.dtype
    lanes = s.dtype
    if kind == "sum" or out.kind == "f":
        v = scratch.get("wide", s.shape, np.int64 if kind == "sum" else np.float64)
        np.copyto(v, s)
        if bias:
            v -= bias * D
        if kind == "avg":
            v /= D
        np.copyto(rt, v, casting="unsafe")
        return
    # Round half to even: q = floor(s / D), plus one when the remainder is more than half
    # of D, or exactly half and q is odd.
    t = scratch.get("round", s.shape, lanes)
    if D == 1:
        q = s
    elif D & (D - 1) == 0:
        log = lanes.type(D.bit_length() - 1)
        np.right_shift(s, log, out=t)
        np.bitwise_and(t, lanes.type(1), out=t)
        np.add(s, t, out=s)
        if D > 2:
            np.add(s, lanes.type(D // 2 - 1), out=s)
        np.right_shift(s, log, out=s)
        q = s
    else:
        q = np.floor_divide(s, lanes.type(D), out=t)
        r2 = np.multiply(q, lanes.type(D))
        np.subtract(s, r2, out=r2)
        np.add(r2, r2, out=r2)  # twice the remainder
        up = (r2 > D) | ((r2 == D) & (q & lanes.type(1)).astype(bool))
        np.add(q, up, out=q)
    w = lanes.itemsize // 2
    if lanes_of is not None and out == lanes_of:
        # The input's own dtype: the mean is in range, narrowing keeps the low bits.
        if bias:
            np.bitwise_xor(q, lanes.type(bias), out=q)
        np.copyto(rt.view(_UNSIGNED[w]), q, casting="unsafe")
        return
    v = scratch.get("wide", s.shape, np.int64)
    np.copyto(v, q)
    if bias:
        v -= bias
    info = np.iinfo(out)
    np.clip(v, max(info.min, -(2**62)), min(info.max, 2**62), out=v)
    np.copyto(rt, v, casting="unsafe")


# --- mode -------------------------------------------------------------------------------


def _mode(dt: np.dtype, ks: tuple[int, ...], C: int):
    """Most frequent cell of each window, ties to the smallest, without sorting stacks."""
    u = _UNSIGNED[dt.itemsize]
    # Signed cells are compared in unsigned order: flipping the sign bit keeps the order.
    sign = u.type(1 << (8 * dt.itemsize - 1)) if dt.kind == "i" else None

    lanes = _LANES.get(dt.itemsize)
    pairs = ks == (2, 2) and C == 1 and lanes is not None

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        if pairs and rt.flags.c_contiguous:
            _mode_2x2_uniform(xt, rt, scratch)
            return
        cells = [c.view(u) for i, r in enumerate(_rows(xt, ks))
                 for c in _split(r, ks[-1], C, scratch, f"cell{i}_")]
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
        top, bottom = (r.view(lanes) for r in _rows(xt, ks))
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


# --- max and min ------------------------------------------------------------------------


def _extreme(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """max/min: rows first (contiguous), then the window's cells split along the row."""
    ufunc = np.maximum if kind == "max" else np.minimum

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = _rows(xt, ks)
        v = rows[0]
        if len(rows) > 1:
            v = ufunc(rows[0], rows[1], out=scratch.get("rows", rows[0].shape, dt))
            for r in rows[2:]:
                ufunc(v, r, out=v)
        cells = _split(v, ks[-1], C, scratch, "cell")
        if len(cells) == 1:
            np.copyto(rt, cells[0], casting="unsafe")
            return
        res = ufunc(cells[0], cells[1], out=cells[0])
        for c in cells[2:]:
            ufunc(res, c, out=res)
        np.copyto(rt, res, casting="unsafe")

    return tile


# --- running max and min (stride 1) -----------------------------------------------------


def running_job(plan: PoolPlan, x: np.ndarray, out_dtype: np.dtype):
    """max/min with stride 1 over one or two trailing pooled axes (any padding).

    Each tile reads its rows with the halo the windows need (identity rows where they
    fall in the padding, at the first and last tiles only), reduces the first pooled
    axis by doubling (max of shifted views: windows of 1, 2, 4, ... cells, the last step
    overlapping) into a buffer whose padding columns hold the identity, then the second
    axis the same way straight into the result. Every call is contiguous and writes into
    a reused buffer: the engine's path does the same reductions but allocates each step.
    """
    kind = plan.kind
    if (kind not in ("max", "min") or plan.return_indices or x.dtype != out_dtype
            or not x.dtype.isnative):
        return None
    dt = x.dtype
    if dt.kind not in "iuf":
        return None
    aps = plan.axis_plans
    if len(aps) > 2 or aps[-1].axis != x.ndim - 1 or (
            len(aps) == 2 and aps[0].axis != x.ndim - 2):
        return None
    if any(ap.adaptive or ap.stride != 1 or ap.dilation != 1 or ap.kernel < 3 for ap in aps):
        return None
    if not x.flags.c_contiguous:
        return None
    nan_skip = plan.ignore_nan and dt.kind == "f"
    ufunc = {"max": np.fmax if nan_skip else np.maximum,
             "min": np.fmin if nan_skip else np.minimum}[kind]
    if nan_skip:
        ident = np.nan
    elif dt.kind == "f":
        ident = -np.inf if kind == "max" else np.inf
    else:
        ident = np.iinfo(dt).min if kind == "max" else np.iinfo(dt).max
    # (B, rows, columns); one pooled axis: a unit row axis with a 1-cell window.
    if len(aps) == 2:
        a0, a1 = aps
        k0, b0_, n0, out0 = a0.kernel, a0.before, a0.n, a0.out
    else:
        a1 = aps[0]
        k0, b0_, n0, out0 = 1, 0, 1, 1
    k1, b1_, n1, out1 = a1.kernel, a1.before, a1.n, a1.out
    nb = x.size // (n0 * n1)
    xv = x.reshape(nb, n0, n1)
    width = out1 + k1 - 1  # the padded row the windows read (s = 1)

    def job(res: np.ndarray):
        rv = res.reshape(nb, out0, out1)

        def work(b0, b1, o0, o1, scratch):
            nrows = o1 - o0 + k0 - 1
            r_lo = o0 - b0_
            r_hi = r_lo + nrows
            if r_lo >= 0 and r_hi <= n0:
                src = xv[b0:b1, r_lo:r_hi]
            else:  # the first or last tile: identity rows stand for the padding
                src = scratch.get("halo", (b1 - b0, nrows, n1), dt)
                lo, hi = max(r_lo, 0), min(r_hi, n0)
                src[:, :lo - r_lo] = ident
                src[:, hi - r_lo:] = ident
                src[:, lo - r_lo:hi - r_lo] = xv[b0:b1, lo:hi]
            wide = scratch.get("wide", (b1 - b0, o1 - o0, width), dt)
            wide[..., :b1_] = ident
            wide[..., b1_ + n1:] = ident
            _doubling(src, 1, k0, ufunc, wide[..., b1_:b1_ + n1], scratch)
            _doubling(wide, 2, k1, ufunc, rv[b0:b1, o0:o1], scratch)

        # Tiles of half the usual size: three row buffers of a tile's size are live at
        # once here (measured on W4: 1 MiB tiles 10-15% faster than 2 MiB ones).
        work.tile_scale = 2
        return nb, out0, n1 * dt.itemsize, work

    return job


def _doubling(src: np.ndarray, axis: int, k: int, ufunc, out: np.ndarray,
              scratch: Scratch) -> None:
    """out[i] = ufunc over src[i : i + k] along ``axis``: windows of 1, 2, 4, ... cells by
    doubling, the last step overlapping (harmless for max and min)."""
    if k == 1:
        np.copyto(out, src)
        return

    def along(a, lo, hi):
        key = [slice(None)] * a.ndim
        key[axis] = slice(lo, hi)
        return a[tuple(key)]

    steps = []
    w = 1
    while 2 * w <= k:
        steps.append(w)
        w *= 2
    if w < k:
        steps.append(k - w)
    cur = src
    n = src.shape[axis]
    for i, sh in enumerate(steps):
        n -= sh
        if i == len(steps) - 1:
            dest = out
        else:
            shape = list(src.shape)
            shape[axis] = n
            dest = scratch.get(f"dbl{i % 2}", tuple(shape), src.dtype)
        ufunc(along(cur, 0, n), along(cur, sh, sh + n), out=dest)
        cur = dest


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
    u = _UNSIGNED[dt.itemsize] if dt.kind != "b" else np.dtype(np.uint8)
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
