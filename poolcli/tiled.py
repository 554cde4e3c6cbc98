"""Out-of-core pooling of .npy files: read row chunks with their halos, write as we go.

A file whose working set exceeds the memory limit is never loaded whole. Each stage reads
its input in chunks along the outermost axis (a batch axis, or the first pooled axis with
the extra rows its windows need), pools each chunk with the same plan and kernels as an
in-memory run (so every cell is bit-identical), and appends the result to the output
file. Files are read with plain reads rather than a memory map, so resident memory holds
one chunk, not every page ever touched. Here too: the memory limit (parsed, defaulted,
checked) and the results every out-of-core run gives; zarr stores are ``stores``'s.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .core.engine import execute
from .core.kinds import result_dtype
from .core.plan import PoolPlan
from .errors import PoolError
from .io.arrays import ArrayReadError, NpyHeader
from .io.arrays import read_npy_header as read_header
from .io.atomic import FileId, atomic_write, check_output, file_id, temp_beside
from .pipeline import Pipeline, StageTiming

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str | int) -> int:
    """Bytes from ``512MB``, ``2GiB``, ``1.5G`` or a plain number of bytes.

    >>> parse_size("512MB"), parse_size("2GiB"), parse_size(2**22)
    (512000000, 2147483648, 4194304)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        unit = m.group(2).lower() if m else None
        if not m or unit not in _UNITS:
            raise PoolError(f"memory limit {text!r} is not a size; use e.g. 512MB, 2GiB or "
                            "a number of bytes")
        value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1 << 20:
        raise PoolError(f"memory limit {text!r} is below 1 MiB; give at least 1MiB")
    return value


