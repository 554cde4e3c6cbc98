"""Block pooling of integer arrays on views: the window's rows and cells (two cells per
lane of twice the width), exact avg and sum, max and min, and scratch buffers.

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
- max and min combine the rows first (contiguous), then the split pairs.

Each ``box``/``box_strided``/``extreme`` returns a function of one tile (input view,
result view, Scratch), as ``fast.plan_job`` lays the tiles out.
"""

from __future__ import annotations

import math

import numpy as np

LANES = {1: np.dtype(np.uint16), 2: np.dtype(np.uint32), 4: np.dtype(np.uint64)}
UNSIGNED = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
            8: np.dtype(np.uint64)}


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


def as_view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape without copying (AttributeError if the strides do not allow it)."""
    v = a.view()
    v.shape = shape
    return v


def window_rows(xt: np.ndarray, ks: tuple[int, ...]) -> list[np.ndarray]:
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


def split_cells(row: np.ndarray, k: int, C: int, scratch: Scratch, name: str) -> list[np.ndarray]:
    """The k cells of each window along a row (k windows' cells apart), as contiguous arrays."""
    if k == 1:
        return [row]
    w = row.dtype.itemsize
    shape = (*row.shape[:-1], row.shape[-1] // k)
    outs = [scratch.get(f"{name}{j}", shape, row.dtype) for j in range(k)]
    if k == 2 and C == 1 and w in LANES:
        # Two neighbours share one lane of twice the width: no strided copy.
        u = UNSIGNED[w]
        lanes = row.view(LANES[w])
        np.copyto(outs[0].view(u), lanes, casting="unsafe")  # keeps the low half
        t = scratch.get("split", shape, LANES[w])
        np.right_shift(lanes, LANES[w].type(8 * w), out=t)
        np.copyto(outs[1].view(u), t, casting="unsafe")
        return outs
    blocks = row.reshape(*row.shape[:-1], -1, k, C)
    for j in range(k):
        np.copyto(outs[j].reshape(*shape[:-1], -1, C), blocks[..., j, :])
    return outs


# --- avg and sum ------------------------------------------------------------------------


def box(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """avg/sum with last kernel 2: exact sums in lanes of twice the width, integer rounding."""
    w = dt.itemsize
    lanes = LANES[w]
    bits = 8 * w
    low = lanes.type((1 << bits) - 1)
    shift = lanes.type(bits)
    signed = dt.kind == "i"
    # Flipping both cells' sign bits maps a signed cell v to v + 2**(bits-1) >= 0.
    flip = lanes.type((1 << (bits - 1)) | (1 << (2 * bits - 1))) if signed else None
    bias = 1 << (bits - 1) if signed else 0
    D = math.prod(ks)

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = window_rows(xt, ks)
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


def box_strided(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """avg/sum for other last kernels: rows summed in a wide signed integer, then the
    window's cells along the row (strided views); the same integer rounding."""
    D = math.prod(ks)
    top = max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    acc = next(np.dtype(t) for t in (np.int16, np.int32, np.int64)
               if D * top <= np.iinfo(t).max)
    k = ks[-1]

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = window_rows(xt, ks)
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
        np.copyto(rt.view(UNSIGNED[w]), q, casting="unsafe")
        return
    v = scratch.get("wide", s.shape, np.int64)
    np.copyto(v, q)
    if bias:
        v -= bias
    info = np.iinfo(out)
    np.clip(v, max(info.min, -(2**62)), min(info.max, 2**62), out=v)
    np.copyto(rt, v, casting="unsafe")


# --- max and min ------------------------------------------------------------------------


def extreme(kind: str, dt: np.dtype, ks: tuple[int, ...], C: int):
    """max/min: rows first (contiguous), then the window's cells split along the row."""
    ufunc = np.maximum if kind == "max" else np.minimum

    def tile(xt: np.ndarray, rt: np.ndarray, scratch: Scratch) -> None:
        rows = window_rows(xt, ks)
        v = rows[0]
        if len(rows) > 1:
            v = ufunc(rows[0], rows[1], out=scratch.get("rows", rows[0].shape, dt))
            for r in rows[2:]:
                ufunc(v, r, out=v)
        cells = split_cells(v, ks[-1], C, scratch, "cell")
        if len(cells) == 1:
            np.copyto(rt, cells[0], casting="unsafe")
            return
        res = ufunc(cells[0], cells[1], out=cells[0])
        for c in cells[2:]:
            ufunc(res, c, out=res)
        np.copyto(rt, res, casting="unsafe")

    return tile
