"""One pyramid job: read an input, make its levels, write an OME-Zarr or one file per level.

Inputs are read as the pooling jobs read them (images in their mode, TIFF stacks through
tifffile, .npy arrays); each level is written as soon as it is made, so only the level
being made and the sums carried for it are in memory besides the input.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PoolError, UsageError
from ..io import arrays, resolution, tiff, zarr_store
from ..io.atomic import OutputRefused, atomic_write
from ..io.image_read import ImageReadError, read_image
from ..io.image_write import write_image
from ..io.sniff import SUFFIX_OF, format_from_suffix, normalise_format, sniff_format
from ..pyramid import iter_levels, level_shapes, resolve
from ..tiled import default_memory_limit, input_ids

# A streamed pyramid's slabs get this share of --memory-limit: zarr holds a slab about
# twice more while it decodes and encodes chunks, and the sums pass holds input, sums
# and the engine's temporaries (measured: peak = limit + the fixed overhead at 1/8).
STREAM_SHARE = 8
# tifffile's axis letters -> OME-Zarr's names (S, a pixel's samples, are channels)
_TIFF_NAMES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}


@dataclass(frozen=True)
class PyramidOptions:
    """How a pyramid is made and written (one object from the CLI into each job)."""

    levels: int | None = None
    min_size: int = 1
    kind: str = "avg"
    factor: Any = 2
    axes: tuple[int, ...] | None = None
    axes_names: str | None = None
    ngff: str = "0.4"
    nodata: float | None = None
    ignore_nan: bool = False
    premultiply: bool = True
    format: str | None = None
    overwrite: bool = False
    threads: int | None = None
    memory_limit: int | None = None
    engine: str = "local"  # "local" (this machine) or "dask" (a cluster, SPEC 6)
    scheduler: str | None = None  # the dask scheduler to join; None starts a LocalCluster
    retried: bool = False  # the job may run again (a cluster task): its own files are no conflict

    def __post_init__(self) -> None:
        if self.engine not in ("local", "dask"):
            raise PoolError(f"engine={self.engine!r} is not known; use local or dask")
        if self.scheduler is not None and self.engine != "dask":
            raise PoolError("`scheduler` applies to engine=dask only")


@dataclass
class LevelRecord:
    """One written level, for the report."""

    level: int
    output: str
    shape: tuple[int, ...]
    dtype: str
    seconds: float


class LevelLog:
    """The records of written levels, told (``on_level(record)``) in level order; a
    level's seconds run from the end of the one before (or ``t0``)."""

    def __init__(self, t0: float, on_level: Any = None) -> None:
        self.clock, self.on_level = t0, on_level
        self.records: list[LevelRecord] = []
        self.waiting: dict[int, tuple[str, Any]] = {}

    def done(self, i: int, output: str, level: Any) -> None:
        """Level ``i`` (an array, or anything with its shape and dtype) is written."""
        self.waiting[i] = (output, level)
        now = time.perf_counter()
        while len(self.records) in self.waiting:
            output, level = self.waiting.pop(len(self.records))
            rec = LevelRecord(len(self.records), output, tuple(level.shape), str(level.dtype),
                              now - self.clock)
            self.clock = now
            self.records.append(rec)
            if self.on_level is not None:
                self.on_level(rec)


@dataclass
class PyramidOutcome:
    """One input's pyramid: its written levels, or why the input failed."""

    src: str
    records: list[LevelRecord]
    error: str | None = None


# A level's record, told as each is written: (input, record).
OnLevel = Callable[[str, LevelRecord], None]


def run_pyramids(inputs: list[str], dest: str, opts: PyramidOptions, *,
                 on_level: OnLevel | None = None, on_tasks: Any = None,
                 on_cluster: Callable[[str], None] | None = None) -> Iterator[PyramidOutcome]:
    """The pyramid of every input, here or on a dask cluster (``opts.engine``).

    An input that cannot be read or written is an outcome with its ``error``; a mistake
    in the options (PoolError, UsageError) raises. On a cluster, a zarr or .npy input
    into an OME-Zarr is pooled chunk-parallel across the workers (``on_tasks(done,
    total)`` counts its tasks); any other input is one task; ``on_cluster(dashboard)``
    is told the cluster's dashboard address first. Outcomes come as inputs finish.
    """
    if opts.engine != "dask":
        for src in inputs:
            yield one_pyramid(src, dest, opts, on_level)
        return
    from .cluster import client_for, pyramids_on_cluster

    with client_for(opts.scheduler, memory_limit=opts.memory_limit) as client:
        if on_cluster is not None:
            on_cluster(client.dashboard_link)
        yield from pyramids_on_cluster(client, inputs, dest, opts, on_level, on_tasks)


def one_pyramid(src: str, dest: str, opts: PyramidOptions, on_level: OnLevel | None = None,
                run: Any = None) -> PyramidOutcome:
    """``run_pyramid`` of one input, its failure an outcome (see ``run_pyramids``)."""
    out = PyramidOutcome(src, [])

    def level(rec: LevelRecord) -> None:
        if on_level is not None:
            on_level(src, rec)

    try:
        out.records = run_pyramid(src, dest, opts, on_level=level, run=run)
    except (PoolError, UsageError):
        raise
    except OutputRefused as e:  # an input named as the output: the options' mistake
        raise UsageError(str(e)) from None
    except (OSError, ValueError, ImageReadError) as e:
        out.error = (e.strerror or str(e)) if isinstance(e, OSError) and e.strerror else str(e)
    return out


