"""Out-of-core pooling into chunked stores (zarr): blocks of whole output chunks within
the memory limit, and pyramids streamed level by level into an OME-Zarr.

A store run cuts the output into boxes of whole output chunks along every axis, each
pooled from just the input cells its windows read (``PoolPlan.part``) with the same
plan and kernels as an in-memory run, so every cell is bit-identical; a box is sized so
its cells and zarr's decoded and encoded chunk copies fit the memory limit, and a stage
whose single output chunk cannot fit is refused before any work. The .npy path and the
memory limit's arithmetic are ``tiled``'s.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .core.engine import execute
from .core.kinds import result_dtype
from .core.plan import PoolPlan
from .io.atomic import FileId
from .pipeline import Pipeline, StageTiming
from .tiled import (
    FileResult,
    NpyRows,
    OverLimit,
    default_memory_limit,
    input_ids,
    parse_size,
    stride_factors,
    working_set,
)

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
