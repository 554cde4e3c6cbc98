"""Reading 16-bit PNGs exactly: Pillow decodes 16-bit RGB, grey+alpha and RGBA to 8 bits.

Only what is needed for 16 bits per sample is here (colour types 0, 2, 4 and 6, not
interlaced); 8-bit PNGs are Pillow's. Rows are unfiltered in anti-diagonal wavefronts:
a pixel depends on its left, upper and upper-left neighbours only, so every pixel with
the same ``row + column`` is decoded in one NumPy step (height + width steps in all),
whatever mix of the five filters the rows use.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .png import SIGNATURE

# colour type -> the mode the image is held in (poolcli.io.modes), 16 bits per sample
MODE_OF = {0: "I;16", 4: "LA;16", 2: "RGB;16", 6: "RGBA;16"}
CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


class PngReadError(ValueError):
    """A 16-bit PNG that cannot be read exactly (the message says why)."""


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    depth: int
    colour_type: int
    interlace: int


def header(data: bytes) -> PngHeader | None:
    """The IHDR of PNG ``data`` (its first 33 bytes are enough), or None if not a PNG."""
    if not data.startswith(SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return PngHeader(w, h, depth, ctype, interlace)


def pillow_loses_bits(head: bytes) -> bool:
    """True for a PNG (by its first 33 bytes) that Pillow would decode at 8 bits.

    That is 16-bit RGB, grey+alpha and RGBA; Pillow reads 16-bit grey exactly (I;16).
    """
    h = header(head)
    return h is not None and h.depth == 16 and h.colour_type in (2, 4, 6)


def _chunks(data: bytes):
    at = len(SIGNATURE)
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind = data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        if len(body) != length or at + 12 + length > len(data):
            raise PngReadError("truncated PNG chunk " + kind.decode("latin-1"))
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise PngReadError(f"corrupt PNG chunk {kind.decode('latin-1')} (CRC mismatch)")
        yield kind, body
        if kind == b"IEND":
            return
        at += 12 + length
    raise PngReadError("truncated PNG: no IEND chunk")


def read_png16(data: bytes) -> tuple[np.ndarray, str, dict[str, Any]]:
    """Decode a 16-bit PNG: (uint16 array (H, W) or (H, W, C), mode, metadata).

    The metadata are ``icc_profile`` and ``dpi`` as Pillow reports them. Raises
    PngReadError for what cannot be read exactly (interlaced, a transparency key, bad data).
    """
    hdr = header(data)
    if hdr is None or hdr.depth != 16 or hdr.colour_type not in MODE_OF:
        raise PngReadError("not a 16-bit grey, grey+alpha, RGB or RGBA PNG")
    if hdr.interlace:
        raise PngReadError("interlaced (Adam7) 16-bit PNGs are not read; save it without "
                           "interlacing")
    idat, info = [], {}
    for kind, body in _chunks(data):
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            raise PngReadError("16-bit PNGs with a transparency key (tRNS) are not read "
                               "exactly; add an alpha channel instead")
        elif kind == b"iCCP":
            name_end = body.index(b"\0")
            info["icc_profile"] = zlib.decompress(body[name_end + 2:])
        elif kind == b"pHYs" and len(body) == 9:
            px, py, unit = struct.unpack(">IIB", body)
            if unit == 1:
                info["dpi"] = (px * 0.0254, py * 0.0254)
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise PngReadError(f"corrupt PNG image data ({e})") from None
    channels = CHANNELS[hdr.colour_type]
    bpp = 2 * channels
    row = 1 + hdr.width * bpp
    if len(raw) < row * hdr.height or hdr.width == 0 or hdr.height == 0:
        raise PngReadError("truncated PNG image data")
    rows = np.frombuffer(raw, np.uint8, row * hdr.height).reshape(hdr.height, row)
    filters = rows[:, 0]
    if filters.max() > 4:
        raise PngReadError(f"corrupt PNG image data (filter type {int(filters.max())})")
    pixels = unfilter(rows[:, 1:].reshape(hdr.height, hdr.width, bpp), filters)
    arr = pixels.reshape(-1).view(">u2").reshape(hdr.height, hdr.width, channels)
    arr = arr.astype(np.uint16)  # native byte order
    if channels == 1:
        arr = arr[..., 0]
    return arr, MODE_OF[hdr.colour_type], info


def unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo the PNG row filters: (H, W, bpp) filtered bytes -> (H, W, bpp) bytes.

    Works on anti-diagonals r + c = d, each one step, since a decoded pixel needs only
    decoded pixels to its left, above and above-left.
    """
    h, w, bpp = filtered.shape
    if not filters.any():
        return filtered.copy()
    out = np.zeros((h + 1, w + 1, bpp), np.int16)  # a zero row above, a zero column left
    x = filtered.astype(np.int16)
    ft = filters.astype(np.int8)
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h, d + 1))
        c = d - r
        a = out[r + 1, c]  # left
        b = out[r, c + 1]  # above
        cc = out[r, c]  # above-left
        f = ft[r][:, None]
        pa, pb, pc = np.abs(b - cc), np.abs(a - cc), np.abs(a + b - 2 * cc)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, cc))
        pred = np.select([f == 1, f == 2, f == 3, f == 4],
                         [a, b, (a + b) >> 1, paeth], 0)
        out[r + 1, c + 1] = (x[r, c] + pred) & 0xFF
    return out[1:, 1:].astype(np.uint8)
