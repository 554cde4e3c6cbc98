"""Recognise a file's format from its first bytes or its suffix."""

from __future__ import annotations

import os
from pathlib import PurePath

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
)
ARRAY_SUFFIXES: frozenset[str] = frozenset({".npy", ".npz"})
_BY_SUFFIX = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
    ".gif": "gif",
    ".npy": "npy",
    ".npz": "npz",
    ".zarr": "zarr",
}
# The suffix a format is written with.
SUFFIX_OF = {
    "png": ".png",
    "jpeg": ".jpg",
    "tiff": ".tif",
    "bmp": ".bmp",
    "webp": ".webp",
    "gif": ".gif",
    "npy": ".npy",
    "npz": ".npz",
    "zarr": ".zarr",
}
# Checked in order; every signature is distinct, so order only matters for speed.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    # BigTIFF, which Pillow also reads
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x93NUMPY", "npy"),
    # a .npz is a zip archive; an empty archive starts with its end record
    (b"PK\x03\x04", "npz"),
    (b"PK\x05\x06", "npz"),
)
# How many leading bytes sniff_format needs to see (WebP's signature ends at byte 12).
SNIFF_BYTES = 12


def sniff_format(head: bytes) -> str | None:
    """The format whose signature ``head`` (a file's first bytes) starts with, or None.

    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    'png'
    >>> sniff_format(b"hello") is None
    True
    """
    head = bytes(head[:SNIFF_BYTES])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def format_from_suffix(path: str | os.PathLike) -> str | None:
    """The format a file name's suffix promises (any case), or None."""
    return _BY_SUFFIX.get(PurePath(path).suffix.lower())


def normalise_format(name: str) -> str | None:
    """A user's --format word (png, jpg, jpeg, tif, tiff, npy, ...) -> format, or None."""
    return _BY_SUFFIX.get("." + name.lower().lstrip("."))
