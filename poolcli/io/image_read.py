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

from . import png_read
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


def read_image(src: str | os.PathLike | bytes, *, max_pixels: int | None = None,
               keep_palette: bool = False) -> LoadedImage:
    """Decode the first frame of an image file, or of ``bytes`` holding one.

    EXIF orientation is applied, so the array is the right way up. Palette images become
    RGB, or RGBA when they have transparency, unless ``keep_palette``: then the array holds
    the palette indices, mode "P", with ``info["palette"]`` (RGB bytes) and any
    ``info["transparency"]``; ``image.colours`` turns that into RGB(A). CMYK, YCbCr and
    other colour spaces become RGB (through the embedded ICC profile for CMYK when there
    is one). 16-bit greys are uint16 in native byte order.

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
        # 16-bit colour PNGs, which Pillow would decode at 8 bits, are read by png_read
        if png_read.pillow_loses_bits(handle.read(33)):
            handle.seek(0)
            return _decode_png16(handle.read(), max_pixels)
        handle.seek(0)
        return _decode(handle, max_pixels, keep_palette)


def _decode_png16(data: bytes, max_pixels: int | None) -> LoadedImage:
    """A 16-bit RGB, grey+alpha or RGBA PNG, at its 16 bits (Pillow would give 8)."""
    hdr = png_read.header(data)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if hdr is not None and limit is not None and hdr.width * hdr.height > limit:
        raise ImageReadError(_too_large(f"{hdr.width}x{hdr.height} = "
                                        f"{hdr.width * hdr.height:,}", limit))
    try:
        arr, mode, info = png_read.read_png16(data)
    except png_read.PngReadError as e:
        raise ImageReadError(str(e)) from None
    return LoadedImage(arr, mode, "png", info, alpha=MODES[mode].alpha)


def _decode(handle: BinaryIO, max_pixels: int | None, keep_palette: bool) -> LoadedImage:
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
                why = _inexact(im, fmt)
                if why is not None:
                    raise ImageReadError(why)
                if fmt == "png":  # after the size limit: a bomb is refused as one
                    at = handle.tell()
                    handle.seek(len(_PNG_SIGNATURE))
                    _check_png(handle)
                    handle.seek(at)
                exif = im.getexif()
                had_orientation = _ORIENTATION in exif
                im.load()
                turn = exif.get(_ORIENTATION, 1) in range(2, 9)
                # exif_transpose copies even when there is nothing to turn; skip that copy
                img = ImageOps.exif_transpose(im) if turn else im
                return _to_loaded(img, fmt, had_orientation=had_orientation,
                                  keep_palette=keep_palette)
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

    The one place that refuses what cannot be read exactly (the specification: no format
    is decoded at a lower bit depth or with fewer frames than the file holds). Jobs send
    TIFF stacks to tifffile and 16-bit colour PNGs to png_read before Pillow sees them.
    """
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        what = "pages" if fmt == "tiff" else "frames"
        hint = "; read it with poolcli.io.tiff" if fmt == "tiff" else ""
        return (f"a {fmt} of {frames} {what}; pooling the first alone would lose the "
                f"others{hint}")
    if fmt == "png" and im.tile:
        args = im.tile[0].args
        raw = args if isinstance(args, str) else (args[0] if args else "")
        if ";16" in str(raw) and im.mode in ("RGB", "RGBA", "LA"):
            return (f"a 16-bit {im.mode} PNG that Pillow would decode at 8 bits, losing "
                    "the low byte")
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NOT_AN_IMAGE = "not a PNG, JPEG, TIFF, BMP, WebP or GIF image, or its header is corrupt"


def _check_png(f: BinaryIO) -> None:
    """Every chunk whole and its CRC right, up to IEND, and the image data as long as the
    header says (ImageReadError otherwise): Pillow checks no IDAT CRC, and when the zlib
    stream ends before the last row it fills the rest with zeros, quietly."""
    import struct
    import zlib

    inflate, produced, expected = zlib.decompressobj(), 0, None
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
            if ctype == b"IHDR":
                expected = _png_data_size(*struct.unpack(">IIBBBBB", piece[:13]))
            elif ctype == b"IDAT":
                produced += _inflated_size(inflate, piece)
        stored = f.read(4)
        if len(stored) < 4:
            raise ImageReadError(f"truncated PNG: the file ends inside its "
                                 f"{ctype.decode('latin-1')} chunk at byte {at:,}")
        if struct.unpack(">I", stored)[0] != crc:
            raise ImageReadError(f"corrupt PNG: the {ctype.decode('latin-1')!r} chunk at "
                                 f"byte {at:,} fails its CRC check")
        if ctype == b"IEND":
            if expected is not None and produced < expected:
                raise ImageReadError(f"truncated PNG: its image data end after {produced:,} "
                                     f"of the {expected:,} bytes its header promises")
            return


