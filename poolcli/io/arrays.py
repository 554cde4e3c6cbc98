"""NumPy arrays on disk: .npy and .npz, never unpickled."""

from __future__ import annotations

import io
import os
import zipfile
from typing import BinaryIO

import numpy as np


class ArrayReadError(Exception):
    """A file that is not a readable, pickle-free .npy or .npz."""


def read_arrays(src: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """{"": array} for a .npy, {name: array} for each member of a .npz."""
    handle = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        data = np.load(handle, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ArrayReadError("holds pickled (object) data, which poolcli refuses to "
                                 "load; save it with a numeric dtype") from None
        raise ArrayReadError(f"not a valid .npy/.npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ArrayReadError(f"cannot be read as .npy/.npz ({e})") from None
    if isinstance(data, np.ndarray):
        return {"": data}
    with data:
        try:
            return {name: data[name] for name in data.files}
        except ValueError as e:
            raise ArrayReadError(f"a member holds pickled data, which is refused ({e})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise ArrayReadError(f"a member cannot be read ({e})") from None


def npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, without reading the data."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
        except ValueError as e:
            raise ArrayReadError(f"not a .npy file ({e})") from None
    return tuple(shape), np.dtype(dtype)


def open_npy_memmap(path: str | os.PathLike) -> np.memmap:
    """A read-only memory map of a .npy file."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def write_npy(array: np.ndarray, dest: str | os.PathLike | BinaryIO) -> None:
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    else:
        np.lib.format.write_array(dest, np.asanyarray(array), allow_pickle=False)


def write_npz(arrays: dict[str, np.ndarray], dest: str | os.PathLike | BinaryIO) -> None:
    np.savez(dest, **arrays)
