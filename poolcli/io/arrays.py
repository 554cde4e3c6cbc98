"""NumPy arrays on disk: .npy and .npz, read and written without ever unpickling."""

from __future__ import annotations

import io
import math
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .inputs import open_regular
from .sniff import SNIFF_BYTES, sniff_format

_fmt = np.lib.format
_PICKLED = (
    "holds pickled Python objects (an object array), which poolcli refuses to load; "
    "save it with a numeric dtype"
)
# What a damaged .npz raises from inside zipfile and zlib (IndexError: a member whose
# name is empty).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError,
               IndexError)


class ArrayReadError(Exception):
    """A file that is not a readable, pickle-free .npy or .npz."""


def read_arrays(src: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """{"": array} for a .npy, {name: array} for each member of a .npz, in file order.

    The format is recognised from the bytes, whatever the file is called. Object arrays
    are refused rather than unpickled (unpickling can run arbitrary code). Raises
    ArrayReadError for data that is not a readable .npy/.npz; an OSError from opening the
    file is raised as it is.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        handle: BinaryIO = io.BytesIO(src)
    else:
        handle = open_regular(src)
    with handle:
        kind = sniff_format(handle.read(SNIFF_BYTES))
        handle.seek(0)
        if kind == "npy":
            return {"": _read_npy(handle)}
        if kind == "npz":
            return _read_npz(handle)
    raise ArrayReadError(
        "not a .npy or .npz file (it starts with neither the NumPy nor the zip signature)"
    )


def _read_npy(f: BinaryIO) -> np.ndarray:
    head = _header(f)
    shape, dtype = head.shape, head.dtype
    if dtype.hasobject:
        raise ArrayReadError(_PICKLED)
    f.seek(0)
    try:
        return _fmt.read_array(f, allow_pickle=False)
    except ValueError as e:
        raise ArrayReadError(
            f"the .npy data are cut short or damaged; the header promises "
            f"shape {shape} ({_one_line(e)})"
        ) from None


def _read_npz(f: BinaryIO) -> dict[str, np.ndarray]:
    try:
        archive = np.load(f, allow_pickle=False)
    except (ValueError, *_ZIP_ERRORS) as e:
        raise ArrayReadError(f"not a readable .npz (zip) archive ({_one_line(e)})") from None
    out: dict[str, np.ndarray] = {}
    with archive:
        for name in archive.files:
            try:
                value = archive[name]
            except ValueError as e:
                if "pickle" in str(e).lower():
                    raise ArrayReadError(f"member {name!r} {_PICKLED}") from None
                raise ArrayReadError(f"member {name!r} is damaged ({_one_line(e)})") from None
            except _ZIP_ERRORS as e:
                raise ArrayReadError(f"member {name!r} is damaged ({_one_line(e)})") from None
            if not isinstance(value, np.ndarray):
                # NpzFile hands back the raw bytes of a member that is not a .npy
                raise ArrayReadError(f"member {name!r} is not a .npy array")
            out[name] = value
    if not out:
        raise ArrayReadError("the .npz holds no arrays")
    return out


def _one_line(e: BaseException) -> str:
    if isinstance(e, tokenize.TokenError) and e.args:
        e = e.args[0]  # ('EOF in multi-line statement', (2, 0)) -> its words
    return " ".join(str(e).split()) or type(e).__name__


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header says, and where its data start."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int


def _header(f: BinaryIO, size: int | None = None) -> NpyHeader:
    """The header at ``f``'s position, checked against the ``size`` of the whole file.

    A header is data like any other: a damaged one is an ArrayReadError whatever NumPy's
    parser raises, and one that promises more data than the file holds is refused here,
    before anything is allocated for it.
    """
    start = f.tell()
    try:
        version = _fmt.read_magic(f)
        # Version 3.0 differs from 2.0 only in allowing UTF-8 in field names.
        read = _fmt.read_array_header_1_0 if version == (1, 0) else _fmt.read_array_header_2_0
        shape, fortran, dtype = read(f)
        head = NpyHeader(tuple(shape), np.dtype(dtype), bool(fortran), f.tell())
    except (ValueError, EOFError, TypeError, SyntaxError, OverflowError, MemoryError,
            RecursionError, KeyError, tokenize.TokenError) as e:
        raise ArrayReadError(f"not a valid .npy file: its header is damaged "
                             f"({_one_line(e)})") from None
    if not all(isinstance(n, int) and n >= 0 for n in head.shape):
        raise ArrayReadError(f"not a valid .npy file: its header gives the shape "
                             f"{head.shape}, with a negative length")
    if size is None:
        here = f.tell()
        size = f.seek(0, os.SEEK_END)
        f.seek(here)
    need = math.prod(head.shape) * head.dtype.itemsize
    have = size - (head.offset - start)
    if not head.dtype.hasobject and need > have:
        raise ArrayReadError(f"the .npy data are cut short (the header promises shape "
                             f"{head.shape}, {need:,} bytes of {head.dtype}, but the file "
                             f"holds {max(have, 0):,} bytes after it): truncated, or a "
                             "header that lies")
    return head


def npz_headers(src: str | os.PathLike | bytes | BinaryIO) -> dict[str, NpyHeader]:
    """The header of every member of a .npz, decompressing only the headers.

    A zip bomb (a small archive holding gigabytes) shows its real shapes here, before
    anything is allocated for them.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        handle: BinaryIO = io.BytesIO(src)
    elif isinstance(src, (str, os.PathLike)):
        handle = open_regular(src)
    else:
        handle = src
    out: dict[str, NpyHeader] = {}
    try:
        with handle, zipfile.ZipFile(handle) as zf:
            for info in zf.infolist():
                if not info.filename:  # zipfile's own methods fail on it (IndexError)
                    raise ArrayReadError("not a readable .npz (zip) archive (a member "
                                         "has no name)")
                if info.is_dir():
                    continue
                name = info.filename.removesuffix(".npy")
                try:
                    with zf.open(info) as member:
                        out[name] = _header(member, size=info.file_size)
                except ArrayReadError as e:
                    raise ArrayReadError(f"member {name!r}: {e}") from None
    except (RuntimeError, *_ZIP_ERRORS) as e:
        if isinstance(e, OSError) and not isinstance(e, zipfile.BadZipFile) and e.errno:
            raise
        raise ArrayReadError(f"not a readable .npz (zip) archive ({_one_line(e)})") from None
    if not out:
        raise ArrayReadError("the .npz holds no arrays")
    return out


def read_npy_header(path: str | os.PathLike | BinaryIO) -> NpyHeader:
    """The header of a .npy file (a path or an open binary file), without its data."""
    if not isinstance(path, (str, os.PathLike)):
        return _header(path)
    with open_regular(path) as f:
        return _header(f)


def npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy file's header, without reading its data."""
    head = read_npy_header(path)
    return head.shape, head.dtype


def open_npy_memmap(path: str | os.PathLike) -> np.memmap:
    """A read-only memory map of a .npy file (ArrayReadError if it cannot be mapped)."""
    try:
        _shape, dtype = npy_header(path)
    except ArrayReadError as e:
        raise ArrayReadError(f"cannot memory-map the .npy ({e})") from None
    if dtype.hasobject:
        raise ArrayReadError(_PICKLED)
    try:
        return _fmt.open_memmap(path, mode="r")
    except ValueError as e:  # mmap says so when the file is shorter than its header promises
        raise ArrayReadError(f"cannot memory-map the .npy ({_one_line(e)})") from None


def write_npy(array: np.ndarray, dest: str | os.PathLike | BinaryIO) -> None:
    """Write one array as .npy to a path or a binary file object (no pickling)."""
    array = np.asarray(array)
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            _fmt.write_array(f, array, allow_pickle=False)
    else:
        _fmt.write_array(dest, array, allow_pickle=False)


def write_npz(arrays: dict[str, np.ndarray], dest: str | os.PathLike | BinaryIO) -> None:
    """Write named arrays as an uncompressed .npz to a path or a binary file object.

    Unlike ``np.savez``, a path is used exactly as given (no ".npz" appended), any name
    works (even "file"), and object arrays are refused. Also works on an unseekable stream.
    """
    for name, arr in arrays.items():
        if not name:
            raise ValueError("every array in a .npz needs a non-empty name")
        if np.asarray(arr).dtype.hasobject:
            raise ValueError(
                f"array {name!r} has dtype object, which .npz cannot hold without pickling"
            )
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            _write_zip(arrays, f)
    else:
        _write_zip(arrays, dest)


def _write_zip(arrays: dict[str, np.ndarray], f: BinaryIO) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            # force_zip64: the size is not known before writing, and may pass 4 GiB
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                _fmt.write_array(member, np.asarray(arr), allow_pickle=False)
