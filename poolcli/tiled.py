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
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .core.engine import execute, input_rows
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
        return _block(f, head, plan, out_dt, out, budget, threads, depth=0, offset=head.offset)


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


def _block(f, head: NpyHeader, plan: PoolPlan, out_dt, out, budget, threads, depth: int,
           offset: int) -> int:
    """Pool the sub-array at ``offset`` spanning axes depth.. (earlier axes fixed at one index)."""
    shape, isz = head.shape, head.dtype.itemsize
    lead = (1,) * depth
    p0 = plan.axes[0]
    in_row = math.prod(shape[depth + 1:]) * isz
    out_row = math.prod(plan.out_shape[depth + 1:]) * out_dt.itemsize
    chunks = 0
    if depth < p0:
        # A batch axis: whole entries per chunk, or descend when one entry is too large.
        if in_row + out_row <= budget:
            step = max(1, budget // (in_row + out_row))
            for b0 in range(0, shape[depth], step):
                b1 = min(b0 + step, shape[depth])
                x = _read(f, offset + b0 * in_row, head.dtype, (*lead, b1 - b0, *shape[depth + 1:]))
                res = np.empty((*lead, b1 - b0, *plan.out_shape[depth + 1:]), out_dt)
                execute(plan, x, out=res, threads=threads, dtype=out_dt)
                out.write(memoryview(res).cast("B"))
                chunks += 1
            return chunks
        for b in range(shape[depth]):
            chunks += _block(f, head, plan, out_dt, out, budget, threads, depth + 1,
                             offset + b * in_row)
        return chunks
    # The first pooled axis: output rows per chunk, each with the input rows it reads.
    ap = plan.axis_plans[0]
    step_in = ap.kernel if ap.adaptive else ap.stride
    rows = max(1, (budget - ap.span * in_row) // (step_in * in_row + out_row))
    for o0 in range(0, ap.out, rows):
        o1 = min(o0 + rows, ap.out)
        r0, r1 = input_rows(ap, o0, o1)
        x = _read(f, offset + r0 * in_row, head.dtype, (*lead, r1 - r0, *shape[depth + 1:]))
        res = np.empty((*lead, o1 - o0, *plan.out_shape[depth + 1:]), out_dt)
        execute(plan, x, out=res, threads=threads, dtype=out_dt, rows=(o0, o1, r0))
        out.write(memoryview(res).cast("B"))
        chunks += 1
    return chunks
