"""Fast paths for integer arrays and running max/min, chosen from the plan: the one entry
point (``try_fast``), which plans qualify, and how the work is cut into tiles and threads.

The general engine combines strided views one kernel offset at a time. That suits floats,
but NumPy cannot vectorise the strided views of narrow integers, computes their averages
through floats, and finds a mode by sorting window stacks. Here, when every window is a
whole block (stride = kernel, no padding or dilation, no partial window) of a C-contiguous
array whose pooled axes are consecutive, the work is reorganised, one idea per module:

- ``fast_blocks``: the window's rows and cells as views (two cells per lane of twice the
  width), exact integer avg and sum with half-to-even rounding in integers, max and min
  of blocks, and the per-thread scratch buffers every path reuses;
- ``fast_mode``: mode of blocks without sorting (uniform windows first, then a sorting
  network or pairwise-equality counts), and the run counting of the engine's general
  mode over sorted stacks (``mode_of_sorted``);
- ``fast_running``: a running max/min for stride 1 (any padding), not limited to blocks.

``try_fast`` is the one entry point the engine calls; it returns None for every case it
does not cover, and the engine runs as before. Results are bit-identical to the general
engine's and to the brute-force reference (tests/test_fast.py).
"""

from __future__ import annotations

import math

import numpy as np

from .fast_blocks import Scratch, as_view, box, box_strided, extreme
from .fast_mode import MODE_MAX_CELLS, block_mode, mode_of_sorted
from .fast_running import running_job
from .plan import PoolPlan
from .threads import run_on_threads

__all__ = ["block_kernel", "mode_of_sorted", "plan_job", "try_fast"]

# Input bytes one tile reads. Smaller tiles would keep the temporaries in the L2 cache,
# but each NumPy call costs a few microseconds whatever its size, and with 20-30 calls
# per tile that overhead dominated below 1 MiB (measured: 2 MiB tiles 1.5-2x faster
# than 256 KiB ones for W6, W8, W9, W10).
TILE_BYTES = 2 * 1024 * 1024
# Below this many input bytes one thread does it all: starting threads costs more.
THREAD_MIN_BYTES = 1 << 20


def try_fast(plan: PoolPlan, x: np.ndarray, out_dtype: np.dtype, threads: int,
             out: np.ndarray | None = None) -> np.ndarray | None:
    """Pool ``x`` (of the plan's shape) by a fast path, or return None if none applies.

    ``out_dtype`` is the dtype the result must have (pool()'s rule or its ``dtype=``);
    ``out``, if given, receives the result; ``threads`` is the number of worker threads.
    """
    out_dtype = np.dtype(out_dtype)
    job = plan_job(plan, x, out_dtype)
    if job is None:
        return None
    if out is not None and (out.shape != plan.out_shape or out.dtype != out_dtype
                            or not out.flags.c_contiguous):
        return None
    res = np.empty(plan.out_shape, out_dtype) if out is None else out
    nb, no, per_row, work = job(res)
    tiles = _tiles(nb, no, per_row * getattr(work, "tile_scale", 1), threads)
    n = min(threads, len(tiles)) if nb * no * per_row >= THREAD_MIN_BYTES else 1
    if len(tiles) > 1:
        # Even one thread works off the main thread: there glibc returns freed
        # temporaries of a few hundred KiB to the system and page-faults them back in.
        run_on_threads(lambda tile, scratch: work(*tile, scratch), tiles, n, state=Scratch)
    else:
        scratch = Scratch()
        for tile in tiles:
            work(*tile, scratch)
    return res




