"""What an input holds, from its header: shape, dtype, image mode and size, no decoding."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import png_read
from .arrays import ArrayReadError, npy_header, read_arrays
from .modes import MODES, array_shape, loaded_mode
from .sniff import sniff_format
from .zarr_store import is_zarr_path, open_input


@dataclass
class InputInfo:
    """What an input holds, from its header."""

    name: str
    format: str
    shape: tuple[int, ...]
    dtype: str
    size: int
    mode: str | None = None
    members: str = ""

    @property
    def image(self) -> bool:
        return self.mode is not None


def describe_input(name: str) -> InputInfo:
    """Read only what is needed to know an input's shape (ValueError if it can't be read)."""
    data = b""
    if name == "-":
        data = sys.stdin.buffer.read()
        size, handle, head = len(data), io.BytesIO(data), data[:16]
    elif is_zarr_path(name):
        arr = open_input(name)
        return InputInfo(name, "zarr", tuple(arr.shape), str(arr.dtype), 0,
                         members=f"; chunks {'x'.join(map(str, arr.chunks))}")
    else:
        if os.path.isdir(name):
            raise ValueError("is a folder; name its files")
        size = os.path.getsize(name)
        with open(name, "rb") as f:
            head = f.read(16)
        handle = name
    fmt = sniff_format(head)
    if fmt == "npy":
        if isinstance(handle, io.BytesIO):
            arr = np.load(handle, allow_pickle=False)
            return InputInfo(name, "npy", arr.shape, str(arr.dtype), size)
        try:
            shape, dtype = npy_header(handle)
        except ArrayReadError as e:
            raise ValueError(str(e)) from None
        return InputInfo(name, "npy", shape, str(dtype), size)
    if fmt == "npz":
        try:
            members = read_arrays(data if name == "-" else name)
        except ArrayReadError as e:
            raise ValueError(str(e)) from None
        first = next(iter(members.values()))
        return InputInfo(name, "npz", first.shape, str(first.dtype), size,
                         members=f"; {len(members)} arrays: {', '.join(members)}")
    if fmt is None:
        raise ValueError("not a PNG, JPEG, TIFF, BMP, WebP, GIF, .npy or .npz file")
    if name == "-":
        head33 = data[:33]
    else:
        with open(name, "rb") as f:
            head33 = f.read(33)
    if png_read.pillow_loses_bits(head33):
        hdr = png_read.header(head33)
        mode = png_read.MODE_OF[hdr.colour_type]
        return InputInfo(name, fmt, array_shape(mode, hdr.height, hdr.width),
                         str(MODES[mode].dtype), size, mode=mode)
    if fmt == "tiff":
        from . import tiff

        try:
            if tiff.needs_tifffile(data if name == "-" else name):
                return tiff.describe(name, data if name == "-" else name, size, InputInfo)
        except tiff.TiffReadError as e:
            raise ValueError(str(e)) from None
    try:
        with Image.open(handle) as im:
            # the mode and shape a run reads: a CMYK image is read as RGB, a palette image
            # as RGB(A) (kinds that pick a cell read its indices instead; see image.py)
            mode = loaded_mode(im.mode, im.mode == "P" and im.has_transparency_data)
            if mode is None:
                raise ValueError(f"image mode {im.mode} is not supported")
            return InputInfo(name, fmt, array_shape(mode, im.height, im.width),
                             str(MODES[mode].dtype), size, mode=im.mode)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read the image header ({e})") from None
