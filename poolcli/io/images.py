"""Images through Pillow: each mode as an array that holds it exactly, written back the same way."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..pool import resolve_threads
from . import png
from .sniff import normalise_format

# The array dtype that holds each mode exactly (after the conversions in read_image).
MODE_DTYPES: dict[str, np.dtype] = {
    "1": np.dtype(bool),
    "L": np.dtype(np.uint8),
    "LA": np.dtype(np.uint8),
    "RGB": np.dtype(np.uint8),
    "RGBA": np.dtype(np.uint8),
    "I;16": np.dtype(np.uint16),
    "I": np.dtype(np.int32),
    "F": np.dtype(np.float32),
}
# Channels of the multi-band modes; every other mode is an (H, W) array.
_BANDS = {"LA": 2, "RGB": 3, "RGBA": 4}
_ALPHA_MODES = frozenset({"LA", "RGBA"})
_DESCRIBE = {
    "1": "1-bit",
    "L": "8-bit grey",
    "LA": "8-bit grey with alpha",
    "RGB": "8-bit RGB",
    "RGBA": "8-bit RGB with alpha",
    "I;16": "16-bit grey",
    "I": "32-bit integer",
    "F": "32-bit float",
}

# Modes Pillow may decode that are converted on load, and what to.
_CONVERT = {
    "PA": "RGBA",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "HSV": "RGB",
    "LAB": "RGB",
}
# 16-bit greys in a byte order other than little-endian; NumPy gives them native order.
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Conversions that change the colour space, after which the embedded ICC profile is wrong.
_NEW_COLOUR_SPACE = frozenset({"CMYK", "HSV", "LAB"})

# Only the formats the spec promises are opened, so "png" in a report means PNG.
_OPEN_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")
# Pillow's JPEG opener calls a camera JPEG with an MPF segment "MPO"; it is a JPEG to
# anyone else, and written back as one.
_FORMAT_NAMES = {"mpo": "jpeg"}
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
    "png": frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16"}),
    "tiff": frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F"}),
    "bmp": frozenset({"1", "L", "RGB"}),
    # GIF is a palette format: exact for up to 256 colours, alpha on or off (see _gif_image).
    "gif": frozenset({"1", "L", "RGB", "RGBA"}),
    "webp": frozenset({"RGB", "RGBA"}),
    "jpeg": frozenset({"L", "RGB"}),
}
# The metadata each encoder accepts; the rest would be dropped or rejected by Pillow.
_METADATA = {
    "png": ("icc_profile", "dpi", "exif"),
    "tiff": ("icc_profile", "dpi", "exif", "compression"),
    "jpeg": ("icc_profile", "dpi", "exif"),
    "webp": ("icc_profile", "exif"),
    "bmp": ("dpi",),
    "gif": (),
}
# TIFF compressions that lose nothing and work for every mode, so they are kept.
_LOSSLESS_TIFF = frozenset({"tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"})
# TIFF tags that describe one file's layout. Pillow reports them as EXIF for a TIFF, and
# written into another file they would describe the wrong image (a TIFF encoder even obeys
# the old width), so they are never carried over.
_LAYOUT_TAGS = frozenset(
    {
        254,
        255,
        256,
        257,
        258,
        259,
        262,
        263,
        266,
        273,
        277,
        278,
        279,
        280,
        281,
        282,
        283,
        284,
        288,
        289,
        290,
        291,
        296,
        317,
        320,
        322,
        323,
        324,
        325,
        338,
        339,
        340,
        341,
        347,
        530,
        531,
        532,
        34675,
    }
)
_ORIENTATION = 0x0112
_JPEG_QUALITY = 90  # the README's documented default
_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


class ImageReadError(Exception):
    """An image that cannot be read: corrupt, truncated, unsupported, or too large."""


@dataclass
class LoadedImage:
    """Pixels as an (H, W) or (H, W, C) array, and what is needed to write them back.

    ``array`` may be read-only (it can share memory with Pillow's decoded buffer).
    ``mode`` is one of the keys of MODE_DTYPES; ``format`` is "png", "jpeg", ... ;
    ``info`` holds the metadata a writer keeps: ``icc_profile``, ``dpi``, ``exif`` (bytes,
    orientation already applied and reset to 1) and, for a TIFF, a lossless ``compression``.
    """

    array: np.ndarray
    mode: str
    format: str
    info: dict[str, Any] = field(default_factory=dict)
    alpha: bool = False


def read_image(src: str | os.PathLike | bytes, *, max_pixels: int | None = None) -> LoadedImage:
    """Decode the first frame of an image file, or of ``bytes`` holding one.

    EXIF orientation is applied, so the array is the right way up. Palette images become
    RGB, or RGBA when they have transparency; CMYK, YCbCr and other colour spaces become
    RGB (through the embedded ICC profile for CMYK when there is one). 16-bit greys are
    uint16 in native byte order.

    ``max_pixels`` is the largest width*height accepted; None means Pillow's
    ``Image.MAX_IMAGE_PIXELS``. Pillow itself refuses more than twice its own limit before
    this check can run, so a higher ``max_pixels`` needs that limit raised too.

    Raises ImageReadError for data that is not a readable image; an OSError from opening
    the file (missing, permission denied) is raised as it is.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        handle: BinaryIO = io.BytesIO(src)
    else:
        handle = open(src, "rb")  # noqa: SIM115 - closed below, after decoding
    with handle:
        return _decode(handle, max_pixels)


def _decode(handle: BinaryIO, max_pixels: int | None) -> LoadedImage:
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; that must refuse too. With
            # an explicit max_pixels the check below replaces Pillow's warning.
            action = "error" if max_pixels is None else "ignore"
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            with Image.open(handle, formats=_OPEN_FORMATS) as im:
                fmt = (im.format or "").lower()
                fmt = _FORMAT_NAMES.get(fmt, fmt)
                width, height = im.size
                # Checked here as well, since warning filters are process-wide and another
                # thread may have reset them.
                if limit is not None and width * height > limit:
                    raise ImageReadError(
                        _too_large(f"{width}x{height} = {width * height:,}", limit)
                    )
                exif = im.getexif()
                had_orientation = _ORIENTATION in exif
                im.load()
                turn = exif.get(_ORIENTATION, 1) in range(2, 9)
                # exif_transpose copies even when there is nothing to turn; skip that copy
                img = ImageOps.exif_transpose(im) if turn else im
                return _to_loaded(img, fmt, had_orientation=had_orientation)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = _BOMB.search(str(e))
        if m is None:
            raise ImageReadError(f"refused as a possible decompression bomb: {e}") from None
        raise ImageReadError(_too_large(f"{int(m[1]):,}", int(m[2]))) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            "not a PNG, JPEG, TIFF, BMP, WebP or GIF image, or its header is corrupt"
        ) from None
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise many types on bad data
        text = " ".join(str(e).split()) or type(e).__name__
        raise ImageReadError(f"corrupt or truncated image data ({text})") from None


