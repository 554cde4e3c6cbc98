"""What an input holds, from its header: shape, dtype, image mode and size, no decoding."""

from __future__ import annotations

import io
import os
import sys
import warnings
from dataclasses import dataclass

from PIL import Image

from . import png_read
from .arrays import ArrayReadError, npz_headers, read_npy_header
from .inputs import NotAFile, open_regular
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


def describe_input(name: str, *, stdin_limit: int | None = None) -> InputInfo:
    """Read only what is needed to know an input's shape (ValueError if it can't be read).

    Nothing is decoded or allocated for the data: a .npz's members are known from their
    headers, an image from its header (a decompression bomb is described, not opened).
    ``stdin_limit`` caps the bytes read from standard input (``-``).
    """
    if name == "-":
        data = _read_capped(sys.stdin.buffer, stdin_limit)
        size, handle, head = len(data), io.BytesIO(data), data[:16]
    elif is_zarr_path(name):
        arr = open_input(name)
        return InputInfo(name, "zarr", tuple(arr.shape), str(arr.dtype), 0,
                         members=f"; chunks {'x'.join(map(str, arr.chunks))}")
    else:
        if os.path.isdir(name):
            raise ValueError("is a folder; name its files")
        try:
            handle = open_regular(name)
        except NotAFile as e:
            raise ValueError(str(e)) from None
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(16)
        handle.seek(0)
    with handle:
        return _describe(name, handle, head, size)


def _read_capped(stream, limit: int | None) -> bytes:
    data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise ValueError(f"standard input holds more than the memory limit of {limit:,} "
                         "bytes; save it to a file")
    return data


def _describe(name: str, handle, head: bytes, size: int) -> InputInfo:
    fmt = sniff_format(head)
    try:
        if fmt == "npy":
            h = read_npy_header(handle)
            return InputInfo(name, "npy", h.shape, str(h.dtype), size)
        if fmt == "npz":
            members = npz_headers(handle)
            first = next(iter(members.values()))
            return InputInfo(name, "npz", first.shape, str(first.dtype), size,
                             members=f"; {len(members)} arrays: {', '.join(members)}")
    except ArrayReadError as e:
        raise ValueError(str(e)) from None
    if fmt is None:
        raise ValueError("not a PNG, JPEG, TIFF, BMP, WebP, GIF, .npy or .npz file")
    handle.seek(0)
    head33 = handle.read(33)
    handle.seek(0)
    if png_read.pillow_loses_bits(head33):
        hdr = png_read.header(head33)
        mode = png_read.MODE_OF[hdr.colour_type]
        return InputInfo(name, fmt, array_shape(mode, hdr.height, hdr.width),
                         str(MODES[mode].dtype), size, mode=mode)
    if fmt == "tiff":
        from . import tiff

        src = handle.getvalue() if isinstance(handle, io.BytesIO) else name
        try:
            if tiff.needs_tifffile(src):
                return tiff.describe(name, src, size, InputInfo)
        except tiff.TiffReadError as e:
            raise ValueError(str(e)) from None
    try:
        with warnings.catch_warnings():
            # the header is only described: a large image is reported as it is
            warnings.simplefilter("ignore")
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(handle)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with im:
            # the mode and shape a run reads: a CMYK image is read as RGB, a palette image
            # as RGB(A) (kinds that pick a cell read its indices instead; see image.py)
            mode = loaded_mode(im.mode, im.mode == "P" and im.has_transparency_data)
            if mode is None:
                raise ValueError(f"image mode {im.mode} is not supported")
            return InputInfo(name, fmt, array_shape(mode, im.height, im.width),
                             str(MODES[mode].dtype), size, mode=im.mode)
    except ValueError:
        raise
    except Exception as e:  # Pillow's openers raise many types on a damaged header
        raise ValueError(f"cannot read the image header ({' '.join(str(e).split())})") from None
