"""Zarr stores: OME-Zarr multiscales (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and plain arrays.

zarr is the optional extra ``poolcli[zarr]``; without it every function here raises one
PoolError that says what to install. Stores are written under a temporary name beside
the destination and renamed into place when complete, so an interrupted run leaves no
half-written store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PoolError

NGFF_VERSIONS = ("0.4", "0.5")
AXIS_ORDER = "tczyx"  # NGFF: time, then channel, then space
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def require_zarr():
    """The zarr module, or a PoolError saying how to get it."""
    try:
        import zarr
    except ImportError:
        raise PoolError("zarr stores need the zarr package; install poolcli[zarr] "
                        "(pip install 'poolcli[zarr]')") from None
    return zarr


def is_zarr_path(name: str | os.PathLike) -> bool:
    """True for ``data.zarr`` or a path inside one (``data.zarr/path/to/array``)."""
    return any(part.lower().endswith(".zarr") for part in Path(name).parts)


def check_axes_names(names: str, ndim: int) -> str:
    """``names`` (one of t, c, z, y, x per array axis) checked against NGFF's rules."""
    names = names.lower()
    if len(names) != ndim:
        raise PoolError(f"axes_names {names!r} names {len(names)} axes but the array has "
                        f"{ndim}; give one of t, c, z, y, x per axis")
    if set(names) - set(AXIS_ORDER) or len(set(names)) != len(names):
        raise PoolError(f"axes_names {names!r} must use each of t, c, z, y, x at most once")
    if sum(AXIS_TYPES[n] == "space" for n in names) < 2:
        raise PoolError(f"axes_names {names!r} needs 2 or 3 space axes (z, y, x)")
    return names


def default_axes_names(ndim: int) -> str:
    """Names for an N-d array's axes when nothing says otherwise: the last are z, y, x."""
    if not 2 <= ndim <= 5:
        raise PoolError(f"an OME-Zarr image has 2 to 5 axes; this array has {ndim} "
                        "(give axes_names or reshape it)")
    return "tczyx"[5 - ndim:]


def _chunks(shape: tuple[int, ...], names: str) -> tuple[int, ...]:
    size = {"t": 1, "c": 1, "z": 64, "y": 256, "x": 256}
    return tuple(max(1, min(n, size[a])) for n, a in zip(shape, names, strict=True))


def write_ome_zarr(path: str | os.PathLike, levels: Iterable[np.ndarray], names: str,
                   pooled: tuple[int, ...], factors: tuple[int, ...], *, ngff: str = "0.4",
                   kind: str = "avg", overwrite: bool = False, name: str = "",
                   on_level: Any = None) -> None:
    """Write ``levels`` (level 0 first, array axes named by ``names``) as an OME-Zarr image.

    Axes are stored in NGFF's order (t, c, z, y, x); each dataset ``i`` gets a ``scale``
    of ``factor**i`` on the pooled axes. ``on_level(i, array)`` is called after each level
    is stored. NGFF 0.4 is a zarr v2 store, 0.5 a zarr v3 store with the metadata under
    ``ome``.
    """
    zarr = require_zarr()
    if ngff not in NGFF_VERSIONS:
        raise PoolError(f"ngff={ngff!r} is not supported; use 0.4 or 0.5")
    dest = Path(path)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists; give `overwrite` to replace it")
    perm = sorted(range(len(names)), key=lambda i: AXIS_ORDER.index(names[i]))
    stored = "".join(names[i] for i in perm)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    v3 = ngff == "0.5"
    try:
        root = zarr.open_group(store=str(tmp), mode="w", zarr_format=3 if v3 else 2)
        datasets = []
        for i, level in enumerate(levels):
            data = np.transpose(level, perm)
            kw: dict[str, Any] = {"dimension_names": list(stored)} if v3 else {
                "chunk_key_encoding": {"name": "v2", "separator": "/"}}
            arr = root.create_array(str(i), shape=data.shape, dtype=data.dtype,
                                    chunks=_chunks(data.shape, stored), fill_value=0, **kw)
            arr[...] = data
            scale = [1.0] * len(names)
            for a, f in zip(pooled, factors, strict=True):
                scale[perm.index(a)] = float(f**i)
            datasets.append({"path": str(i), "coordinateTransformations":
                             [{"type": "scale", "scale": scale}]})
            if on_level is not None:
                on_level(i, level)
        axes = [{"name": a, "type": AXIS_TYPES[a]} for a in stored]
        ms: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets, "type": kind,
                              "metadata": {"method": f"poolcli.pyramid(kind={kind!r})"}}
        if v3:
            root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
        else:
            root.attrs["multiscales"] = [{"version": "0.4", **ms}]
        _replace(tmp, dest, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, dest: Path, overwrite: bool) -> None:
    if dest.exists():
        if not overwrite:
            raise FileExistsError(f"{dest} exists; give `overwrite` to replace it")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return
    os.rename(tmp, dest)


def open_input(name: str | os.PathLike) -> Any:
    """The zarr array at ``name`` (``data.zarr`` or ``data.zarr/path/to/array``).

    An OME-Zarr image (a group with ``multiscales``) stands for its full-resolution
    dataset; any other group must be named down to one of its arrays.
    """
    zarr = require_zarr()
    try:
        node = zarr.open(str(name), mode="r")
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise ValueError(f"not a readable zarr array or group ({e})") from None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if ms:
            return node[ms[0]["datasets"][0]["path"]]
        names = sorted(k for k, v in node.members(max_depth=None)
                       if isinstance(v, zarr.Array))[:5]
        raise ValueError(f"is a zarr group; name an array inside it, e.g. "
                         f"{Path(name) / (names[0] if names else 'ARRAY')}"
                         + (f" (arrays: {', '.join(names)})" if names else ""))
    if node.dtype.kind not in "biuf":
        raise ValueError(f"a zarr array of dtype {node.dtype} cannot be pooled")
    return node


def output_chunks(in_chunks: tuple[int, ...] | None, out_shape: tuple[int, ...],
                  factors: dict[int, float]) -> tuple[int, ...]:
    """The input's chunks scaled by the stride on each pooled axis (at least 1 cell);
    without input chunks, 256 x 256 over the last two axes and 1 elsewhere."""
    if in_chunks is None:
        in_chunks = tuple(256 if a >= len(out_shape) - 2 else 1 for a in range(len(out_shape)))
        factors = {}
    return tuple(max(1, min(n, int(c // factors.get(a, 1))))
                 for a, (c, n) in enumerate(zip(in_chunks, out_shape, strict=True)))


def create_output(path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype,
                  chunks: tuple[int, ...]) -> Any:
    """A new zarr v3 array at the root of the store at ``path`` (which must not exist)."""
    zarr = require_zarr()
    return zarr.create_array(store=str(path), shape=shape, dtype=dtype, chunks=chunks,
                             fill_value=0, zarr_format=3)


def temporary_beside(dest: str | os.PathLike, tag: str) -> Path:
    """A fresh temporary store name beside ``dest`` (removed if it exists)."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{tag}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def commit(tmp: Path, dest: str | os.PathLike, overwrite: bool) -> None:
    """Move the finished store ``tmp`` to ``dest`` (replacing it only with ``overwrite``)."""
    _replace(tmp, Path(dest), overwrite)
