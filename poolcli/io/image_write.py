"""Writing images through Pillow (PNG through our own encoder), in the mode they came in."""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..core.engine import resolve_threads
from ..core.kinds import bool_of_mean
from . import png
from .image_read import LoadedImage
from .modes import MODES
from .sniff import normalise_format

_PIL_FORMAT = {
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "bmp": "BMP",
    "webp": "WEBP",
    "gif": "GIF",
}
_FORMAT_ORDER = ("png", "tiff", "webp", "jpeg", "bmp", "gif")
# What each format holds without changing the mode or the values (checked with Pillow:
# BMP reads RGBA back as RGB, WebP and GIF silently convert what they cannot hold, PNG has
# no 32-bit or float samples).
_WRITABLE = {
    "png": frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16", "LA;16", "RGB;16", "RGBA;16",
                      "P"}),
    # the 16-bit multi-sample modes are written by tifffile (io/tiff.py)
    "tiff": frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F", "LA;16", "RGB;16",
                       "RGBA;16", "P"}),
    "bmp": frozenset({"1", "L", "RGB", "P"}),
    # GIF is a palette format: exact for up to 256 colours, alpha on or off (see _gif_image).
    "gif": frozenset({"1", "L", "RGB", "RGBA", "P"}),
    "webp": frozenset({"RGB", "RGBA"}),
    "jpeg": frozenset({"L", "RGB"}),
}
# Modes Pillow cannot write as TIFF; tifffile writes them.
_TIFFFILE_MODES = frozenset({"LA;16", "RGB;16", "RGBA;16"})
# The metadata each encoder accepts; the rest would be dropped or rejected by Pillow.
_METADATA = {
    "png": ("icc_profile", "dpi", "exif"),
    "tiff": ("icc_profile", "dpi", "exif", "compression"),
    "jpeg": ("icc_profile", "dpi", "exif"),
    "webp": ("icc_profile", "exif"),
    "bmp": ("dpi",),
    "gif": (),
}
_JPEG_QUALITY = 90  # the README's documented default


def to_image_dtype(array: np.ndarray, like: LoadedImage) -> np.ndarray:
    """Pooled values back in the dtype of ``like``'s mode.

    - Floats going to an integer mode are rounded half to even (``np.rint``), clipped to
      the dtype's range, and NaN becomes 0.
    - Integers are clipped to the dtype's range.
    - For a 1-bit image ("1"), a value >= 0.5 is white (True): an average of 1-bit pixels
      is the fraction of white ones, so this is a majority vote with ties going to white
      (``core.kinds.bool_of_mean``, the rule pyramids follow too).
    - Floats going to "F" are cast to float32.

    >>> like = LoadedImage(np.zeros((1, 1), np.uint8), "L", "png")
    >>> to_image_dtype(np.array([[0.5, 1.5, 2.5, -3.0, 300.0]]), like)
    array([[  0,   2,   2,   0, 255]], dtype=uint8)
    """
    target = MODES[like.mode].dtype
    array = np.asarray(array)
    if array.dtype == target:
        return array
    if target.kind == "b":
        return bool_of_mean(array)
    if target.kind == "f":
        return array.astype(target)
    if array.dtype.kind == "b":
        return array.astype(target)
    info = np.iinfo(target)
    if array.dtype.kind in "iu":
        # clip within both ranges, so neither bound overflows the source dtype
        src = np.iinfo(array.dtype)
        return np.clip(array, max(info.min, src.min), min(info.max, src.max)).astype(target)
    if array.dtype.kind != "f":
        raise TypeError(f"cannot write {array.dtype} values as a {like.mode} image")
    # float64 holds every bound of uint8..int32 exactly; float32 would round 2**31 - 1 up
    # to 2**31, which then wraps around
    work = np.rint(array.astype(np.float64))
    np.nan_to_num(work, copy=False, nan=0.0, posinf=info.max, neginf=info.min)
    return np.clip(work, info.min, info.max, out=work).astype(target)


# The output formats each encoder setting applies to; elsewhere it would do nothing.
SETTING_FORMATS = {"quality": ("jpeg", "webp"), "compress_level": ("png",)}
QUALITY = range(1, 101)  # JPEG and WebP
COMPRESS_LEVEL = range(0, 10)  # PNG's zlib level


def check_settings(quality: int | None = None, compress_level: int | None = None) -> None:
    """ValueError unless the encoder settings are in range (None: the default)."""
    for name, value, allowed in (("quality", quality, QUALITY),
                                 ("compress_level", compress_level, COMPRESS_LEVEL)):
        if value is not None and value not in allowed:
            raise ValueError(f"{name}={value} is out of range; use "
                             f"{allowed.start}..{allowed.stop - 1}")


def check_settings_apply(fmt: str, quality: int | None = None,
                         compress_level: int | None = None) -> None:
    """ValueError when a setting is given for a format whose encoder ignores it.

    >>> check_settings_apply("png", quality=80)
    Traceback (most recent call last):
    ValueError: `quality` applies to jpeg and webp outputs, not to png
    """
    for name, value in (("quality", quality), ("compress_level", compress_level)):
        if value is not None and fmt not in SETTING_FORMATS[name]:
            raise ValueError(f"`{name}` applies to {' and '.join(SETTING_FORMATS[name])} "
                             f"outputs, not to {fmt}")