def _too_large(pixels: str, limit: int) -> str:
    return (
        f"image of {pixels} pixels is over the limit of {limit:,} pixels "
        "(refused as a possible decompression bomb)"
    )


def _to_loaded(img: Image.Image, fmt: str, *, had_orientation: bool) -> LoadedImage:
    """The decoded image as an array in an exact dtype, with the metadata to keep."""
    info: dict[str, Any] = {}
    if img.info.get("icc_profile"):
        info["icc_profile"] = img.info["icc_profile"]
    if img.info.get("dpi"):
        info["dpi"] = tuple(img.info["dpi"])
    if fmt == "tiff" and img.info.get("compression") in _LOSSLESS_TIFF:
        info["compression"] = img.info["compression"]
    exif = img.getexif()
    for tag in _LAYOUT_TAGS & set(exif):
        del exif[tag]
    if had_orientation:
        exif[_ORIENTATION] = 1  # the pixels were turned already
    if len(exif):
        info["exif"] = exif.tobytes()

    mode = img.mode
    if mode == "P":
        target = "RGBA" if img.has_transparency_data else "RGB"
        img, mode = img.convert(target), target
    elif mode == "CMYK" and "icc_profile" in info:
        img, info = _cmyk_to_srgb(img, info)
        mode = img.mode
    elif mode in _CONVERT:
        try:
            img = img.convert(_CONVERT[mode])
        except ValueError:
            raise ImageReadError(
                f"image mode {mode} cannot be converted to {_CONVERT[mode]}"
            ) from None
        if mode in _NEW_COLOUR_SPACE:
            info.pop("icc_profile", None)
        mode = _CONVERT[mode]
    elif mode in _UINT16_MODES:
        mode = "I;16"
    if mode not in MODE_DTYPES:
        raise ImageReadError(f"image mode {img.mode} is not supported")
    arr = np.asarray(img)
    if arr.dtype != MODE_DTYPES[mode]:
        arr = arr.astype(MODE_DTYPES[mode])
    return LoadedImage(arr, mode, fmt, info, alpha=mode in _ALPHA_MODES)


