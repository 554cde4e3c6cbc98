"""The dask engine: pool() and Pipeline on a dask array give a lazy dask array.

Each output chunk is one task that pools, with the in-memory engine, just the input cells
its windows read (``PoolPlan.part``): the chunk's own cells and the halo past its end
that windows starting inside it reach. So every value equals the in-memory result, at
every chunk seam. Output chunks follow the input's: along a pooled axis, output chunk j
holds the windows whose first cell lies in input chunk j (so it may be empty); batch axes
keep their chunks. An adaptive axis (``output_size`` that does not divide the length) is
pooled whole: it is re-chunked to one chunk first. Needs the optional extra
``poolcli[dask]``.
"""

from __future__ import annotations

from itertools import pairwise, product
from typing import Any

import numpy as np

from .core import engine as memory
from .core.kinds import result_dtype
from .core.plan import AxisPlan, PoolPlan
from .pool import Engine


def _prepare(x: Any) -> Any:
    if x.dtype.kind not in "biuf":
        raise TypeError(f"pooling needs a bool, integer or floating array, got dtype "
                        f"{x.dtype}; convert it first (complex: take .real or abs())")
    return x


def _window_blocks(ap: AxisPlan, chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    """Output windows per input chunk: window i belongs to the chunk holding its first cell."""
    if ap.adaptive:
        return [(0, ap.out)]
    edges = np.cumsum((0, *chunks))
    # window i starts at i*stride - before; the first window at or past each chunk edge
    firsts = [min(ap.out, max(0, -(-(int(e) + ap.before) // ap.stride))) for e in edges]
    firsts[0], firsts[-1] = 0, ap.out
    return list(pairwise(firsts))


def _execute(plan: PoolPlan, x: Any, *, dtype: Any = None, threads: int | None = None) -> Any:
    """Pool the dask array ``x`` lazily; the result is a dask array (see the module doc)."""
    import dask
    import dask.array as da

    final = result_dtype(plan, x.dtype, dtype)
    adaptive = {ap.axis: -1 for ap in plan.axis_plans if ap.adaptive}
    if adaptive:
        x = x.rechunk(adaptive)
    pooled = {ap.axis: ap for ap in plan.axis_plans}
    # Per axis: the blocks of the output, as (o0, o1) windows of a pooled axis or an input
    # chunk range of a batch axis.
    per_axis = []
    for axis, sizes in enumerate(x.chunks):
        if axis in pooled:
            per_axis.append(_window_blocks(pooled[axis], sizes))
        else:
            edges = [int(e) for e in np.cumsum((0, *sizes))]
            per_axis.append(list(pairwise(edges)))
    indices = plan.return_indices
    # each task pools one thread's worth: the cluster's workers give the parallelism
    work = dask.delayed(_pool_part, pure=True, nout=2 if indices else None)
    blocks: dict[tuple[int, ...], Any] = {}
    idx_blocks: dict[tuple[int, ...], Any] = {}
    for pos in product(*(range(len(b)) for b in per_axis)):
        ranges = [per_axis[a][i] for a, i in enumerate(pos)]
        windows = tuple(ranges[ap.axis] for ap in plan.axis_plans)
        batch_key = tuple(slice(*ranges[a]) if a not in pooled else slice(None)
                          for a in range(x.ndim))
        sub, key = plan.part(windows, tuple(b - a if i not in pooled else x.shape[i]
                                            for i, (a, b) in enumerate(ranges)))
        shape = tuple(b - a for a, b in ranges)
        if 0 in shape:
            blocks[pos] = da.empty(shape, final, chunks=shape)
            if indices:
                idx_blocks[pos] = da.empty(shape, np.int64, chunks=shape)
            continue
        piece = x[batch_key][key]
        origin = tuple(k.start for k in key)
        res = work(sub, piece, final, origin, plan.in_shape)
        if indices:
            blocks[pos] = da.from_delayed(res[0], shape, final)
            idx_blocks[pos] = da.from_delayed(res[1], shape, np.int64)
        else:
            blocks[pos] = da.from_delayed(res, shape, final)
    out = da.block(_nest(blocks, [len(b) for b in per_axis]))
    if indices:
        return out, da.block(_nest(idx_blocks, [len(b) for b in per_axis]))
    return out


def _nest(blocks: dict[tuple[int, ...], Any], counts: list[int], prefix: tuple = ()) -> Any:
    if len(prefix) == len(counts):
        return blocks[prefix]
    return [_nest(blocks, counts, (*prefix, i)) for i in range(counts[len(prefix)])]


def _pool_part(sub: PoolPlan, piece: np.ndarray, final: np.dtype, origin: tuple,
               whole: tuple[int, ...]):
    """One output chunk, computed in memory; indices made flat over the whole input."""
    res = memory.execute(sub, np.asarray(piece), dtype=final, threads=1)
    if not sub.return_indices:
        return res
    out, idx = res
    # local flat index over the part's pooled axes -> flat index over the whole input's
    local = [sub.in_shape[ap.axis] for ap in sub.axis_plans]
    full = [whole[ap.axis] for ap in sub.axis_plans]
    coords = np.unravel_index(idx, local)
    shifted = [c + origin[ap.axis] for c, ap in zip(coords, sub.axis_plans, strict=True)]
    return out, np.ravel_multi_index(shifted, full).astype(np.int64)


ENGINE = Engine("dask", _prepare, _execute)


def pool_store(src: str, dst: str, pipe: Any, *, axes: Any = None, dtype: Any = None,
               overwrite: bool = False) -> Any:
    """Pool the zarr array ``src`` into a new zarr store ``dst`` on the active dask
    scheduler (a distributed Client's cluster, say), chunk-parallel across its workers.

    The result is what ``tiled.pool_store`` writes, cell for cell and chunk for chunk: one
    array at the root of ``dst`` whose chunks are the input's scaled by the stride. It is
    written under a temporary name and renamed into place only when every chunk is in,
    so a run that dies (or a worker lost and its tasks retried) leaves no half-written
    output. Returns ``tiled.FileResult``.
    """
    import time
    from pathlib import Path

    import dask.array as da

    from .io import zarr_store
    from .pipeline import StageTiming
    from .tiled import FileResult, stride_factors

    if Path(dst).exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
    source = zarr_store.open_input(src)
    x = da.from_zarr(source)
    plans = pipe.plans(x.shape, x.dtype, axes=axes)
    y = pipe(x, axes=axes, dtype=dtype)
    chunks = zarr_store.output_chunks(tuple(source.chunks), y.shape, stride_factors(plans))
    tmp = zarr_store.temporary_beside(dst, "tmp")
    t0 = time.perf_counter()
    try:
        out = zarr_store.create_output(tmp, y.shape, y.dtype, chunks)
        da.store(y.rechunk(chunks), out, lock=False)
        zarr_store.commit(tmp, dst, overwrite)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    result = FileResult(tuple(x.shape), x.dtype, tuple(y.shape), y.dtype, plans[0].axes,
                        tiled=True, chunks=y.npartitions)
    # the stages run as one graph, fused chunk by chunk: their times are one figure
    result.stages = [StageTiming(str(pipe), plans[0].in_shape, plans[-1].out_shape, seconds)]
    return result
