"""TIFF through tifffile: stacks, OME-TIFF, BigTIFF, any dtype and number of samples.

Pillow reads only the first page of a TIFF and few sample layouts, so a TIFF that Pillow
cannot hold exactly (more than one page, BigTIFF, 16-bit colour, 64-bit or signed
samples, more than 4 samples) is read here as one array, with tifffile's axis letters
(``Z``, ``C``, ``Y``, ``X``, ``S`` for samples, ...). Single-page 8-bit colour, 16-bit
grey and float images stay with Pillow's mode-preserving image path.

Written TIFFs describe the output: their shape is the output's (never the input's stale
shape), and their resolution is the input's divided by the stride on each pooled axis.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from . import resolution

# (dtype, samples per pixel) that Pillow's TIFF reader holds exactly on one page
_PILLOW_EXACT = frozenset({("u1", 1), ("u1", 2), ("u1", 3), ("u1", 4), ("u2", 1),
                           ("i4", 1), ("f4", 1)})
# compressions tifffile writes without extra codecs, and that lose nothing
_KEEP_COMPRESSION = frozenset({"ADOBE_DEFLATE", "DEFLATE", "PACKBITS"})
_PHYSICAL = {"X": "PhysicalSizeX", "Y": "PhysicalSizeY", "Z": "PhysicalSizeZ"}


class TiffReadError(ValueError):
    """A TIFF that cannot be read whole and exactly (the message says why)."""


@dataclass
class TiffStack:
    """A TIFF's pixels as one array and what is needed to write a pooled one back.

    ``axes`` has one tifffile letter per array axis (``"ZYX"``, ``"YXS"``, ...);
    ``resolution`` is (x, y) pixels per ``resolution_unit`` (None when absent);
    ``physical`` holds OME's PhysicalSizeX/Y/Z (units per pixel) for an OME-TIFF.
    """

    array: np.ndarray
    axes: str
    photometric: str = "minisblack"
    planar: bool = False
    extrasamples: tuple[int, ...] = ()
    resolution: tuple[float, float] | None = None
    resolution_unit: int | None = None
    compression: str | None = None
    ome: bool = False
    physical: dict[str, float] = field(default_factory=dict)
    gdal_nodata: str | None = None  # GeoTIFF's nodata tag, reported, never applied

    @property
    def image_axes(self) -> tuple[int, int]:
        """The array axes of height and width (pooled unless ``axes`` says otherwise)."""
        if "Y" in self.axes and "X" in self.axes:
            return self.axes.index("Y"), self.axes.index("X")
        plane = [i for i, a in enumerate(self.axes) if a != "S"]
        return plane[-2], plane[-1]


@contextlib.contextmanager
def _open(src: str | os.PathLike | bytes) -> Iterator[Any]:
    """The TiffFile, open for the ``with`` block: whatever its headers make tifffile raise
    there (a damaged file gives TypeError, AttributeError, IndexError... as often as
    TiffFileError, as soon as the file is opened or later, when a page or tag is read)
    is a TiffReadError, so a bad TIFF is a failed input wherever it is read."""
    import tifffile

    handle = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    with _log_as_warnings():
        try:
            with tifffile.TiffFile(handle) as tf:
                yield tf
        except (TiffReadError, OSError, MemoryError):
            raise
        except Exception as e:  # tifffile and its codecs raise many types on bad data
            words = " ".join(str(e).split()) or type(e).__name__
            raise TiffReadError(f"corrupt or unsupported TIFF ({words})") from None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = " ".join(record.getMessage().split())
        if text not in self.messages:
            self.messages.append(text)


@contextlib.contextmanager
def _log_as_warnings() -> Iterator[None]:
    """tifffile logs what it finds wrong in a damaged file (to standard error, as lines of
    its own, when nobody configured logging); here each distinct record is a Python
    warning once the file is read, and nothing when it fails (its error says why)."""
    logger = logging.getLogger("tifffile")
    collect, propagate = _Collect(), logger.propagate
    logger.addHandler(collect)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
    for text in collect.messages:
        warnings.warn(f"TIFF: {text}", stacklevel=3)


def _name(value: Any) -> str:
    """A tag's enum name; tifffile gives the bare number for a value it does not know."""
    return getattr(value, "name", f"{value} (unknown)")


