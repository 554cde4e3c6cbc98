"""Reading images through Pillow: each mode as an array that holds it exactly."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .inputs import open_regular
from .modes import CONVERT, MODES, NEW_COLOUR_SPACE, loaded_mode

# Only the formats the spec promises are opened, so "png" in a report means PNG.
_OPEN_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")
# Pillow's JPEG opener calls a camera JPEG with an MPF segment "MPO"; it is a JPEG to
# anyone else, and written back as one.
_FORMAT_NAMES = {"mpo": "jpeg"}

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
_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


class ImageReadError(Exception):
    """An image that cannot be read: corrupt, truncated, unsupported, or too large."""


@dataclass
class LoadedImage:
    """Pixels as an (H, W) or (H, W, C) array, and what is needed to write them back.

    ``array`` may be read-only (it can share memory with Pillow's decoded buffer).
    ``mode`` is one of the keys of modes.MODES; ``format`` is "png", "jpeg", ... ;
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
        handle = open_regular(src)
    with handle:
        return _decode(handle, max_pixels)


def _decode(handle: BinaryIO, max_pixels: int | None) -> LoadedImage:
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if handle.read(8) == _PNG_SIGNATURE:
        _check_png(handle)  # Pillow checks no IDAT CRC, and ends at a short stream quietly
    handle.seek(0)
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
                why = _inexact(im, fmt)
                if why is not None:
                    raise ImageReadError(why)
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
        raise ImageReadError(_too_large(f"{int(m[1]):,}", limit)) from None
    except UnidentifiedImageError:
        raise ImageReadError(_NOT_AN_IMAGE) from None
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise many types on bad data
        text = " ".join(str(e).split()) or type(e).__name__
        raise ImageReadError(f"corrupt or truncated image data ({text})") from None


def _inexact(im: Image.Image, fmt: str) -> str | None:
    """Why Pillow would decode this file inexactly, or None when it reads it whole.

    The one place that refuses what cannot yet be read exactly (the specification: no
    format is decoded at a lower bit depth or with fewer frames than the file holds).
    """
    frames = getattr(im, "n_frames", 1)
    if fmt == "tiff" and frames > 1:
        return (f"a TIFF of {frames} pages; poolcli reads single-page TIFFs only for now, "
                "and pooling the first page alone would lose the others")
    if fmt == "png" and im.tile:
        args = im.tile[0].args
        raw = args if isinstance(args, str) else (args[0] if args else "")
        if ";16" in str(raw) and im.mode in ("RGB", "RGBA", "LA"):
            return (f"a 16-bit {im.mode} PNG; poolcli reads 16 bits per sample only for "
                    "greyscale PNGs for now, and 8 bits would lose the low byte")
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NOT_AN_IMAGE = "not a PNG, JPEG, TIFF, BMP, WebP or GIF image, or its header is corrupt"


def _check_png(f: BinaryIO) -> None:
    """Every chunk whole and its CRC right, up to IEND (ImageReadError otherwise)."""
    import struct
    import zlib

    while True:
        at = f.tell()
        head = f.read(8)
        if len(head) < 8:
            raise ImageReadError(f"truncated PNG: the file ends at byte {at:,}, before its "
                                 "IEND chunk")
        length, ctype = struct.unpack(">I4s", head)
        if at == 8 and (ctype != b"IHDR" or length != 13):
            raise ImageReadError(_NOT_AN_IMAGE)
        if not ctype.isalpha():
            raise ImageReadError(f"corrupt PNG: the bytes at {at:,} are not a chunk")
        crc, left = zlib.crc32(ctype), length
        while left:
            piece = f.read(min(left, 1 << 20))
            if not piece:
                raise ImageReadError(f"truncated PNG: the file ends inside its "
                                     f"{ctype.decode('latin-1')} chunk at byte {at:,}")
            crc, left = zlib.crc32(piece, crc), left - len(piece)
        stored = f.read(4)
        if len(stored) < 4:
            raise ImageReadError(f"truncated PNG: the file ends inside its "
                                 f"{ctype.decode('latin-1')} chunk at byte {at:,}")
        if struct.unpack(">I", stored)[0] != crc:
            raise ImageReadError(f"corrupt PNG: the {ctype.decode('latin-1')!r} chunk at "
                                 f"byte {at:,} fails its CRC check")
        if ctype == b"IEND":
            return


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

    mode = loaded_mode(img.mode, img.mode == "P" and img.has_transparency_data)
    if mode is None:
        raise ImageReadError(f"image mode {img.mode} is not supported")
    if img.mode == "CMYK" and "icc_profile" in info:
        img, info = _cmyk_to_srgb(img, info)
    elif img.mode == "P" or img.mode in CONVERT:
        if img.mode in NEW_COLOUR_SPACE:
            info.pop("icc_profile", None)
        try:
            img = img.convert(mode)
        except ValueError:
            raise ImageReadError(f"image mode {img.mode} cannot be converted to {mode}") from None
    arr = np.asarray(img)
    if arr.dtype != MODES[mode].dtype:
        arr = arr.astype(MODES[mode].dtype)
    return LoadedImage(arr, mode, fmt, info, alpha=MODES[mode].alpha)


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