def _cmyk_to_srgb(img: Image.Image, info: dict[str, Any]) -> tuple[Image.Image, dict[str, Any]]:
    """CMYK through its own ICC profile to sRGB; a naive conversion if that fails."""
    info = dict(info)
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(info["icc_profile"]))
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        out = ImageCms.profileToProfile(img, source, srgb, outputMode="RGB")
        info["icc_profile"] = srgb.tobytes()
        return out, info
    except (ImportError, OSError, ValueError, TypeError):
        # ImageCms.PyCMSError is an OSError; a profile that does not fit CMYK lands here
        info.pop("icc_profile", None)
        return img.convert("RGB"), info


def to_image_dtype(array: np.ndarray, like: LoadedImage) -> np.ndarray:
    """Pooled values back in the dtype of ``like``'s mode.

    - Floats going to an integer mode are rounded half to even (``np.rint``), clipped to
      the dtype's range, and NaN becomes 0.
    - Integers are clipped to the dtype's range.
    - For a 1-bit image ("1"), a value >= 0.5 is white (True): an average of 1-bit pixels
      is the fraction of white ones, so this is a majority vote with ties going to white.
    - Floats going to "F" are cast to float32.

    >>> like = LoadedImage(np.zeros((1, 1), np.uint8), "L", "png")
    >>> to_image_dtype(np.array([[0.5, 1.5, 2.5, -3.0, 300.0]]), like)
    array([[  0,   2,   2,   0, 255]], dtype=uint8)
    """
    target = MODE_DTYPES[like.mode]
    array = np.asarray(array)
    if array.dtype == target:
        return array
    if target.kind == "b":
        return array >= 0.5
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
            f"{fmt} cannot hold a {like.mode} ({_DESCRIBE[like.mode]}) image "
            f"without changing it; write it as {can}"
        )
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality {quality} is out of range; use 1..100")
    if compress_level is not None and not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level {compress_level} is out of range; use 0..9")
    pixels = np.ascontiguousarray(to_image_dtype(array, like))
    bands = _BANDS.get(like.mode)
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
    if fmt == "png" and like.mode in png.MODES:
        buf = io.BytesIO()
        level = 6 if compress_level is None else compress_level
        png.write_png(pixels, buf, like.mode, level=level, threads=resolve_threads(threads),
                      **params)
        _put(buf.getbuffer(), dest)
        return
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


def premultiplied(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (H, W, C) whose last channel is alpha into float64 colour*alpha and alpha.

    Alpha-weighted averaging, as libvips does: pool both results with the same average
    pooling, then call ``unpremultiply``. Each output colour is then
    ``sum(colour * alpha) / sum(alpha)`` over the window, so a transparent pixel adds
    nothing to its neighbours' colour (no dark fringes), while the output alpha is the
    plain average of the alphas. Returns colour of shape (H, W, C-1) and alpha (H, W, 1).

    >>> c, a = premultiplied(np.array([[[0, 0, 0, 0], [255, 255, 255, 255]]], np.uint8))
    >>> unpremultiply(c.mean(axis=1, keepdims=True), a.mean(axis=1, keepdims=True))
    array([[[255. , 255. , 255. , 127.5]]])
    """
    if array.ndim != 3 or array.shape[2] < 2:
        raise ValueError(
            f"premultiplied needs (H, W, C) with C >= 2, the last channel "
            f"alpha; got shape {array.shape}"
        )
    alpha = array[..., -1:].astype(np.float64)
    return array[..., :-1].astype(np.float64) * alpha, alpha


def unpremultiply(colour_sum: np.ndarray, alpha_sum: np.ndarray) -> np.ndarray:
    """Pooled colour*alpha divided by pooled alpha, with the pooled alpha as last channel.

    Where the pooled alpha is 0 (a window of fully transparent pixels) the colour is 0.
    ``alpha_sum`` may be (H', W', 1) or (H', W'). Returns float64 (H', W', C).
    """
    colour_sum = np.asarray(colour_sum, dtype=np.float64)
    alpha_sum = np.asarray(alpha_sum, dtype=np.float64)
    if alpha_sum.ndim == colour_sum.ndim - 1:
        alpha_sum = alpha_sum[..., None]
    colour = np.zeros_like(colour_sum)
    np.divide(colour_sum, alpha_sum, out=colour, where=alpha_sum > 0)
    return np.concatenate([colour, alpha_sum], axis=-1)