def spreads(src: str, dest: str) -> bool:
    """True when a cluster pools ``src`` chunk by chunk: a zarr array or a .npy into an
    OME-Zarr (anything else is read whole by one task)."""
    if not zarr_store.is_zarr_path(dest):
        return False
    if zarr_store.is_zarr_path(src):
        return True
    try:
        with open(src, "rb") as f:
            return sniff_format(f.read(16)) == "npy"
    except OSError:
        return False  # its task will say why


@dataclass
class Source:
    """An input as a pyramid needs it: the array, its default axes and names, a writer."""

    array: np.ndarray
    format: str
    axes: tuple[int, ...] | None
    names: str | None
    image: Any = None  # a LoadedImage
    stack: Any = None  # a TiffStack
    lazy: Any = None  # a zarr array or NpyRows, read slab by slab when streaming
    notes: list[str] = field(default_factory=list)

    def load(self) -> np.ndarray:
        """The whole array in memory."""
        if self.array is None:
            self.array = np.asarray(self.lazy[...]) if self.format == "zarr" else \
                np.load(self.lazy.path, allow_pickle=False)
        return self.array


def read_source(src: str) -> Source:
    """The input at ``src`` as an array with its default pooled axes and axis names
    (a zarr array or a .npy is opened, not read: see ``Source.load``)."""
    if zarr_store.is_zarr_path(src):
        return Source(None, "zarr", None, None, lazy=zarr_store.open_input(src))
    with open(src, "rb") as f:
        head = f.read(16)
    fmt = sniff_format(head)
    if fmt == "npy":
        from ..tiled import NpyRows

        return Source(None, "npy", None, None, lazy=NpyRows(src))
    if fmt == "tiff" and tiff.needs_tifffile(src):
        stack = tiff.read_tiff(src)
        names = "".join(_TIFF_NAMES.get(a, "?") for a in stack.axes)
        return Source(stack.array, "tiff", stack.image_axes,
                      names if "?" not in names else None, stack=stack)
    if fmt is None or fmt == "npz":
        raise ValueError("a pyramid is made from an image, a TIFF stack or a .npy array")
    img = read_image(src)
    names = "yx" if img.array.ndim == 2 else "yxc"
    return Source(img.array, fmt, (0, 1), names, image=img)


def level_paths(src: str, dest: str, fmt: str, count: int) -> list[Path]:
    """NAME_0.EXT, NAME_1.EXT, ... for ``dest`` (a folder: the input's name in it)."""
    out = Path(dest)
    ext = SUFFIX_OF[fmt]
    if dest.endswith(("/", os.sep)) or out.is_dir():
        base = out / Path(src).name.split(".")[0]
    elif format_from_suffix(out) is not None:
        base, ext = out.with_suffix(""), out.suffix
    else:
        base = out
    return [base.with_name(f"{base.name}_{i}{ext}") for i in range(count)]


def run_pyramid(src: str, dest: str, opts: PyramidOptions, on_level: Any = None,
                run: Any = None) -> list[LevelRecord]:
    """Make and write the pyramid of ``src``; ``on_level(record)`` after each level.

    With ``run`` (``run(work, on_done)`` computes dask collections on a cluster, see
    ``cluster.compute``), a zarr or .npy input into an OME-Zarr is made there as one graph.
    """
    t0 = time.perf_counter()
    source = read_source(src)
    shape, dtype = _shape_dtype(source)
    axes = opts.axes if opts.axes is not None else source.axes
    shapes = level_shapes(shape, opts.levels, opts.factor, axes, opts.min_size)
    pooled, facs = resolve(shape, opts.factor, axes)
    if source.lazy is not None and zarr_store.is_zarr_path(dest) and run is not None:
        return _on_cluster(src, dest, opts, source, shapes, pooled, facs, t0, on_level, run)
    if source.lazy is not None and zarr_store.is_zarr_path(dest):
        limit = opts.memory_limit or default_memory_limit()
        # in memory: the input, the carried sums (8 bytes a cell at most) and a level
        if math.prod(shape) * (2 * dtype.itemsize + 8) > limit:
            return _stream(src, dest, opts, source, shapes, pooled, facs, limit, t0, on_level)
    arr = source.load()
    alpha = bool(source.image is not None and source.image.alpha and opts.premultiply
                 and opts.kind == "avg")
    pool_opts: dict[str, Any] = {"threads": opts.threads}
    if opts.nodata is not None:
        pool_opts["nodata"] = opts.nodata
    if opts.ignore_nan:
        pool_opts["ignore_nan"] = True
    levels = iter_levels(arr, shapes, opts.kind, pooled, facs, alpha=alpha, **pool_opts)
    log = LevelLog(t0, on_level)
    if zarr_store.is_zarr_path(dest):
        names = opts.axes_names or source.names or zarr_store.default_axes_names(arr.ndim)
        names = zarr_store.check_axes_names(names, arr.ndim)
        zarr_store.write_ome_zarr(dest, levels, names, pooled, facs, ngff=opts.ngff,
                                  kind=opts.kind, overwrite=opts.overwrite,
                                  name=Path(src).name, protect=input_ids(src),
                                  on_level=lambda i, lv: log.done(i, f"{dest}/{i}", lv))
        return log.records
    fmt = normalise_format(opts.format) if opts.format else (
        format_from_suffix(dest) or source.format)
    if fmt is None:
        raise UsageError(f"format {opts.format!r} is not known; use png, tiff, npy, ...")
    paths = level_paths(src, dest, fmt, len(shapes))
    for p in paths:
        if p.exists() and os.path.samefile(p, src):
            raise UsageError(f"{p} is the input; choose another output name")
        if p.exists() and not (opts.overwrite or opts.retried):
            # (a retried task may find its own first attempt's levels: the writer takes
            # those that hold the same bytes and refuses any other)
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    for i, (level, path) in enumerate(zip(levels, paths, strict=True)):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, _writer(source, level, fmt, pooled, facs, i),
                     overwrite=opts.overwrite, same_ok=opts.retried)
        log.done(i, str(path), level)
    return log.records