def _one_series(tf) -> Any:
    """The TIFF's one image series, or TiffReadError saying why there is not one."""
    if not tf.series:
        raise TiffReadError("holds no image (no page whose image data can be found)")
    if len(tf.series) > 1:
        shapes = ", ".join(str(s.shape) for s in tf.series)
        raise TiffReadError(f"holds {len(tf.series)} image series of shapes {shapes}; "
                            "poolcli reads a TIFF with one (split it first)")
    return tf.series[0]


def needs_tifffile(src: str | os.PathLike | bytes) -> bool:
    """True when Pillow's first-frame reader would not hold this TIFF whole and exactly."""
    with _open(src) as tf:
        if tf.is_bigtiff or len(tf.series) != 1 or tf.is_ome:
            return True
        series = tf.series[0]
        page = tf.pages[0]
        if len(series.pages) > 1 or len(tf.pages) > 1:
            return True
        if page.bitspersample == 1 or _name(page.photometric) in ("PALETTE", "YCBCR",
                                                                  "SEPARATED"):
            return False  # Pillow's (1-bit, palette and colour-space) image path
        key = (np.dtype(series.dtype).str[1:], int(page.samplesperpixel))
        return key not in _PILLOW_EXACT


def read_tiff(src: str | os.PathLike | bytes) -> TiffStack:
    """Every page of the TIFF's image series as one array, with its layout and metadata."""
    with _open(src) as tf:
        series = _one_series(tf)
        page = tf.pages[0]
        photometric = _name(page.photometric).lower()
        if photometric not in ("minisblack", "miniswhite", "rgb"):
            raise TiffReadError(f"a {photometric} TIFF stack cannot be read exactly; "
                                "convert it to grey or RGB samples first")
        try:
            arr = series.asarray()
        except Exception as e:  # tifffile and its codecs raise many types on bad data
            raise TiffReadError(f"corrupt or truncated TIFF data "
                                f"({' '.join(str(e).split()) or type(e).__name__})") from None
        if arr.dtype.kind not in "biuf":
            raise TiffReadError(f"{arr.dtype} samples cannot be pooled")
        resolution = unit = None
        if "XResolution" in page.tags and "YResolution" in page.tags:
            resolution = tuple(float(v) for v in page.get_resolution())
            unit = int(page.resolutionunit)
        physical = _ome_physical(tf.ome_metadata) if tf.is_ome else {}
        comp = _name(page.compression)
        tag = page.tags.get("GDAL_NODATA")
        return TiffStack(
            array=arr, axes=series.axes, photometric="rgb" if photometric == "rgb"
            else "minisblack", planar=int(page.planarconfig) == 2 and page.samplesperpixel > 1,
            extrasamples=tuple(int(v) for v in page.extrasamples), resolution=resolution,
            resolution_unit=unit, compression=comp if comp in _KEEP_COMPRESSION else None,
            ome=bool(tf.is_ome), physical=physical,
            gdal_nodata=None if tag is None else str(tag.value).strip("\x00 "))


def _ome_physical(xml: str | None) -> dict[str, float]:
    if not xml:
        return {}
    import re

    out = {}
    for name in _PHYSICAL.values():
        m = re.search(rf'\b{name}="([0-9.eE+-]+)"', xml)
        if m:
            out[name] = float(m[1])
    return out


