"""The dask engine: pool() and Pipeline on a dask array give a lazy dask array.

Each output chunk is one task that pools, with the in-memory engine, just the input cells
its windows read (``PoolPlan.part``): the chunk's own cells and the halo past its end
that windows starting inside it reach. So every value equals the in-memory result, at
every chunk seam. Output chunks follow the input's: along a pooled axis, output chunk j
holds the windows whose first cell lies in input chunk j (an input chunk in which no
window starts gives none); batch axes keep their chunks. An adaptive axis (an
``output_size`` that does not divide the length) is pooled whole: it is re-chunked to one
chunk first. Needs the optional extra ``poolcli[dask]``.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left, bisect_right
from itertools import pairwise, product
from typing import Any

import numpy as np

from .core import engine as memory
from .core.kinds import check_input, result_dtype
from .core.plan import AxisPlan, PoolPlan
from .pool import Engine


def _prepare(x: Any) -> Any:
    check_input(np.dtype(x.dtype))
    return x


def _window_blocks(ap: AxisPlan, chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    """Output windows per input chunk: window i belongs to the chunk holding its first
    cell; chunks where no window starts are left out."""
    if ap.adaptive:
        return [(0, ap.out)]
    edges = np.cumsum((0, *chunks))
    # window i starts at i*stride - before; the first window at or past each chunk edge
    firsts = [min(ap.out, max(0, -(-(int(e) + ap.before) // ap.stride))) for e in edges]
    firsts[0], firsts[-1] = 0, ap.out
    # an input chunk where no window starts gives no output chunk (dask broadcasts empty
    # chunks of a length-1 axis wrongly in later element-wise steps)
    return [(a, b) for a, b in pairwise(firsts) if b > a]


def _execute(plan: PoolPlan, x: Any, *, dtype: Any = None, threads: int | None = None) -> Any:
    """Pool the dask array ``x`` lazily; the result is a dask array (see the module doc).

    The graph is one layer with one task per output chunk, which takes the input chunks
    its windows read by their keys (its own and the neighbours holding its halo): no
    per-chunk slicing graphs, and a halo travels between workers, not from storage twice.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    final = result_dtype(plan, x.dtype, dtype)
    adaptive = {ap.axis: -1 for ap in plan.axis_plans if ap.adaptive}
    if adaptive:
        x = x.rechunk(adaptive)
    pooled = {ap.axis: ap for ap in plan.axis_plans}
    edges = [[int(e) for e in np.cumsum((0, *sizes))] for sizes in x.chunks]
    # Per axis: the output's blocks, as (o0, o1) windows of a pooled axis or the input's
    # chunk (a0, a1) of a batch axis.
    per_axis = [_window_blocks(pooled[a], x.chunks[a]) if a in pooled
                else list(pairwise(edges[a])) for a in range(x.ndim)]
    name = "poolcli-" + tokenize(x, plan, final)
    layer: dict[tuple, Any] = {}
    for pos in product(*(range(len(b)) for b in per_axis)):
        ranges = [per_axis[a][i] for a, i in enumerate(pos)]
        windows = tuple(ranges[ap.axis] for ap in plan.axis_plans)
        sub, key = plan.part(windows, tuple(b - a if i not in pooled else x.shape[i]
                                            for i, (a, b) in enumerate(ranges)))
        # the input chunks each axis reads, and where the part starts in the first one
        spans, local = [], []
        for a in range(x.ndim):
            if a in pooled:
                lo, hi = key[a].start, key[a].stop
                first = bisect_right(edges[a], lo) - 1
                last = bisect_left(edges[a], hi) - 1
                spans.append(range(first, last + 1))
                local.append(slice(lo - edges[a][first], hi - edges[a][first]))
            else:
                spans.append(range(pos[a], pos[a] + 1))
                local.append(slice(None))
        keys = _nested_keys(x.name, spans)
        origin = tuple(key[a].start if a in pooled else 0 for a in range(x.ndim))
        layer[(name, *pos)] = (_pool_part, sub, keys, tuple(local), final, origin,
                               plan.in_shape)
    chunks = tuple(tuple(b - a for a, b in blocks) for blocks in per_axis)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    if not plan.return_indices:
        return da.Array(graph, name, chunks, dtype=final)
    both = da.Array(graph, name, chunks, dtype=final)
    out = both.map_blocks(_first, dtype=final)
    idx = both.map_blocks(_second, dtype=np.int64)
    return out, idx


def _first(pair: Any) -> np.ndarray:
    return pair[0] if isinstance(pair, tuple) else pair


def _second(pair: Any) -> np.ndarray:
    return pair[1] if isinstance(pair, tuple) else np.empty(pair.shape, np.int64)


def _nested_keys(name: str, spans: list[range], prefix: tuple = ()) -> Any:
    """The keys of the input chunks in ``spans`` (one range per axis), nested as np.block
    takes them."""
    if len(prefix) == len(spans):
        return (name, *prefix)
    return [_nested_keys(name, spans, (*prefix, i)) for i in spans[len(prefix)]]