def _tiles(nb: int, no: int, per_row: int, threads: int) -> list[tuple[int, int, int, int]]:
    """(b0, b1, o0, o1) blocks over the batch axis and the first pooled axis's windows;
    ``per_row`` is the input bytes one window row of one batch entry reads."""
    want = 4 * threads if threads > 1 else 1
    per_b = per_row * no
    if nb > 1 and per_b <= TILE_BYTES:
        step = max(1, min(TILE_BYTES // max(per_b, 1), -(-nb // want)))
        return [(b, min(b + step, nb), 0, no) for b in range(0, nb, step)]
    rows = max(1, TILE_BYTES // max(per_row, 1))
    if nb * -(-no // rows) < want:
        rows = max(1, -(-no * nb // want))
    return [(b, b + 1, o, min(o + rows, no)) for o in range(0, no, rows) for b in range(nb)]


# --- which plans qualify ------------------------------------------------------------------


def block_kernel(plan: PoolPlan) -> tuple[int, ...] | None:
    """The per-axis block sizes if every window is a whole block of the input, else None.

    Whole blocks: stride = kernel, dilation 1, no padding, and no window that runs past
    the input (cells past the last whole block are dropped, as floor mode does).
    """
    ks = []
    for ap in plan.axis_plans:
        if (ap.adaptive or ap.stride != ap.kernel or ap.dilation != 1 or ap.before
                or ap.after or ap.out * ap.kernel > ap.n):
            return None
        ks.append(ap.kernel)
    return tuple(ks)


def plan_job(plan: PoolPlan, x: np.ndarray, out_dtype: np.dtype):
    """For a covered case a function of the result array returning (batch entries,
    windows along the first pooled axis, input bytes per window row, work(b0, b1, o0,
    o1, scratch)); else None.

    Block pooling works on an input view

    ``(B, o1, k1, ..., o_{m-1}, k_{m-1}, o_m * k_m * C)``: batch axes in
    front merged into B, every pooled axis but the last split into (window, offset), and
    the last one merged with the trailing axes (C cells, an image's channels) into rows.
    The result view is ``(B, o1, ..., o_{m-1}, o_m * C)``. With one pooled axis a unit
    axis stands in for o1.
    """
    axes = plan.axes
    if (plan.return_indices or plan.nodata is not None  # missing cells: the engine's rules
            or x.shape != plan.in_shape or not x.flags.c_contiguous
            or not x.dtype.isnative  # lanes reinterpret bytes: native order only
            or axes != tuple(range(axes[0], axes[0] + len(axes)))):
        return None
    ks = block_kernel(plan)
    if ks is None:
        return running_job(plan, x, out_dtype)
    if x.dtype.kind == "b":
        x = x.view(np.uint8)
        if plan.kind in ("avg", "sum") and int(x.max()) > 1:
            # lanes add the bytes, and NumPy holds any non-zero byte as True (Pillow's
            # 1-bit images hold 255): such arrays take the engine, which counts Trues
            return None
    dt = x.dtype
    if dt.kind not in "iu" or out_dtype.kind not in "biuf":
        return None
    p0, m = axes[0], len(axes)
    nb = math.prod(x.shape[:p0])
    C = math.prod(x.shape[p0 + m:])
    outs = [ap.out for ap in plan.axis_plans]
    cells = math.prod(ks)
    if plan.kind in ("avg", "sum"):
        if (dt.itemsize > 4 or out_dtype.kind == "b"
                or (plan.kind == "avg" and plan.divisor_override is not None)
                or (plan.kind == "sum" and out_dtype.kind == "f")):
            return None
        if ks[-1] == 2 and cells <= 2 ** (8 * dt.itemsize):  # lanes hold every sum
            tile_fn = box(plan.kind, dt, ks, C)
        elif cells & (cells - 1) == 0 or plan.kind == "sum" or out_dtype.kind == "f":
            tile_fn = box_strided(plan.kind, dt, ks, C)
        else:
            # An integer mean over a divisor that is not a power of two: the engine's
            # float32 division is exact there and measured faster than integer division.
            return None
    elif plan.kind == "mode":
        if not 2 <= cells <= MODE_MAX_CELLS:
            return None
        tile_fn = block_mode(dt, ks, C)
    elif plan.kind in ("max", "min"):
        if cells < 2:
            return None
        tile_fn = extreme(plan.kind, dt, ks, C)
    else:
        return None
    crop = tuple(slice(0, o * k) for o, k in zip(outs, ks, strict=True))
    xc = x.reshape(nb, *x.shape[p0:p0 + m], C)[(slice(None), *crop, slice(None))]
    shape = [nb]
    for o, k in zip(outs[:-1], ks[:-1], strict=True):
        shape += [o, k]
    if m == 1:
        shape.append(1)
    shape.append(outs[-1] * ks[-1] * C)
    try:
        xv = as_view(xc, tuple(shape))
    except AttributeError:
        return None
    rshape = (nb, *outs[:-1], outs[-1] * C) if m > 1 else (nb, 1, outs[-1] * C)

    def job(res: np.ndarray):
        rv = res.reshape(rshape)

        def work(b0, b1, o0, o1, scratch):
            tile_fn(xv[b0:b1, o0:o1], rv[b0:b1, o0:o1], scratch)

        return xv.shape[0], xv.shape[1], math.prod(xv.shape[2:]) * xv.itemsize, work

    return job
