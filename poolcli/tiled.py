"""Out-of-core pooling of .npy files: read row chunks with their halos, write as we go.

A file whose working set exceeds the memory limit is never loaded whole. Each stage reads
its input in chunks along the outermost axis (a batch axis, or the first pooled axis with
the extra rows its windows need), pools each chunk with the same plan and kernels as an
in-memory run (so every cell is bit-identical), and appends the result to the output
file. Files are read with plain reads rather than a memory map, so resident memory holds
one chunk, not every page ever touched.
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


# A block of a run into a store gets this share of the memory limit for its cells and
# codec copies (block_bytes); the rest is the engine's temporaries and the allocator's
# slack (measured: peak within the limit plus the README's fixed overhead).
STORE_SHARE = 3

# zarr holds a decoded and an encoded copy of every chunk it is reading or writing (up to
# its concurrency at once). Up to this many bytes of them belong to the fixed overhead the
# README states for zarr runs; beyond it they count against the memory limit like the
# cells of a block themselves (big chunks, or a block small against its chunks).
CODEC_ALLOWANCE = 16 << 20


@dataclass(frozen=True)
class Block:
    """One block of a run into a chunked store: input cells ``key`` pooled with ``plan``
    give output cells ``out`` (a box of whole output chunks, cut along every axis)."""

    plan: PoolPlan
    key: tuple[slice, ...]
    out: tuple[slice, ...]


def _reach(ap: Any, n: int, out: int, step: int, chunk: int | None) -> tuple[int, int]:
    """Along one axis, for blocks of ``step`` output cells: the most input cells one block
    reads and the most input chunks (of ``chunk`` cells) it meets. ``ap`` is the axis's
    plan, None for a batch axis (read as written)."""
    def cells(o0):
        return ap.input_range(o0, min(o0 + step, out)) if ap is not None else (
            o0, min(o0 + step, out))
    starts = range(0, out, step)
    if len(starts) > 4096:  # bounded from the arithmetic rather than counted
        e = (n if ap.adaptive else min(n, (step - 1) * ap.stride + ap.span)) if ap else step
        met = 0 if chunk is None else min(-(-n // chunk), -(-(e - 1) // chunk) + 1)
        return e, met
    ext = met = 0
    for o0 in starts:
        r0, r1 = cells(o0)
        ext = max(ext, r1 - r0)
        if chunk is not None:
            met = max(met, (r1 - 1) // chunk - r0 // chunk + 1)
    return ext, met


def block_bytes(plan: PoolPlan, grid: tuple[int, ...], out_chunks: tuple[int, ...],
                in_chunks: tuple[int, ...] | None, in_itemsize: int, out_itemsize: int,
                streams: int) -> int:
    """Bytes one block of ``grid`` output chunks per axis holds at its peak: its input and
    output cells, and zarr's codec copies (a decoded and an encoded chunk for each of
    ``streams`` chunks in flight, reading the input or writing the output) beyond
    ``CODEC_ALLOWANCE``. ``in_chunks`` None: the input is read without a codec (.npy)."""
    pooled = {ap.axis: ap for ap in plan.axis_plans}
    oc = [min(c, n) for c, n in zip(out_chunks, plan.out_shape, strict=True)]
    ic = None if in_chunks is None else [min(c, n) for c, n in zip(in_chunks, plan.in_shape,
                                                                    strict=True)]
    out_ext = [min(n, m * c) for n, m, c in zip(plan.out_shape, grid, oc, strict=True)]
    reach = [_reach(pooled.get(a), plan.in_shape[a], plan.out_shape[a], out_ext[a],
                    None if ic is None else ic[a]) for a in range(len(oc))]
    held = (math.prod(e for e, _ in reach) * in_itemsize
            + math.prod(out_ext) * out_itemsize)
    written = math.prod(-(-e // c) for e, c in zip(out_ext, oc, strict=True))
    codec = min(streams, written) * 2 * math.prod(oc) * out_itemsize
    if ic is not None:
        met = math.prod(m for _, m in reach)
        codec = max(codec, min(streams, met) * 2 * math.prod(ic) * in_itemsize)
    return held + max(0, codec - CODEC_ALLOWANCE)


def block_grid(plan: PoolPlan, out_chunks: tuple[int, ...], in_chunks: tuple[int, ...] | None,
               in_itemsize: int, out_itemsize: int, budget: int, streams: int,
               what: str = "one output chunk") -> tuple[tuple[int, ...], int]:
    """Output chunks per block along each axis, as many as fit ``budget`` bytes
    (``block_bytes``), and how many chunks zarr may decode or encode at once (at most
    ``streams``, fewer where a block of one chunk needs it). The last axis grows first,
    an outer one only once every inner one is whole, so blocks are as contiguous as they
    can be. An adaptive axis is never cut.

    OverLimit, before any work, when even a block of one output chunk does not fit.
    """
    oc = [min(c, n) for c, n in zip(out_chunks, plan.out_shape, strict=True)]
    full = [-(-n // c) for n, c in zip(plan.out_shape, oc, strict=True)]
    grid = [1] * len(full)
    for ap in plan.axis_plans:
        if ap.adaptive:
            grid[ap.axis] = full[ap.axis]

    def cost(g, k):
        return block_bytes(plan, tuple(g), out_chunks, in_chunks, in_itemsize,
                           out_itemsize, k)

    need = cost(grid, streams)
    while need > budget and streams > 1:  # fewer chunks in flight, less codec memory
        streams = max(1, streams // 2)
        need = cost(grid, streams)
    if need > budget:
        chunk = "x".join(str(c) for c in oc)
        read = "" if in_chunks is None else (
            ", input chunks " + "x".join(str(min(c, n)) for c, n in
                                         zip(in_chunks, plan.in_shape, strict=True)))
        raise OverLimit(f"{what} ({chunk} cells{read}) needs {need:,} bytes in memory with "
                        f"the input it reads and zarr's codec copies, over the {budget:,} "
                        "bytes a block may use under the memory limit; a larger "
                        "`memory_limit` allows it, or smaller chunks")
    for a in reversed(range(len(full))):
        lo, hi = grid[a], full[a]  # the largest count along axis a that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            grid[a] = mid
            if cost(grid, streams) <= budget:
                lo = mid
            else:
                hi = mid - 1
        grid[a] = lo
        if lo < full[a]:
            break
    return tuple(grid), streams


def blocks(plan: PoolPlan, grid: tuple[int, ...], out_chunks: tuple[int, ...],
           ) -> Iterator[Block]:
    """The blocks of ``grid`` output chunks that tile the output, in C order, each with the
    input cells its windows read (the halo included) and the plan that pools them to
    exactly the whole-array result (``PoolPlan.part``)."""
    pooled = {ap.axis: ap for ap in plan.axis_plans}
    steps = [m * min(c, n) for m, c, n in zip(grid, out_chunks, plan.out_shape, strict=True)]
    for starts in product(*(range(0, n, st) for n, st in zip(plan.out_shape, steps,
                                                            strict=True))):
        out = tuple(slice(o, min(o + st, n))
                    for o, st, n in zip(starts, steps, plan.out_shape, strict=True))
        windows = tuple((out[ap.axis].start, out[ap.axis].stop) for ap in plan.axis_plans)
        shape = tuple(n if a in pooled else out[a].stop - out[a].start
                      for a, n in enumerate(plan.in_shape))
        sub, key = plan.part(windows, shape)
        yield Block(sub, tuple(key[a] if a in pooled else out[a] for a in range(len(shape))),
                    out)


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


def pool_store(src: str | os.PathLike, dst: str | os.PathLike, pipe: Pipeline, *,
               axes: Any = None, dtype: Any = None, threads: int | None = None,
               memory_limit: int | str | None = None, overwrite: bool = False,
               force_tiled: bool = False, protect: Collection[FileId] = ()) -> FileResult:
    """Pool a zarr array (or a .npy file) into a new zarr store ``dst`` within
    ``memory_limit`` bytes, chunk by chunk.

    ``src`` is ``data.zarr``, ``data.zarr/path/to/array`` or a .npy file; the result is one
    array at the root of ``dst``, whose chunks are the input's scaled by the stride. Every
    cell equals the in-memory result, at every chunk seam (each chunk reads the halo its
    windows need). Written under a temporary name and renamed into place; ``dst`` is
    never ``src`` or one of ``protect``, nor inside or around one of them.
    """
    from .io import zarr_store

    limit = default_memory_limit() if memory_limit is None else parse_size(memory_limit)
    protect = input_ids(src, protect)
    zarr_store.require_zarr()
    tmp = zarr_store.begin_output(dst, overwrite, protect)
    if zarr_store.is_zarr_path(src):
        source = zarr_store.open_input(src)
        in_chunks = tuple(source.chunks)
    else:
        source = NpyRows(src)
        in_chunks = None
    shape, in_dt = tuple(source.shape), np.dtype(source.dtype)
    plans = pipe.plans(shape, in_dt, axes=axes)
    result = FileResult(shape, in_dt, plans[-1].out_shape, in_dt, plans[0].axes, tiled=False)
    final_chunks = zarr_store.output_chunks(in_chunks, plans[-1].out_shape,
                                            stride_factors(plans))
    final_dt = in_dt
    for i, plan in enumerate(plans):
        final_dt = result_dtype(plan, final_dt, dtype if i == len(plans) - 1 else None)
    streams = zarr_store.concurrency()
    need = (working_set(shape, in_dt, pipe, axes) + _codec_bytes(shape, in_dt, in_chunks,
                                                                 streams)
            + _codec_bytes(plans[-1].out_shape, final_dt, final_chunks, streams))
    in_memory = need <= limit and not force_tiled
    # Every stage's output chunks, dtype and blocks, decided (or refused) before any work.
    stages: list[tuple[PoolPlan, np.dtype, tuple[int, ...], Any]] = []
    held, dt = source, in_dt
    for i, plan in enumerate([] if in_memory else plans):
        out_dt = result_dtype(plan, dt, dtype if i == len(plans) - 1 else None)
        chunks = getattr(held, "chunks", None)
        out_chunks = zarr_store.output_chunks(chunks, plan.out_shape, stride_factors([plan]))
        what = f"one output chunk of stage {str(pipe.stages[i])!r}"
        while True:
            try:
                grid = _grid_for(plan, held, out_chunks, out_dt, limit // STORE_SHARE, what)
                break
            except OverLimit:
                if chunks is not None or max(out_chunks) == 1:
                    raise  # the input's chunks decide the output's: refused
                # chunks of poolcli's choosing (a .npy input) are made to fit
                big = out_chunks.index(max(out_chunks))
                out_chunks = tuple(-(-c // 2) if a == big else c
                                   for a, c in enumerate(out_chunks))
        stages.append((plan, out_dt, out_chunks, grid))
        held, dt = _Chunked(out_dt, out_chunks), out_dt
    temps: list[Path] = []
    try:
        if in_memory:
            whole = source[...] if in_chunks is not None else np.load(src, allow_pickle=False)
            out, result.stages = pipe.run(np.asarray(whole), axes=axes,
                                          threads=threads, dtype=dtype)
            del whole
            result.output_dtype = out.dtype
            arr = zarr_store.create_output(tmp, out.shape, out.dtype, final_chunks)
            arr[...] = out
        else:
            result.tiled = True
            cur = source
            for i, (plan, out_dt, out_chunks, grid) in enumerate(stages):
                last = i == len(plans) - 1
                target = tmp if last else zarr_store.temporary_beside(dst, f"stage{i}")
                if not last:
                    temps.append(target)
                t0 = time.perf_counter()
                arr = zarr_store.create_output(target, plan.out_shape, out_dt, out_chunks)
                result.chunks += _store_stage(cur, arr, plan, out_dt, grid, threads)
                result.stages.append(StageTiming(str(pipe.stages[i]), plan.in_shape,
                                                 plan.out_shape, time.perf_counter() - t0))
                cur = arr
                result.output_dtype = out_dt
        zarr_store.commit(tmp, dst, overwrite, protect)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        import shutil

        for t in temps:
            shutil.rmtree(t, ignore_errors=True)
    return result


@dataclass(frozen=True)
class _Chunked:
    """What ``block_grid`` needs of a stage's input before that input is written."""

    dtype: np.dtype
    chunks: tuple[int, ...]