def _inflated_size(inflate, piece: bytes) -> int:
    """How many bytes ``piece`` of a zlib stream inflates to, 1 MiB at a time."""
    import zlib

    n = 0
    try:
        while piece and not inflate.eof:
            n += len(inflate.decompress(piece, 1 << 20))
            piece = inflate.unconsumed_tail
    except zlib.error as e:
        raise ImageReadError(f"corrupt PNG image data ({e})") from None
    return n


def _png_data_size(width: int, height: int, depth: int, colour: int, _c: int, _f: int,
                   interlace: int) -> int:
    """The bytes a PNG's image data inflate to: filter byte + packed samples per row, per
    Adam7 pass when interlaced."""
    bits = depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    if interlace != 1:
        return rows(width, height)
    adam7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
             (1, 0, 2, 2), (0, 1, 1, 2))
    return sum(rows(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in adam7)


def _too_large(pixels: str, limit: int) -> str:
    return (
        f"image of {pixels} pixels is over the limit of {limit:,} pixels "
        "(refused as a possible decompression bomb)"
    )


def _to_loaded(img: Image.Image, fmt: str, *, had_orientation: bool,
               keep_palette: bool = False) -> LoadedImage:
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

    if keep_palette and img.mode == "P" and img.palette is not None \
            and img.palette.mode == "RGB":
        info["palette"] = bytes(img.getpalette("RGB") or b"")
        if "transparency" in img.info:
            info["transparency"] = img.info["transparency"]
        return LoadedImage(np.asarray(img).astype(np.uint8, copy=False), "P", fmt, info)
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
    arr = _pixels(img) if img.mode in _BYTE_MODES else np.asarray(img)
    if arr.dtype != MODES[mode].dtype:
        arr = arr.astype(MODES[mode].dtype)
    return LoadedImage(arr, mode, fmt, info, alpha=MODES[mode].alpha)


# Modes of one byte per band, whose raw bytes are the array as it is.
_BYTE_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _raw_encoder(img: Image.Image) -> Any:
    """Pillow's raw encoder for ``img``, the one ``Image.tobytes`` uses."""
    return Image._getencoder(img.mode, "raw", img.mode)


def _pixels(img: Image.Image) -> np.ndarray:
    """The pixels of an 8-bit image as a read-only array, in one copy.

    ``np.asarray(img)`` goes through ``Image.tobytes``, which encodes in 64 KiB pieces
    and joins them: a second copy of the whole image, as long as decoding a JPEG takes
    (0.15 s of a 4000x3000 RGB). Asking the same raw encoder for the whole image at once
    gives the same bytes in one copy; anything unexpected falls back to ``np.asarray``.
    """
    bands = _BYTE_MODES[img.mode]
    width, height = img.size
    size = width * height * bands
    try:
        encoder = _raw_encoder(img)
        try:
            encoder.setimage(img.im, (0, 0, width, height))
            _, status, data = encoder.encode(size)
        finally:
            encoder.cleanup()
    except Exception:  # a Pillow without this private API: the public way
        return np.asarray(img)
    if status != 1 or len(data) != size:
        return np.asarray(img)
    shape = (height, width) if bands == 1 else (height, width, bands)
    return np.frombuffer(data, np.uint8).reshape(shape)


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




def quiet_libtiff() -> bool:
    """Stop the libtiff that Pillow decodes and encodes compressed TIFFs with from
    writing to file descriptor 2 ("tempfile.tif: Using code not yet in table.",
    "ZIPDecode: Decoding error at scanline 0"): Pillow installs no handlers of its own,
    so libtiff's defaults print beside a program's lines. Nothing is lost: a decoding
    error still fails the read, as Pillow's OSError, and the input is refused with one
    line. For a program that owns its standard error, as the command line does; the
    library never calls it. True when handlers were found to turn off (Linux: the
    libtiff loaded in this process, named in /proc/self/maps).
    """
    import ctypes

    from PIL import _imaging  # noqa: F401  (loads Pillow's libtiff, if it has one)

    try:
        with open("/proc/self/maps") as f:  # address perms offset dev inode [path]
            found = {parts[5].strip() for parts in (ln.split(maxsplit=5) for ln in f)
                     if len(parts) == 6}
    except OSError:
        return False
    done = False
    for path in sorted(p for p in found if os.path.basename(p).startswith("libtiff")):
        try:
            lib = ctypes.CDLL(path)  # the copy already loaded, not a second one
        except OSError:
            continue
        for name in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
                setter(None)  # libtiff calls no handler at all then
                done = True
    return done
