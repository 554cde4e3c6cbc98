"""pyramid(): levels of an array, each pooled from the one before with kernel = stride = factor.

Level 0 is the input; level i+1 pools level i over the pooled axes with kernel = stride =
factor and ``ceil_mode=True``, so edge cells are never dropped and a partial block pools
its real cells. avg never accumulates rounding: the sums of level-0 cells are carried from
level to level (with the cell counts where nodata or ignored NaN leave holes) and each level
is its sums over its counts, rounded once to the input's dtype, half to even (a bool level
is True where at least half its cells are, ``core.kinds.bool_of_mean``). Every other
kind pools the previous level as it is, in the input's dtype.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

from .core.kinds import bool_of_mean, canonical_kind, check_nodata
from .errors import PoolError
from .pool import engine_for, pool

# pool() options a pyramid sets itself from ``factor``
_FIXED = ("kernel", "stride", "padding", "dilation", "ceil_mode", "output_size",
          "count_include_pad", "divisor_override", "return_indices", "dtype")


def resolve(shape: tuple[int, ...], factor: Any = 2,
            axes: Any = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(pooled axes, factor per pooled axis) for an array of ``shape``, checked.

    Default axes: the last ``len(factor)`` when ``factor`` is a tuple, else the last two
    (or one for a 1-d array).
    """
    ndim = len(shape)
    if ndim == 0:
        raise PoolError("cannot make a pyramid of a 0-d array (a scalar)")
    facs = factor if isinstance(factor, tuple) else None
    if axes is None:
        m = len(facs) if facs is not None else min(ndim, 2)
        if m > ndim:
            raise PoolError(f"factor {factor} has {m} values but the array has only "
                            f"{ndim} axes (shape {shape})")
        axes = tuple(range(ndim - m, ndim))
    else:
        raw = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
        for a in raw:
            if not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
                raise PoolError(f"axes {raw}: axis {a} is out of range for shape {shape}; "
                                f"use -{ndim}..{ndim - 1}")
        axes = tuple(int(a) % ndim for a in raw)
        if len(set(axes)) != len(axes):
            raise PoolError(f"axes {raw} names an axis twice; give each axis once")
    if facs is None:
        facs = (factor,) * len(axes)
    if len(facs) != len(axes):
        raise PoolError(f"factor {factor} has {len(facs)} values but {len(axes)} axes "
                        f"{axes} are pooled; give one per axis")
    for f in facs:
        if isinstance(f, bool) or not isinstance(f, numbers.Integral) or f < 1:
            raise PoolError(f"factor {factor} must be an int >= 1 (or one per axis)")
    order = sorted(range(len(axes)), key=axes.__getitem__)
    return tuple(axes[i] for i in order), tuple(int(facs[i]) for i in order)