def _pool_part(sub: PoolPlan, blocks: Any, local: tuple[slice, ...], final: np.dtype,
               origin: tuple, whole: tuple[int, ...]):
    """One output chunk: its input chunks joined, the cells it reads cut out, pooled in
    memory; indices made flat over the whole input."""
    piece = np.block(blocks)[local] if isinstance(blocks, list) else blocks[local]
    res = memory.execute(sub, piece, dtype=final, threads=1)
    if not sub.return_indices:
        return res
    out, idx = res
    # local flat index over the part's pooled axes -> flat index over the whole input's
    local_shape = [sub.in_shape[ap.axis] for ap in sub.axis_plans]
    full = [whole[ap.axis] for ap in sub.axis_plans]
    coords = np.unravel_index(idx, local_shape)
    shifted = [c + origin[ap.axis] for c, ap in zip(coords, sub.axis_plans, strict=True)]
    return out, np.ravel_multi_index(shifted, full).astype(np.int64)


# A pooled chunk shrinks by the stride, so after a few levels of a pyramid every task
# would pool a handful of cells; chunks are joined to at least this many cells over the
# pooled axes (256 x 256 over two, about 40**3 over three) before the next level.
MIN_TASK_CELLS = 2**16


def _regroup(x: Any, axes: tuple[int, ...]) -> Any:
    """``x`` with its chunks along ``axes`` joined to regular chunks of at least
    ``MIN_TASK_CELLS ** (1 / len(axes))`` cells each, where they are smaller."""
    if not axes:
        return x
    side = max(1, round(MIN_TASK_CELLS ** (1 / len(axes))))
    small = {a: side for a in axes if len(x.chunks[a]) > 1 and max(x.chunks[a]) < side}
    return x.rechunk(small) if small else x


ENGINE = Engine("dask", _prepare, _execute, _regroup)


def pool_store(src: str, dst: str, pipe: Any, *, axes: Any = None, dtype: Any = None,
               overwrite: bool = False, protect: Any = (), run: Any = None) -> Any:
    """Pool the zarr array ``src`` into a new zarr store ``dst`` on the active dask
    scheduler (a distributed Client's cluster, say), chunk-parallel across its workers.

    The result is what ``stores.pool_store`` writes, cell for cell and chunk for chunk: one
    array at the root of ``dst`` whose chunks are the input's scaled by the stride. It is
    written under a temporary name and renamed into place only when every chunk is in,
    so a run that dies (or a worker lost and its tasks retried) leaves no half-written
    output; ``dst`` is never ``src`` or one of ``protect``, nor inside or around one.
    ``run(work)`` computes a list of dask collections (default ``dask.compute``; a caller
    may watch the tasks). Returns ``tiled.FileResult``.
    """
    import time

    import dask.array as da

    from .io import zarr_store
    from .pipeline import StageTiming
    from .tiled import FileResult, input_ids, stride_factors

    protect = input_ids(src, protect)
    tmp = zarr_store.begin_output(dst, overwrite, protect)
    source = zarr_store.open_input(src)
    x = da.from_zarr(source)
    plans = pipe.plans(x.shape, x.dtype, axes=axes)
    y = pipe(x, axes=axes, dtype=dtype)
    chunks = zarr_store.output_chunks(tuple(source.chunks), y.shape, stride_factors(plans))
    t0 = time.perf_counter()
    try:
        out = zarr_store.create_output(tmp, y.shape, y.dtype, chunks)
        work = [da.store(y.rechunk(chunks), out, lock=False, compute=False)]
        if run is None:
            import dask

            dask.compute(*work)
        else:
            run(work)
        zarr_store.commit(tmp, dst, overwrite, protect)
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


# A .npy read as a dask array: slabs of whole rows of about this many bytes per chunk
NPY_CHUNK_BYTES = 64 * 2**20


def from_source(source: Any) -> Any:
    """A zarr array (in its own chunks) or a ``tiled.NpyRows`` (in slabs of rows) as a
    dask array whose tasks read their chunks from storage on the workers."""
    import dask.array as da

    from .tiled import NpyRows

    if isinstance(source, NpyRows):
        row = max(1, math.prod(source.shape[1:]) * source.dtype.itemsize)
        rows = max(1, min(source.shape[0], NPY_CHUNK_BYTES // row)) if source.shape else 1
        # the reader itself travels in the graph: its path and parsed header, no data
        return da.from_array(source, chunks=(rows, *source.shape[1:]),
                             meta=np.empty((0,) * source.ndim, source.dtype),
                             name="poolcli-npy-" + _token(source))
    return da.from_zarr(source)


def _token(source: Any) -> str:
    from dask.base import tokenize

    st = os.stat(source.path)
    return tokenize(str(source.path), st.st_mtime_ns, st.st_size)


def store_aligned(x: Any, chunks: tuple[int, ...]) -> Any:
    """``x`` with blocks that each cover whole chunks of a zarr array chunked ``chunks``
    (what writes without locks need): an axis whose blocks do not end on chunk edges is
    made regular, in the multiple of its chunk nearest its own block size."""
    want = {}
    for a, (blocks, c) in enumerate(zip(x.chunks, chunks, strict=True)):
        if any(b % c for b in blocks[:-1]):
            want[a] = max(c, round(max(blocks) / c) * c)
    return x.rechunk(want) if want else x