def _codec_bytes(shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...] | None,
                 streams: int) -> int:
    """zarr's codec copies reading or writing a whole array of ``chunks`` (none for a
    .npy), beyond what the fixed overhead holds (``CODEC_ALLOWANCE``)."""
    if chunks is None:
        return 0
    cells = math.prod(min(c, n) for c, n in zip(chunks, shape, strict=True))
    count = math.prod(-(-n // min(c, n)) for c, n in zip(chunks, shape, strict=True))
    return max(0, min(streams, count) * 2 * cells * np.dtype(dtype).itemsize
               - CODEC_ALLOWANCE)


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


def _store_stage(src: Any, dst: Any, plan: PoolPlan, out_dt: np.dtype,
                 grid: tuple[tuple[int, ...], int], threads: int | None,
                 transform: Any = None) -> int:
    """One stage from an indexable array (zarr, NpyRows) into a zarr array, block by block
    (``grid`` from ``block_grid``: no output chunk is written twice, zarr's chunks in
    flight bounded); ``transform`` maps each input block first (e.g. nodata cells to 0).
    Returns the blocks used."""
    from .io.zarr_store import chunks_in_flight

    count, buf = 0, None
    with chunks_in_flight(grid[1]):
        for b in blocks(plan, grid[0], tuple(dst.chunks)):
            x = np.asarray(src[b.key])
            if transform is not None:
                x = transform(x)
            # one output buffer for the stage (the first block is the largest): a fresh
            # one per block would be mapped and faulted in again each time
            cells = math.prod(b.plan.out_shape)
            if buf is None or buf.size < cells:
                buf = np.empty(cells, out_dt)
            res = buf[:cells].reshape(b.plan.out_shape)
            execute(b.plan, x, out=res, threads=threads, dtype=out_dt)
            del x  # the input block is not held while zarr encodes the output
            dst[b.out] = res
            count += 1
    return count


def _grid_for(plan: PoolPlan, src: Any, dst_chunks: tuple[int, ...], out_dt: np.dtype,
              budget: int, what: str, in_itemsize: int | None = None,
              out_itemsize: int | None = None) -> tuple[tuple[int, ...], int]:
    """``block_grid`` for reading ``src`` (a zarr array, or NpyRows without chunks) into
    an array of ``dst_chunks``."""
    from .io.zarr_store import concurrency

    chunks = getattr(src, "chunks", None)
    return block_grid(plan, dst_chunks, None if chunks is None else tuple(chunks),
                      in_itemsize or np.dtype(src.dtype).itemsize,
                      out_itemsize or out_dt.itemsize, budget, concurrency(), what)


def stream_pyramid(source: Any, writer: Any, shapes: list[tuple[int, ...]], kind: str,
                   pooled: tuple[int, ...], facs: tuple[int, ...], *, budget: int,
                   threads: int | None = None, nodata: Any = None, ignore_nan: bool = False,
                   on_level: Any = None) -> None:
    """A pyramid of ``source`` (a zarr array or NpyRows) written level by level through
    ``writer`` (an OmeZarrWriter), block by block, each block within ``budget`` bytes
    with zarr's codec copies (``block_bytes``; OverLimit when one chunk cannot fit).

    The same levels as ``pyramid()``: level i+1 pools level i as stored; avg carries the
    sums of level-0 cells (and their counts where nodata or ignored NaN leave holes) in
    scratch arrays and rounds each level once from them. ``on_level(i, array)`` after each.
    """
    from .core.kinds import check_nodata
    from .core.plan import make_plan
    from .pyramid import _block_counts, _mean, _sum_dtype

    dt = np.dtype(source.dtype)
    nodata = check_nodata(nodata, dt)
    shape0 = tuple(source.shape)

    def copy_plan(shape):
        return make_plan(shape, "max", 1, axes=pooled)

    def pool_plan(shape, name, **kw):
        ks = tuple(min(f, shape[a]) for a, f in zip(pooled, facs, strict=True))
        return make_plan(shape, name, ks, ks, 0, 1, True, axes=pooled, **kw)

    def fit(shape, passes):
        """The chunks of a level (and its scratch arrays) of ``shape``: the writer's,
        halved until every pass that writes or reads them fits the budget; and each
        pass's grid. ``passes``: functions of the chunks giving a grid (or OverLimit)."""
        chunks, first = writer.default_chunks(shape), None
        while True:
            try:
                return chunks, [grid_of(chunks) for grid_of in passes]
            except OverLimit as e:
                first = first or e
                if max(chunks) == 1:
                    raise first from None  # the input's chunks are too big: said as such
                big = chunks.index(max(chunks))
                chunks = tuple(-(-c // 2) if a == big else c for a, c in enumerate(chunks))

    def grid(plan, src, out_dt, what, itemsize=None):
        return lambda chunks: _grid_for(plan, src, chunks, out_dt, budget, what,
                                        itemsize, itemsize)

    def copy_boxes(plan, chunks, g):
        from .io.zarr_store import chunks_in_flight

        with chunks_in_flight(g[1]):
            yield from (b.out for b in blocks(plan, g[0], chunks))

    plan0 = copy_plan(shape0)
    chunks, (g,) = fit(shape0, [grid(plan0, source, dt, "one chunk of level 0")])
    level = writer.create(0, shape0, dt, chunks)
    for idx in copy_boxes(plan0, chunks, g):
        level[idx] = source[idx]
    if on_level is not None:
        on_level(0, level)

    if kind != "avg":
        prev = level
        for i, shape in enumerate(shapes[1:], 1):
            plan = pool_plan(tuple(prev.shape), kind, ignore_nan=ignore_nan, nodata=nodata)
            chunks, (g,) = fit(shape, [grid(plan, prev, dt, f"one chunk of level {i}")])
            level = writer.create(i, shape, dt, chunks)
            _store_stage(prev, level, plan, dt, g, threads)
            if on_level is not None:
                on_level(i, level)
            prev = level
        return

    n0 = [shape0[a] for a in pooled]
    top = len(shapes) - 1  # the largest block: factor**top cells per axis, or the axis
    sdt = _sum_dtype(dt, math.prod(min(n, f**top) for n, f in zip(n0, facs, strict=True)))
    holes = nodata is not None or (ignore_nan and dt.kind == "f")

    def missing(x):
        m = np.zeros(x.shape, bool) if nodata is None else x == nodata
        return m | np.isnan(x) if ignore_nan and dt.kind == "f" else m

    def zero_missing(x):
        return np.where(missing(x), 0, x).astype(sdt)

    def real_cells(x):
        return (~missing(x)).astype(np.int32)

    sums, counts, src_sums, src_counts = None, None, source, source
    for i, shape in enumerate(shapes[1:], 1):
        plan, mean_plan = pool_plan(tuple(src_sums.shape), "sum"), copy_plan(shape)
        what = f"one chunk of level {i}"
        passes = [grid(plan, src_sums, sdt, what)]
        if holes:
            passes.append(grid(plan, src_counts, np.dtype(np.int32), what))
        # the sums, the counts and the float64 quotient's temporaries: ~32 bytes a cell
        passes.append(lambda c, m=mean_plan, what=what: _grid_for(
            m, _Chunked(sdt, c), c, dt, budget, what, 16, 16))
        chunks, grids = fit(shape, passes)
        sums = writer.scratch(f"sums{i}", shape, sdt, chunks)
        _store_stage(src_sums, sums, plan, sdt, grids[0], threads,
                     zero_missing if i == 1 and holes else None)
        if holes:
            counts = writer.scratch(f"counts{i}", shape, np.int32, chunks)
            _store_stage(src_counts, counts, plan, np.dtype(np.int32), grids[1], threads,
                         real_cells if i == 1 else None)
        level = writer.create(i, shape, dt, chunks)
        for idx in copy_boxes(mean_plan, chunks, grids[-1]):
            x = np.asarray(sums[idx])
            # a block's counts only: the whole level's would be as large as the level
            div = (np.asarray(counts[idx]) if holes
                   else _block_counts(shape, pooled, facs, n0, i, box=idx))
            level[idx] = _mean(x, div, dt, False, nodata)
        if on_level is not None:
            on_level(i, level)
        if i > 1:
            writer.drop_scratch(f"sums{i - 1}")
            writer.drop_scratch(f"counts{i - 1}")
        src_sums, src_counts = sums, counts
