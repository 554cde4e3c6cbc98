"""Images through Pillow: modes <-> arrays that hold them exactly, metadata, EXIF orientation."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# The array dtype that holds each mode exactly (after the conversions in read_image).
MODE_DTYPES: dict[str, np.dtype] = {
    "1": np.dtype(bool), "L": np.dtype(np.uint8), "LA": np.dtype(np.uint8),
    "RGB": np.dtype(np.uint8), "RGBA": np.dtype(np.uint8), "I;16": np.dtype(np.uint16),
    "I": np.dtype(np.int32), "F": np.dtype(np.float32),
}
# Modes converted on load, to the nearest mode above.
_CONVERT = {"P": None, "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "CMYK": "RGB",
            "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB", "I;16B": "I;16",
            "I;16L": "I;16", "I;16N": "I;16"}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "webp": "WEBP",
               "gif": "GIF"}


class ImageReadError(Exception):
    """An image that cannot be read: corrupt, unsupported, or too large."""


@dataclass
class LoadedImage:
    """Pixels as an (H, W) or (H, W, C) array, and what is needed to write them back."""

    array: np.ndarray
    mode: str
    format: str
    info: dict[str, Any] = field(default_factory=dict)
    alpha: bool = False


def read_image(src: str | os.PathLike | bytes, *, max_pixels: int | None = None) -> LoadedImage:
    """Decode an image; EXIF orientation is applied, palettes become RGB or RGBA."""
    handle = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as im:
                fmt = (im.format or "").lower()
                pixels = im.width * im.height
                if max_pixels is not None and pixels > max_pixels:
                    raise ImageReadError(f"image of {im.width}x{im.height} = {pixels} pixels is "
                                         f"over the limit of {max_pixels}")
                im.load()
                img = ImageOps.exif_transpose(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"refused as a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageReadError(f"cannot be decoded ({e})") from None
    info: dict[str, Any] = {}
    for key in ("icc_profile", "dpi"):
        if img.info.get(key):
            info[key] = img.info[key]
    exif = img.getexif()
    if exif:
        exif[0x0112] = 1  # orientation was applied to the pixels
        info["exif"] = exif.tobytes()
    mode = img.mode
    if mode in _CONVERT:
        target = _CONVERT[mode]
        if mode == "P":
            target = "RGBA" if ("transparency" in img.info or img.has_transparency_data) \
                else "RGB"
        img = img.convert(target)
        mode = target
    if mode not in MODE_DTYPES:
        raise ImageReadError(f"image mode {mode} is not supported")
    arr = np.asarray(img)
    if arr.dtype != MODE_DTYPES[mode]:
        arr = arr.astype(MODE_DTYPES[mode])
    return LoadedImage(arr, mode, fmt, info, alpha=mode in ("LA", "RGBA"))


def to_image_dtype(array: np.ndarray, like: LoadedImage) -> np.ndarray:
    """Pooled values back in the image's dtype: floats rounded half to even and clipped.

    A 1-bit image's pooled values become True where they are >= 0.5.
    """
    target = MODE_DTYPES[like.mode]
    if array.dtype == target:
        return array
    if target.kind == "b":
        return np.asarray(array) >= 0.5
    if target.kind == "f":
        return array.astype(target)
    info = np.iinfo(target)
    if array.dtype.kind == "f":
        array = np.rint(array)
        np.nan_to_num(array, copy=False, nan=0.0)
    return np.clip(array, info.min, info.max).astype(target)


def write_image(array: np.ndarray, dest: str | os.PathLike | BinaryIO, like: LoadedImage, *,
                format: str | None = None, quality: int | None = None,
                compress_level: int | None = None) -> None:
    """Encode ``array`` in ``like``'s mode and bit depth; ValueError if the format can't."""
    fmt = (format or like.format or "png").lower()
    if fmt not in _PIL_FORMAT:
        raise ValueError(f"cannot write images as {fmt}; use png, jpeg, tiff, bmp, webp or gif")
    pixels = to_image_dtype(np.ascontiguousarray(array), like)
    if like.mode == "I;16":
        img = Image.frombytes("I;16", (pixels.shape[1], pixels.shape[0]),
                              pixels.astype("<u2").tobytes())
    else:
        img = Image.fromarray(pixels)
    params: dict[str, Any] = {k: v for k, v in like.info.items()
                              if k in ("icc_profile", "dpi", "exif")}
    if fmt == "png" and compress_level is not None:
        params["compress_level"] = compress_level
    if fmt in ("jpeg", "webp"):
        params["quality"] = 90 if quality is None else quality
    if fmt == "webp" and quality is None:
        params["lossless"] = True  # pooled data should come back exactly unless asked
    if fmt in ("bmp", "gif"):
        params.pop("exif", None)
    buf = io.BytesIO()
    try:
        img.save(buf, format=_PIL_FORMAT[fmt], **params)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot write a {like.mode} image as {fmt} ({e}); choose another "
                         "--format (png and tiff hold every mode)") from None
    data = buf.getvalue()
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            f.write(data)
    else:
        dest.write(data)


def premultiplied(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour * alpha, alpha) as float64 from (H, W, C) whose last channel is alpha.

    Averaging both and dividing (unpremultiply) weights each colour by its opacity, so a
    transparent pixel does not pull its neighbours' colour towards its own (libvips does
    the same).
    """
    alpha = array[..., -1:].astype(np.float64)
    return array[..., :-1] * alpha, alpha


def unpremultiply(colour_sum: np.ndarray, alpha_sum: np.ndarray) -> np.ndarray:
    """Pooled colour*alpha divided by pooled alpha (0 where alpha is 0), alpha re-attached."""
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(alpha_sum > 0, colour_sum / alpha_sum, 0.0)
    return np.concatenate([colour, alpha_sum], axis=-1)