def level_shapes(shape: tuple[int, ...], levels: int | None = None, factor: Any = 2,
                 axes: Any = None, min_size: int = 1) -> list[tuple[int, ...]]:
    """The shape of every level, level 0 (``shape``) first, without data.

    >>> level_shapes((5, 9))
    [(5, 9), (3, 5), (2, 3), (1, 2), (1, 1)]
    >>> level_shapes((512, 2048, 2048), levels=2)
    [(512, 2048, 2048), (512, 1024, 1024), (512, 512, 512)]
    """
    shape = tuple(int(n) for n in shape)
    pooled, facs = resolve(shape, factor, axes)
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)
                               or levels < 0):
        raise PoolError(f"levels={levels!r} must be an int >= 0 (levels after level 0)")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise PoolError(f"min_size={min_size!r} must be an int >= 1")
    if levels is None and all(f == 1 for f in facs):
        raise PoolError(f"factor {factor} never shrinks the array; give a factor >= 2 on "
                        "some axis, or `levels`")
    shapes = [shape]
    while levels is None or len(shapes) <= levels:
        cur = shapes[-1]
        if levels is None and all(f == 1 or cur[a] <= min_size
                                  for a, f in zip(pooled, facs, strict=True)):
            break
        nxt = list(cur)
        for a, f in zip(pooled, facs, strict=True):
            nxt[a] = -(-cur[a] // f)
        shapes.append(tuple(nxt))
    return shapes


def pyramid(x: Any, levels: int | None = None, kind: str = "avg", factor: Any = 2,
            axes: Any = None, min_size: int = 1, **pool_options: Any) -> list[np.ndarray]:
    """Levels of ``x``, level 0 (``x`` itself) first, every level in ``x``'s dtype.

    Parameters
    ----------
    x : array_like of bool, integer or floating dtype.
    levels : levels after level 0; None continues until every pooled axis is
        <= ``min_size`` (or would stop shrinking).
    kind : any pooling kind; ``avg`` (default) for images and intensities, ``mode`` for
        label masks (it keeps only values present in the input).
    factor : kernel = stride per pooled axis (int, or one int per axis).
    axes : the pooled axes (default: the last ``len(factor)``, or the last two).
    min_size : see ``levels``.
    **pool_options : further pool() options for every level: ``nodata``, ``ignore_nan``,
        ``norm``, ``threads``. Windows are set by ``factor``.

    Examples
    --------
    >>> x = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    >>> [lvl.tolist() for lvl in pyramid(x)]
    [[[0, 1, 2], [3, 4, 255]], [[2, 128]], [[44]]]
    """
    arr = engine_for(x).prepare(x)  # a dask array stays one: its levels are lazy
    fixed = sorted(set(pool_options) & set(_FIXED))
    if fixed:
        raise PoolError(f"pyramid sets the windows from `factor` (kernel = stride, "
                        f"ceil_mode=True); drop {', '.join(f'`{k}`' for k in fixed)}")
    name = canonical_kind(kind)
    shapes = level_shapes(arr.shape, levels, factor, axes, min_size)
    pooled, facs = resolve(arr.shape, factor, axes)
    return list(iter_levels(arr, shapes, name, pooled, facs, **pool_options))


def iter_levels(arr: np.ndarray, shapes: list[tuple[int, ...]], kind: str,
                pooled: tuple[int, ...], facs: tuple[int, ...], *, alpha: bool = False,
                **pool_options: Any) -> Iterator[np.ndarray]:
    """Each level in turn (level 0 first), holding only what the next level needs.

    ``alpha``: the last axis holds channels whose last is alpha, and avg weights colour by
    alpha (exactly: sums of colour*alpha over sums of alpha), as images are pooled.
    """
    yield arr
    if kind == "avg":
        yield from _exact_means(arr, shapes, pooled, facs, alpha, **pool_options)
        return
    regroup = engine_for(arr).regroup
    prev = arr
    for shape in shapes[1:]:
        prev = regroup(prev, pooled)
        ks = tuple(min(f, prev.shape[a]) for a, f in zip(pooled, facs, strict=True))
        prev = pool(prev, kind, kernel=ks, stride=ks, ceil_mode=True, axes=pooled,
                    dtype=arr.dtype, **pool_options)
        assert prev.shape == shape
        yield prev


def _sum_dtype(dt: np.dtype, cells: int) -> np.dtype:
    """Sums of up to ``cells`` level-0 cells of ``dt``, exactly."""
    if dt.kind == "f":
        return np.dtype(np.float64)
    if dt == np.uint64:
        return dt
    top = 1 if dt.kind == "b" else max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    return np.dtype(np.int32) if cells * top < 2**31 else np.dtype(np.int64)


def _exact_means(arr: np.ndarray, shapes, pooled, facs, alpha: bool, *,
                 nodata: Any = None, ignore_nan: bool = False, threads: int | None = None,
                 **rest: Any) -> Iterator[np.ndarray]:
    if rest:
        raise PoolError(f"avg pyramids take `nodata`, `ignore_nan` and `threads`; "
                        f"drop {', '.join(f'`{k}`' for k in sorted(rest))}")
    if nodata is not None and isinstance(nodata, float) and math.isnan(nodata):
        nodata, ignore_nan = None, True
    dt = arr.dtype
    n0 = [arr.shape[a] for a in pooled]
    top = len(shapes) - 1  # the largest block: factor**top cells per axis, or the axis
    cells = math.prod(min(n, f**top) for n, f in zip(n0, facs, strict=True))
    if alpha and (nodata is not None or dt.kind not in "bu"):
        raise PoolError("an image with alpha averages colour weighted by alpha; `nodata` "
                        "and float samples do not apply (use premultiply=False)")
    sdt = _sum_dtype(dt, cells * (int(np.iinfo(dt).max) if alpha else 1))
    missing = None
    if nodata is not None:
        nodata = check_nodata(nodata, dt)
        missing = arr == nodata
    if ignore_nan and dt.kind == "f":
        nan = np.isnan(arr)
        missing = nan if missing is None else missing | nan
    if missing is not None and not bool(missing.any()):
        missing = None
    top = 1 if dt.kind == "b" else int(np.iinfo(dt).max) if dt.kind in "iu" else 0
    small = dt.kind in "biu" and cells * top * (top if alpha else 1) < 2**23
    if missing is None and not alpha:
        sums = arr  # the first sums straight from the input (no widened copy)
    else:
        # written without in-place updates, so a dask array's levels stay lazy
        sums = arr.astype(sdt)
        if alpha:
            sums = np.concatenate([sums[..., :-1] * sums[..., -1:], sums[..., -1:]], axis=-1)
        if missing is not None:
            sums = np.where(missing, sdt.type(0), sums)
    counts = None if missing is None else (~missing).astype(np.int32)
    if counts is not None and alpha:
        counts = counts[..., -1:]
    regroup = engine_for(arr).regroup
    for level, shape in enumerate(shapes[1:], 1):
        sums = regroup(sums, pooled)
        counts = None if counts is None else regroup(counts, pooled)
        ks = tuple(min(f, sums.shape[a]) for a, f in zip(pooled, facs, strict=True))
        opts = {"kernel": ks, "stride": ks, "ceil_mode": True, "axes": pooled,
                "threads": threads}
        sums = pool(sums, "sum", dtype=sdt, **opts)
        if counts is not None:
            counts = pool(counts, "sum", dtype=np.int32, **opts)
            div = counts
        else:
            div = _block_counts(shape, pooled, facs, n0, level, like=sums)
        yield _mean(sums, div, dt, alpha, nodata, small, nonzero=counts is None)
        assert sums.shape == shape


def _block_counts(shape, pooled, facs, n0, level, like: Any = None, box=None) -> Any:
    """Level-0 cells under each block of a level without holes: per axis
    ``min((j+1)*F, n) - j*F`` with F = factor**level, multiplied across the axes; only
    for the cells ``box`` (a slice per axis) when given, as a streamed level needs.
    ``like``: the level's sums, whose kind of array each axis's counts are made as
    (ones_like of one line of it along that axis), so a dask level's counts are lazy
    chunks aligned with its own, not a whole array carried in its graph; the counts of
    the whole level are made once, by the product of the axes' lines."""
    div = np.ones([1] * len(shape), np.int64)
    for a, f, n in zip(pooled, facs, n0, strict=True):
        big = f**level
        j = np.arange(shape[a], dtype=np.int64)
        if box is not None:
            j = j[box[a]]
        v = [1] * len(shape)
        v[a] = len(j)
        c = (np.minimum((j + 1) * big, n) - j * big).reshape(v)
        if like is not None:
            line = tuple(slice(None) if b == a else slice(0, 1) for b in range(len(shape)))
            c = np.ones_like(like[line], dtype=np.int64) * c
        div = div * c
    return div


def _mean(sums: np.ndarray, div: np.ndarray, dt: np.dtype, alpha: bool,
          nodata: Any, small: bool = False, nonzero: bool = False) -> np.ndarray:
    """Sums over counts, rounded once to ``dt`` (half to even for integers); ``small``:
    every sum is below 2**23, so float32 division is exact enough (see _divide);
    ``nonzero``: no count is 0 (a level without holes)."""
    if alpha:
        colour = _divide(sums[..., :-1], sums[..., -1:], dt, 0, small)
        a = _divide(sums[..., -1:], div, dt, 0 if nodata is None else nodata, small,
                    nonzero)
        return np.concatenate([colour, a], axis=-1)
    return _divide(sums, div, dt, np.nan if nodata is None else nodata, small, nonzero)


def _divide(num: Any, den: Any, dt: np.dtype, empty: Any, small: bool = False,
            nonzero: bool = False) -> Any:
    """num / den rounded once to ``dt``; ``empty`` where den is 0 (``nonzero``: it never
    is, and the two passes that find and fill those cells are skipped). Written without
    in-place updates, so it works on dask arrays too."""
    zero = None if nonzero else den == 0
    if zero is not None:
        den = np.where(zero, 1, den)
    if dt.kind == "f":
        with np.errstate(invalid="ignore"):
            out = (num / den).astype(dt)
    elif dt.kind == "b":  # 1-bit: the one rule for a bool cell from a mean
        out = bool_of_mean(np.divide(num, den, dtype=np.float32 if small else np.float64))
    elif small or num.dtype.itemsize <= 4:
        # float division then rint is exact: a tie a/b = m + 1/2 is exact, and any other
        # quotient is >= 1/(2b) from one, far above the rounding error while |a| < 2**23
        # in float32 (2**52 in float64)
        out = np.rint(np.divide(num, den, dtype=np.float32 if small else np.float64))
        info = np.iinfo(dt)
        out = np.clip(out, info.min, info.max).astype(dt)
    else:  # 64-bit sums: integer division, half to even
        q, r = np.divmod(num, den)
        twice = 2 * r
        q = q + ((twice > den) | ((twice == den) & (q % 2 == 1)))
        out = q.astype(dt)
    if zero is None:
        return out
    # blocks of nodata (or ignored NaN) only; an integer level has no NaN to give
    nan = isinstance(empty, float) and math.isnan(empty)
    fill = np.zeros((), dt) if nan and dt.kind != "f" else np.array(empty).astype(dt)
    return np.where(zero, fill, out)