def default_memory_limit() -> int:
    """A quarter of physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


# Freed buffers at least this large go back to the system at once (see return_big_buffers).
BIG_BUFFER = 4 << 20


def return_big_buffers(threshold: int = BIG_BUFFER) -> bool:
    """Make the C allocator (glibc's malloc) return freed buffers of ``threshold`` bytes
    and more to the system at once; True where it could. A process-wide setting, for the
    program that owns the process (the command line sets it; a library caller may).

    By default glibc raises its mmap threshold each time a large buffer is freed, after
    which such buffers come from per-thread heaps that keep them resident: zarr decodes
    chunks on a pool of threads, so a run over big chunks kept ~80 MiB of freed chunk
    buffers (a 32 MiB limit peaked at 149 MiB instead of 67 MiB with this set).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc: nothing to set
    return bool(mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD, which also fixes it


class OverLimit(ValueError):
    """Work that cannot fit the memory limit, refused before it starts."""


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(what: str, need: int, limit: int, remedy: str = "") -> None:
    """OverLimit unless ``need`` bytes fit ``limit``; the message says what could help.

    ``remedy`` is the way around the limit for this input (e.g. a .npy output is pooled in
    chunks); raising the limit is offered only when the machine has the memory.
    """
    if need <= limit:
        return
    phys = physical_memory()
    if phys is not None and need > phys:
        advice = f"more than this machine's memory ({phys:,} bytes)"
    else:
        advice = "a larger `memory_limit` allows it"
    raise OverLimit(f"{what} needs {need:,} bytes in memory, over the memory limit of "
                    f"{limit:,}; {advice}" + (f"; {remedy}" if remedy else ""))


@dataclass
class FileResult:
    """What pool_file did: shapes and dtypes in and out, per-stage timings, chunks used."""

    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    output_shape: tuple[int, ...]
    output_dtype: np.dtype
    axes: tuple[int, ...]
    tiled: bool
    chunks: int = 0
    stages: list[StageTiming] = field(default_factory=list)


def working_set(shape: tuple[int, ...], dtype: Any, pipe: Pipeline, axes: Any = None) -> int:
    """Bytes an in-memory run holds at its peak: the input plus each stage's output."""
    total = math.prod(shape) * np.dtype(dtype).itemsize
    dt = np.dtype(dtype)
    peak, prev = total, total
    for plan in pipe.plans(shape, axes=axes):
        dt = result_dtype(plan, dt)
        size = math.prod(plan.out_shape) * dt.itemsize
        peak = max(peak, prev + size)
        prev = size
    return peak


def pool_file(src: str | os.PathLike, dst: str | os.PathLike, pipe: Pipeline, *,
              axes: Any = None, dtype: Any = None, threads: int | None = None,
              memory_limit: int | str | None = None, overwrite: bool = False,
              force_tiled: bool = False, protect: Collection[FileId] = ()) -> FileResult:
    """Pool the .npy ``src`` into the .npy ``dst`` within ``memory_limit`` bytes.

    The result is written to a temporary file beside ``dst`` and renamed into place, so
    an interrupted run leaves nothing half-written; an existing ``dst`` is kept unless
    ``overwrite``. Files small enough are pooled in memory; larger ones in chunks.
    """
    limit = default_memory_limit() if memory_limit is None else parse_size(memory_limit)
    head = read_header(src)
    if head.dtype.kind not in "biuf" or head.dtype.hasobject:
        raise PoolError(f"{src}: dtype {head.dtype} cannot be pooled")
    plans = pipe.plans(head.shape, head.dtype, axes=axes)
    final_dt = head.dtype
    for plan in plans:
        final_dt = result_dtype(plan, final_dt)
    if dtype is not None:
        final_dt = result_dtype(plans[-1], final_dt, dtype)
    dst = Path(dst)
    protect = {*protect, file_id(os.stat(src))}
    check_output(dst, overwrite=overwrite, protect=protect)
    result = FileResult(head.shape, head.dtype, plans[-1].out_shape, final_dt,
                        plans[0].axes, tiled=False)
    need = working_set(head.shape, head.dtype, pipe, axes)
    fits = need <= limit
    if head.fortran_order:
        # chunks are read in C order; a Fortran-order file is pooled in memory
        check_fits("a Fortran-order .npy (pooled whole)", need, limit,
                   "save it in C order (numpy.ascontiguousarray) to pool it in chunks")
    if (fits and not force_tiled) or head.fortran_order:
        arr = np.load(src, allow_pickle=False)
        out, result.stages = pipe.run(arr, axes=axes, threads=threads, dtype=dtype)
        atomic_write(dst, lambda f: np.lib.format.write_array(f, out, allow_pickle=False),
                     overwrite=overwrite, protect=protect)
        return result

    result.tiled = True
    shape, dt = head.shape, head.dtype
    for plan in plans:  # the smallest chunk of every stage must fit, before any work
        out_dt = result_dtype(plan, dt)
        check_fits(f"one chunk of stage {str(pipe.stages[plans.index(plan)])!r}",
                   3 * _min_chunk(shape, dt, plan, out_dt), limit,
                   "its rows are too long to be pooled in chunks of rows")
        shape, dt = plan.out_shape, out_dt
    temps: list[Path] = []
    try:
        cur, cur_head = Path(src), head
        for i, plan in enumerate(plans):
            last = i == len(plans) - 1
            out_dt = result_dtype(plan, cur_head.dtype, dtype if last else None)
            t0 = time.perf_counter()
            if last:
                def write(f, cur=cur, cur_head=cur_head, plan=plan, out_dt=out_dt):
                    result.chunks += _stage(cur, cur_head, plan, out_dt, f, limit, threads)
                atomic_write(dst, write, overwrite=overwrite, protect=protect)
            else:
                with temp_beside(dst, f".stage{i}.npy") as (fd, name):
                    temps.append(name)
                    with os.fdopen(fd, "wb") as f:
                        result.chunks += _stage(cur, cur_head, plan, out_dt, f, limit, threads)
                cur, cur_head = name, read_header(name)
            result.stages.append(StageTiming(str(pipe.stages[i]), plan.in_shape,
                                             plan.out_shape, time.perf_counter() - t0))
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    return result


def _stage(src: Path, head: NpyHeader, plan: PoolPlan, out_dt: np.dtype, out: BinaryIO,
           limit: int, threads: int | None) -> int:
    """Pool one file into ``out`` (header, then chunks in C order); returns chunks used."""
    desc = {"descr": np.lib.format.dtype_to_descr(out_dt), "fortran_order": False,
            "shape": plan.out_shape}
    try:
        np.lib.format.write_array_header_1_0(out, desc)
    except ValueError:
        np.lib.format.write_array_header_2_0(out, desc)
    # A chunk's input, its output and the kernels' tiles must fit: give a chunk a third.
    budget = limit // 3
    with open(src, "rb") as f:
        return _block(f, head, plan, out_dt, out, budget, threads)


def _min_chunk(shape: tuple[int, ...], dtype: np.dtype, plan: PoolPlan,
               out_dt: np.dtype) -> int:
    """Bytes of the smallest chunk _block can read and write for this stage."""
    p0 = plan.axes[0]  # batch axes in front are cut down to single entries first
    in_row = math.prod(shape[p0 + 1:]) * dtype.itemsize
    out_row = math.prod(plan.out_shape[p0 + 1:]) * out_dt.itemsize
    ap = plan.axis_plans[0]
    return min(ap.span, shape[p0]) * in_row + out_row


def _read(f: BinaryIO, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    f.seek(offset)
    arr = np.empty(shape, dtype)
    if f.readinto(memoryview(arr).cast("B")) != arr.nbytes:
        raise ArrayReadError(f"{f.name}: the file ends early (truncated .npy)")
    return arr


@dataclass(frozen=True)
class Slab:
    """One chunk of an out-of-core run: a range along one axis, the axes before it fixed.

    Input cells ``lead + (i0..i1,)`` (all cells of later axes) give output cells
    ``lead + (o0..o1,)``; ``rows`` is ``execute``'s argument when ``axis`` is the first
    pooled axis (the input range then includes the halo overlapping windows read).
    """

    lead: tuple[int, ...]
    axis: int
    i0: int
    i1: int
    o0: int
    o1: int
    rows: tuple[int, int, int] | None

    def in_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (1,) * len(self.lead) + (self.i1 - self.i0,) + tuple(shape[self.axis + 1:])

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (1,) * len(self.lead) + (self.o1 - self.o0,) + tuple(shape[self.axis + 1:])


def slabs(plan: PoolPlan, in_itemsize: int, out_itemsize: int, budget: int,
          depth: int = 0, lead: tuple[int, ...] = ()) -> Iterator[Slab]:
    """The chunks of an out-of-core run of ``plan`` into a .npy file, in C order of the
    output (the file is written in that order), each within ``budget`` bytes of input
    and output where possible (``_min_chunk`` is the least; see ``pool_file``).

    Batch axes before the first pooled one are cut into whole entries (or descended into
    when one entry is too large); the first pooled axis is cut into output rows with the
    input rows they read. A store is cut in ``blocks`` instead, along every axis.
    """
    shape = plan.in_shape
    in_row = math.prod(shape[depth + 1:]) * in_itemsize
    out_row = math.prod(plan.out_shape[depth + 1:]) * out_itemsize
    if depth < plan.axes[0]:
        if in_row + out_row <= budget:
            step = max(1, budget // (in_row + out_row))
            for b0 in range(0, shape[depth], step):
                b1 = min(b0 + step, shape[depth])
                yield Slab(lead, depth, b0, b1, b0, b1, None)
            return
        for b in range(shape[depth]):
            yield from slabs(plan, in_itemsize, out_itemsize, budget, depth + 1, (*lead, b))
        return
    ap = plan.axis_plans[0]
    step_in = ap.kernel if ap.adaptive else ap.stride
    rows = max(1, (budget - ap.span * in_row) // (step_in * in_row + out_row))
    for o0 in range(0, ap.out, rows):
        o1 = min(o0 + rows, ap.out)
        r0, r1 = ap.input_range(o0, o1)
        yield Slab(lead, depth, r0, r1, o0, o1, (o0, o1, r0))


def _block(f, head: NpyHeader, plan: PoolPlan, out_dt, out, budget, threads) -> int:
    """Pool the file's array chunk by chunk into ``out``, in C order; returns chunks used."""
    strides = np.cumprod((1, *head.shape[:0:-1]))[::-1]  # C-order strides in cells
    chunks = 0
    for s in slabs(plan, head.dtype.itemsize, out_dt.itemsize, budget):
        start = sum(int(i) * int(st) for i, st in zip((*s.lead, s.i0), strides, strict=False))
        x = _read(f, head.offset + start * head.dtype.itemsize, head.dtype,
                  s.in_shape(head.shape))
        res = np.empty(s.out_shape(plan.out_shape), out_dt)
        execute(plan, x, out=res, threads=threads, dtype=out_dt, rows=s.rows)
        out.write(memoryview(res).cast("B"))
        chunks += 1
    return chunks


def input_ids(src: str | os.PathLike, protect: Collection[FileId] = ()) -> frozenset[FileId]:
    """``protect`` and the identity of ``src`` (a file or a store's folder), which no
    output may replace, sit inside or hold."""
    try:
        return frozenset({*protect, file_id(os.stat(src))})
    except OSError:
        return frozenset(protect)  # unreadable: opening it says so


def stride_factors(plans: list[PoolPlan]) -> dict[int, float]:
    factors: dict[int, float] = {}
    for plan in plans:
        for ap in plan.axis_plans:
            factors[ap.axis] = factors.get(ap.axis, 1.0) * (ap.n / ap.out if ap.adaptive
                                                             else ap.stride)
    return factors


class NpyRows:
    """A .npy file indexed by boxes (``a[i, r0:r1, c0:c1]``, unit steps), read with plain
    reads rather than a memory map, whose touched pages would count towards the process's
    memory: one read per contiguous run of the box in the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self.head = read_header(path)
        if self.head.fortran_order:
            raise PoolError(f"{path}: a Fortran-order .npy cannot be read in chunks")
        self.shape, self.dtype, self.chunks = self.head.shape, self.head.dtype, None
        self.ndim = len(self.shape)
        self._strides = np.cumprod((1, *self.shape[:0:-1]))[::-1]

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if index == (Ellipsis,):
            index = ()
        if len(index) > len(self.shape):
            raise TypeError("NpyRows reads boxes: one int or slice per axis")
        box, drop = [], []
        for a, n in enumerate(self.shape):
            i = index[a] if a < len(index) else slice(None)
            if isinstance(i, slice):
                r0, r1, step = i.indices(n)
                if step != 1:
                    raise TypeError("NpyRows reads boxes with unit steps")
            else:
                r0, r1 = int(i), int(i) + 1
                drop.append(a)
            box.append((r0, max(r0, r1)))
        ext = [r1 - r0 for r0, r1 in box]
        out = np.empty(ext, self.dtype)
        # the last axis the box does not span whole: the box's cells along it, with every
        # later axis, lie together in the file
        j = max((a for a, ((r0, r1), n) in enumerate(zip(box, self.shape, strict=True))
                 if (r0, r1) != (0, n)), default=0)
        runs = out.reshape(math.prod(ext[:j]), -1) if out.size else out.reshape(0, 0)
        with open(self.path, "rb") as f:
            for row, lead in zip(runs, product(*(range(r0, r1) for r0, r1 in box[:j])),
                                 strict=False):
                start = sum(int(i) * int(st) for i, st in
                            zip((*lead, box[j][0]), self._strides, strict=False))
                f.seek(self.head.offset + start * self.dtype.itemsize)
                if f.readinto(memoryview(row).cast("B")) != row.nbytes:
                    raise ArrayReadError(f"{self.path}: the file ends early (truncated .npy)")
        return out.reshape([e for a, e in enumerate(ext) if a not in drop])