def scaled(stack: TiffStack, out: np.ndarray, factors: dict[int, float]) -> TiffStack:
    """``stack`` holding ``out``, with resolution and physical sizes for the new grid.

    ``factors`` maps an input axis to how many input cells one output cell spans on it
    (the stride, or n/out for adaptive windows); ``resolution`` holds the rule.
    """
    def axis(letter: str) -> int | None:
        return stack.axes.find(letter) if letter in stack.axes else None

    res = None
    if stack.resolution is not None:
        res = resolution.density(stack.resolution, factors, axis("X"), axis("Y"))
    physical = {}
    for letter, name in _PHYSICAL.items():
        if name in stack.physical:
            physical[name] = resolution.pixel_size(stack.physical[name], factors,
                                                   axis(letter))
    return TiffStack(out, stack.axes, stack.photometric, stack.planar, stack.extrasamples,
                     res, stack.resolution_unit, stack.compression, stack.ome, physical,
                     stack.gdal_nodata)


def write_tiff(stack: TiffStack, dest: str | os.PathLike | BinaryIO) -> None:
    """Encode ``stack`` whole (to memory first, so a failure writes nothing) to ``dest``."""
    import tifffile

    arr = np.ascontiguousarray(stack.array)
    kw: dict[str, Any] = {"photometric": stack.photometric}
    if stack.planar:
        kw["planarconfig"] = "separate"
    elif stack.photometric == "rgb" or stack.extrasamples:
        kw["planarconfig"] = "contig"
    if stack.extrasamples:
        kw["extrasamples"] = stack.extrasamples
    if stack.resolution is not None:
        kw["resolution"] = stack.resolution
        kw["resolutionunit"] = stack.resolution_unit
    if stack.compression:
        kw["compression"] = "zlib" if "DEFLATE" in stack.compression else "packbits"
    if stack.ome:
        kw["ome"] = True
        kw["metadata"] = {"axes": stack.axes, **stack.physical}
    else:
        kw["metadata"] = {"axes": stack.axes} if len(stack.axes) == arr.ndim else None
    buf = io.BytesIO()
    # BigTIFF once a classic TIFF's 4 GiB offsets would not do
    tifffile.imwrite(buf, arr, bigtiff=arr.nbytes > 2**32 - 2**25, **kw)
    data = buf.getbuffer()
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            f.write(data)
    else:
        dest.write(data)


def image_stack(pixels: np.ndarray, mode_bands: int, alpha: bool,
                dpi: tuple[float, float] | None) -> TiffStack:
    """A 16-bit colour image (LA;16, RGB;16, RGBA;16) as a one-page TIFF to write."""
    colour = mode_bands - (1 if alpha else 0)
    return TiffStack(pixels, "YXS", photometric="rgb" if colour == 3 else "minisblack",
                     extrasamples=(2,) if alpha else (), resolution=dpi,
                     resolution_unit=2 if dpi else None)


def as_image(stack: TiffStack):
    """A one-page TIFF as a LoadedImage in a mode other formats hold, or None."""
    from .image_read import LoadedImage
    from .modes import MODES

    arr = stack.array
    if stack.axes not in ("YX", "YXS"):
        return None
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    alpha = bool(stack.extrasamples) and bands in (2, 4)
    by_layout = {("u1", 1): "L", ("u1", 2): "LA", ("u1", 3): "RGB", ("u1", 4): "RGBA",
                 ("u2", 1): "I;16", ("u2", 2): "LA;16", ("u2", 3): "RGB;16",
                 ("u2", 4): "RGBA;16", ("i4", 1): "I", ("f4", 1): "F"}
    mode = by_layout.get((arr.dtype.str[1:], bands))
    if mode is None or (MODES[mode].alpha != alpha and bands in (2, 4)):
        return None
    info = {}
    if stack.resolution is not None and stack.resolution_unit == 2:
        info["dpi"] = stack.resolution
    return LoadedImage(arr, mode, "tiff", info, alpha=MODES[mode].alpha)


def describe(name: str, src: str | os.PathLike | bytes, size: int, info_type: Any) -> Any:
    """``info``'s description of a TIFF read through tifffile, from its headers only."""
    with _open(src) as tf:
        series = _one_series(tf)
        return info_type(name, "tiff", tuple(series.shape), str(series.dtype), size,
                         members=f"; {len(series.pages)} pages, axes {series.axes}")