def _shape_dtype(source: Source) -> tuple[tuple[int, ...], np.dtype]:
    held = source.array if source.array is not None else source.lazy
    return tuple(held.shape), np.dtype(held.dtype)


def _lazy_writer(src: str, dest: str, opts: PyramidOptions, source: Source, pooled, facs):
    """The OME-Zarr writer of a zarr or .npy input's levels (axes named by the options,
    or z/y/x by default)."""
    shape, _ = _shape_dtype(source)
    names = opts.axes_names or zarr_store.default_axes_names(len(shape))
    names = zarr_store.check_axes_names(names, len(shape))
    return zarr_store.OmeZarrWriter(dest, names, pooled, facs, ngff=opts.ngff,
                                    kind=opts.kind, overwrite=opts.overwrite,
                                    name=Path(src).name, protect=input_ids(src))


def _on_cluster(src, dest, opts, source, shapes, pooled, facs, t0, on_level, run):
    """A zarr or .npy input into an OME-Zarr on a dask cluster: every level a lazy dask
    array pooled from the one before (``pyramid.iter_levels``), all stored as one graph
    whose tasks read and write chunks on the workers. A level's seconds run from the
    previous level's end (levels overlap on a cluster; they end in order)."""
    import dask.array as da

    from ..dask_engine import from_source, store_aligned

    writer = _lazy_writer(src, dest, opts, source, pooled, facs)
    try:
        x = from_source(source.lazy)
        kw = {} if opts.nodata is None else {"nodata": opts.nodata}
        levels = list(iter_levels(x, shapes, opts.kind, pooled, facs,
                                  ignore_nan=opts.ignore_nan, **kw))
        work = []
        for i, level in enumerate(levels):
            target = writer.create(i, level.shape, level.dtype)
            if writer.transposes:  # channels stored first, as NGFF orders axes
                level = level.transpose(writer.perm)
            work.append(da.store(store_aligned(level, target.chunks), target, lock=False,
                                 compute=False))
        log = LevelLog(t0, on_level)
        run(work, lambda i: log.done(i, f"{dest}/{i}", levels[i]))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return log.records


def _stream(src, dest, opts, source, shapes, pooled, facs, limit, t0, on_level):
    """A pyramid of a zarr or .npy input larger than memory, slab by slab into OME-Zarr."""
    from ..stores import stream_pyramid

    writer = _lazy_writer(src, dest, opts, source, pooled, facs)
    if writer.transposes:
        writer.abort()
        raise PoolError(f"axes_names {writer.names!r} would store the axes in another order "
                        "(t, c, z, y, x), which a streamed pyramid cannot; give the "
                        "array's axes in that order")
    log = LevelLog(t0, on_level)
    try:
        stream_pyramid(source.lazy, writer, shapes, opts.kind, pooled, facs,
                       budget=limit // STREAM_SHARE, threads=opts.threads, nodata=opts.nodata,
                       ignore_nan=opts.ignore_nan,
                       on_level=lambda i, lv: log.done(i, f"{dest}/{i}", lv))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return log.records


def _writer(source: Source, level: np.ndarray, fmt: str, pooled, facs, i: int):
    if fmt == "npy":
        return lambda f: arrays.write_npy(level, f)
    factors = {a: float(f**i) for a, f in zip(pooled, facs, strict=True)}
    if source.stack is not None and fmt == "tiff":
        out = tiff.scaled(source.stack, level, factors)
        return lambda f: tiff.write_tiff(out, f)
    if source.image is not None:
        like = resolution.pooled_image(source.image, factors)
        return lambda f: write_image(level, f, like, format=fmt)
    raise PoolError(f"a {source.format} input of shape {source.array.shape} cannot be "
                    f"written as {fmt}; write npy" + (" or tiff" if source.stack else ""))
