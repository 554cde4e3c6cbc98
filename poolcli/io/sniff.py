"""Recognise a file's format from its first bytes or its suffix."""

from __future__ import annotations

import os
from pathlib import PurePath

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
ARRAY_SUFFIXES = frozenset({".npy", ".npz"})
_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
              ".bmp": "bmp", ".webp": "webp", ".gif": "gif", ".npy": "npy", ".npz": "npz"}
# The suffix a format is written with.
SUFFIX_OF = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "webp": ".webp",
             "gif": ".gif", "npy": ".npy", "npz": ".npz"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"II*\x00", "tiff"),
          (b"MM\x00*", "tiff"), (b"BM", "bmp"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"\x93NUMPY", "npy"), (b"PK\x03\x04", "npz"), (b"PK\x05\x06", "npz"))


def sniff_format(head: bytes) -> str | None:
    """The format whose signature ``head`` starts with, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def format_from_suffix(path: str | os.PathLike) -> str | None:
    """The format a file name's suffix promises, or None."""
    return _BY_SUFFIX.get(PurePath(path).suffix.lower())


def normalise_format(name: str) -> str | None:
    """A user's --format word (png, jpg, jpeg, tif, tiff, npy, ...) -> format, or None."""
    return _BY_SUFFIX.get("." + name.lower().lstrip("."))