def write_image(
    array: np.ndarray,
    dest: str | os.PathLike | BinaryIO,
    like: LoadedImage,
    *,
    format: str | None = None,
    quality: int | None = None,
    compress_level: int | None = None,
    threads: int | None = None,
) -> None:
    """Encode ``array`` in ``like``'s mode and bit depth, with its ICC profile, dpi and EXIF.

    ``format`` ("png", "jpg", "tiff", ...) defaults to ``like.format``. ``quality``
    (1-100, default 90) applies to JPEG and to WebP; WebP is lossless unless ``quality``
    is given. ``compress_level`` (0-9, default 6 as Pillow's) applies to PNG, which is
    encoded by :mod:`poolcli.io.png` on ``threads`` threads (default all cores) except a
    1-bit image, which Pillow encodes. GIF is exact for
    up to 256 colours with alpha taken as on (>= 128) or off; beyond that Pillow quantises.
    A TIFF keeps a lossless compression it was read with.

    The whole file is encoded before anything is written, so a failure leaves ``dest``
    untouched. Raises ValueError for a mode the format cannot hold, an unknown format,
    an out-of-range setting or an array whose shape does not fit the mode.
    """
    fmt = normalise_format(format) if format is not None else like.format
    if fmt not in _PIL_FORMAT:
        raise ValueError(
            f"cannot write an image as {format or like.format!r}; use png, jpeg, "
            "tiff, bmp, webp or gif"
        )
    if like.mode not in _WRITABLE[fmt]:
        can = ", ".join(f for f in _FORMAT_ORDER if like.mode in _WRITABLE[f])
        raise ValueError(
            f"{fmt} cannot hold a {like.mode} ({MODES[like.mode].description}) image "
            f"without changing it; write it as {can}"
        )
    check_settings(quality, compress_level)
    pixels = np.ascontiguousarray(to_image_dtype(array, like))
    bands = MODES[like.mode].bands
    bands = None if bands == 1 else bands
    expected = 2 if bands is None else 3
    if (
        pixels.ndim != expected
        or (bands is not None and pixels.shape[2] != bands)
        or 0 in pixels.shape
    ):
        want = "(H, W)" if bands is None else f"(H, W, {bands})"
        raise ValueError(
            f"an array of shape {pixels.shape} cannot be a {like.mode} image; "
            f"expected {want} with H, W >= 1"
        )

    params: dict[str, Any] = {k: like.info[k] for k in _METADATA[fmt] if like.info.get(k)}
    if fmt == "tiff" and like.mode in _TIFFFILE_MODES:
        from . import tiff

        mode = MODES[like.mode]
        tiff.write_tiff(tiff.image_stack(pixels, mode.bands, mode.alpha, params.get("dpi")),
                        dest)
        return
    if fmt == "png" and like.mode in png.MODES:
        buf = io.BytesIO()
        level = 6 if compress_level is None else compress_level
        png.write_png(pixels, buf, like.mode, level=level, threads=resolve_threads(threads),
                      **params)
        _put(buf.getbuffer(), dest)
        return
    if like.mode == "P":
        # palette indices with the palette they index (and its transparent entries)
        img = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
        img.putpalette(like.info.get("palette") or bytes(v for v in range(256) for _ in "rgb"))
        if fmt in ("png", "gif") and like.info.get("transparency") is not None:
            params["transparency"] = like.info["transparency"]
        if fmt == "gif":
            params["optimize"] = False  # Pillow would drop unused entries and renumber
    else:
        img = Image.fromarray(pixels)
    if fmt == "gif" and like.mode in ("RGB", "RGBA"):
        img = _gif_image(pixels, params) or img
    if fmt == "png" and compress_level is not None:
        params["compress_level"] = compress_level
    if fmt == "jpeg":
        params["quality"] = _JPEG_QUALITY if quality is None else quality
    if fmt == "webp":
        if quality is None:
            # exact=True keeps the colour under transparent pixels, which libwebp's lossless
            # mode would otherwise replace, so lossless really is lossless
            params.update(lossless=True, exact=True)
        else:
            params["quality"] = quality
    buf = io.BytesIO()
    try:
        img.save(buf, format=_PIL_FORMAT[fmt], **params)
    except (OSError, ValueError, KeyError, TypeError) as e:
        text = " ".join(str(e).split())
        raise ValueError(f"cannot write a {like.mode} image as {fmt} ({text})") from None
    _put(buf.getbuffer(), dest)


def _put(data: memoryview, dest: str | os.PathLike | BinaryIO) -> None:
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            f.write(data)
    else:
        dest.write(data)


def _gif_image(pixels: np.ndarray, params: dict[str, Any]) -> Image.Image | None:
    """An exact palette image of RGB(A) ``pixels`` if they have <= 256 colours, else None.

    Pillow's own conversion quantises RGBA approximately even for a handful of colours;
    building the palette here keeps every colour. Pixels with alpha < 128 all become the
    one transparent index, since GIF transparency is on or off.
    """
    rgb = pixels[..., :3].astype(np.uint32)
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if pixels.shape[2] == 4:
        key[pixels[..., 3] < 128] = 1 << 24  # sorts last, above every colour
    colours, index = np.unique(key, return_inverse=True)
    if len(colours) > 256:
        return None
    h, w = key.shape
    img = Image.frombytes("P", (w, h), index.astype(np.uint8).reshape(h, w).tobytes())
    palette = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    img.putpalette(palette.astype(np.uint8).tobytes())
    if colours[-1] == 1 << 24:
        params["transparency"] = len(colours) - 1
    return img
