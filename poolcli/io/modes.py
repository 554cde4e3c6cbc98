"""The one table of image modes: how each Pillow mode is held as an array once read.

``read_image`` converts to these modes, ``info`` and ``plan`` report shapes from them
without decoding, and writers check what each format can hold against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mode:
    """An image mode as poolcli holds it: the array dtype, channels, alpha, a description."""

    name: str
    dtype: np.dtype
    bands: int  # 1 means an (H, W) array; more means (H, W, bands)
    alpha: bool
    description: str


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("1", np.dtype(bool), 1, False, "1-bit"),
        Mode("L", np.dtype(np.uint8), 1, False, "8-bit grey"),
        Mode("LA", np.dtype(np.uint8), 2, True, "8-bit grey with alpha"),
        Mode("RGB", np.dtype(np.uint8), 3, False, "8-bit RGB"),
        Mode("RGBA", np.dtype(np.uint8), 4, True, "8-bit RGB with alpha"),
        Mode("I;16", np.dtype(np.uint16), 1, False, "16-bit grey"),
        # 16-bit PNG modes Pillow has no name for (read by io/png_read.py)
        Mode("LA;16", np.dtype(np.uint16), 2, True, "16-bit grey with alpha"),
        Mode("RGB;16", np.dtype(np.uint16), 3, False, "16-bit RGB"),
        Mode("RGBA;16", np.dtype(np.uint16), 4, True, "16-bit RGB with alpha"),
        Mode("I", np.dtype(np.int32), 1, False, "32-bit integer"),
        Mode("F", np.dtype(np.float32), 1, False, "32-bit float"),
        # palette indices, read only when asked (read_image(keep_palette=True)): kinds that
        # pick a cell pool labels, never a mix of colours
        Mode("P", np.dtype(np.uint8), 1, False, "8-bit palette"),
    )
}
# The array dtype that holds each mode exactly.
MODE_DTYPES: dict[str, np.dtype] = {name: m.dtype for name, m in MODES.items()}

# Modes Pillow may decode that are converted on load, and what to.
CONVERT: dict[str, str] = {
    "PA": "RGBA",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "HSV": "RGB",
    "LAB": "RGB",
}
# 16-bit greys in any byte order; NumPy gives them native order.
UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Conversions that change the colour space, after which the embedded ICC profile is wrong.
NEW_COLOUR_SPACE = frozenset({"CMYK", "HSV", "LAB"})


def loaded_mode(pil_mode: str, transparency: bool = False) -> str | None:
    """The mode an image of Pillow mode ``pil_mode`` is read as (None: not supported).

    A palette image becomes RGB, or RGBA when it has ``transparency``.

    >>> loaded_mode("CMYK"), loaded_mode("P", transparency=True), loaded_mode("I;16B")
    ('RGB', 'RGBA', 'I;16')
    """
    if pil_mode == "P":
        return "RGBA" if transparency else "RGB"
    if pil_mode in UINT16_MODES:
        return "I;16"
    mode = CONVERT.get(pil_mode, pil_mode)
    return mode if mode in MODES else None


def array_shape(mode: str, height: int, width: int) -> tuple[int, ...]:
    """The shape of the array that holds an image of ``mode``."""
    bands = MODES[mode].bands
    return (height, width) if bands == 1 else (height, width, bands)
