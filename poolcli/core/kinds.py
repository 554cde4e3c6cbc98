"""The kinds of pooling: one registry entry per kind, its dtype rules, and the maths that
prepares cells before windows combine and finishes the combined values afterwards.

Adding a kind is one entry here (and its tests); the command line, the pipeline grammar
and the help are generated from ``KINDS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PoolError

# --- dtype rules -------------------------------------------------------------------------


def _keep(dt: np.dtype) -> np.dtype:
    return dt


def _sum_out(dt: np.dtype) -> np.dtype:
    if dt == np.uint64:
        return dt
    if dt.kind in "biu":
        return np.dtype(np.int64)
    return dt


def _float_out(dt: np.dtype) -> np.dtype:
    return dt if dt.kind == "f" else np.dtype(np.float64)


def compute_float(dt: np.dtype) -> np.dtype:
    """The float type arithmetic happens in: float16 is computed in float32."""
    if dt == np.float16 or dt == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _sum_acc(dt: np.dtype, window: int) -> np.dtype:
    if dt.kind == "f":
        return compute_float(dt)
    if dt == np.uint64:
        return dt
    # Small integers summed over small windows cannot overflow a narrow accumulator, and
    # a narrow one moves less memory; the result is widened at the end.
    top = 1 if dt.kind == "b" else max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    for acc in (np.int16, np.int32):
        if window * top <= np.iinfo(acc).max:
            return np.dtype(acc)
    return np.dtype(np.int64)


def bool_of_mean(mean: Any) -> Any:
    """A bool (1-bit) cell from the mean of bool cells, the fraction of them that is True:
    True from one half up, so a tie goes to True (white).

    This is Pillow's rule for a user who averages a 1-bit image as grey and converts it
    back without dithering (``convert("1", dither=NONE)`` makes 128 of 255 white), and
    ImageMagick's ``-monochrome``. The one rule for pooled 1-bit images and pyramid levels
    of bool arrays; lazy arrays stay lazy.

    >>> bool_of_mean(np.array([0.25, 0.5, 0.75]))
    array([False,  True,  True])
    """
    return mean >= 0.5


def lowest(dt: np.dtype) -> Any:
    """The value that never wins a max (padding)."""
    if dt.kind == "b":
        return False
    if dt.kind == "f":
        return -np.inf
    return np.iinfo(dt).min


def highest(dt: np.dtype) -> Any:
    """The value that never wins a min (padding), and sorts after every real cell."""
    if dt.kind == "b":
        return True
    if dt.kind == "f":
        return np.inf
    return np.iinfo(dt).max


# --- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One pooling kind: how windows are combined and what dtype comes out."""

    name: str
    summary: str
    out_dtype: Callable[[np.dtype], np.dtype]
    separable: bool = True
    supports_indices: bool = False
    combine: np.ufunc | None = None  # how two partial results merge (separable kinds)
    nan_combine: np.ufunc | None = None  # the same, skipping NaN (ignore_nan)
    identity: Callable[[np.dtype], Any] | None = None  # fills cells no input reaches yet
    divides: bool = False  # result = accumulated / count (avg, l2)
    power: str | None = None  # cells are transformed first: "square" or "norm"
    # The options only some kinds take (KIND_OPTIONS) that this kind takes; giving one to
    # a kind that ignores it is a mistake said as such, never silently dropped.
    options: frozenset[str] = frozenset()
    picks_cell: bool = False  # every result is a cell of its window (palette indices pool)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("max", "largest value in each window", _keep, supports_indices=True,
             combine=np.maximum, nan_combine=np.fmax, identity=lowest, picks_cell=True),
        Kind("min", "smallest value in each window", _keep, supports_indices=True,
             combine=np.minimum, nan_combine=np.fmin, identity=highest, picks_cell=True),
        Kind("avg", "mean of each window (alias: mean)", _float_out, combine=np.add,
             identity=lambda dt: 0, divides=True,
             options=frozenset({"count_include_pad", "divisor_override", "premultiply"})),
        Kind("sum", "sum of each window", _sum_out, combine=np.add, identity=lambda dt: 0),
        Kind("l2", "root mean square of each window", _float_out, combine=np.add,
             identity=lambda dt: 0, divides=True, power="square",
             options=frozenset({"count_include_pad"})),
        Kind("lp", "Lp norm of each window, (sum |x|**p)**(1/p)", _float_out, combine=np.add,
             identity=lambda dt: 0, power="norm", options=frozenset({"norm"})),
        Kind("median", "lower median of each window (always a cell of it)", _keep,
             separable=False, picks_cell=True),
        Kind("mode", "most frequent value in each window, ties to the smallest", _keep,
             separable=False, picks_cell=True),
    )
}
ALIASES: dict[str, str] = {"mean": "avg"}
# Options that only some kinds take (each kind lists its own in ``Kind.options``);
# premultiply is pool_image's, and applies when every stage takes it.
KIND_OPTIONS: frozenset[str] = frozenset().union(*(k.options for k in KINDS.values()))


def check_option(option: str, kinds: list[str], *, every: bool = False) -> None:
    """PoolError when ``option`` is one only some kinds take and ``kinds`` (a pipeline's
    stages) do not take it: any of them, or ``every`` one of them.

    >>> check_option("norm", ["lp"]); check_option("kernel", ["max"])
    >>> check_option("count_include_pad", ["max"])
    Traceback (most recent call last):
    poolcli.errors.PoolError: `count_include_pad` applies to kinds avg, l2; not to max
    """
    if option not in KIND_OPTIONS:
        return
    taken = [option in KINDS[k].options for k in kinds]
    if all(taken) if every else any(taken):
        return
    takers = ", ".join(k.name for k in KINDS.values() if option in k.options)
    plural = "kinds" if "," in takers else "kind"
    refused = ", ".join(dict.fromkeys(k for k, t in zip(kinds, taken, strict=True) if not t))
    raise PoolError(f"`{option}` applies to {plural} {takers}; not to {refused}")


def acc_dtype(kind: Kind, dt: np.dtype, plan: Any) -> np.dtype:
    """The dtype partial results are kept in while the windows are combined."""
    if kind.power is not None:
        return compute_float(dt)
    if kind.combine is np.add:
        if kind.divides and dt.kind in "iu" and dt.itemsize == 8:
            # A mean must not wrap around: 64-bit integers are summed in float64 (by exact
            # halves where the sums could pass 2**53: see needs_wide_sums).
            return np.dtype(np.float64)
        return _sum_acc(dt, plan.window_size)
    return dt


def missing_cells(kind: Kind, plan: Any, tile: np.ndarray) -> np.ndarray | None:
    """Cells a window skips: equal to ``nodata``, and NaN with ``ignore_nan``.

    None when no cell is skipped, or when a kind's combining rule skips them itself (max
    and min with ``ignore_nan`` only: fmax and fmin pass NaN over).
    """
    nan = plan.ignore_nan and tile.dtype.kind == "f"
    if plan.nodata is None and not (nan and kind.combine is np.add):
        return None
    miss = tile == plan.nodata if plan.nodata is not None else None
    if nan:
        miss = np.isnan(tile) if miss is None else miss | np.isnan(tile)
    return miss if miss is not None and miss.any() else None


def check_nodata(v: Any, dt: np.dtype) -> Any:
    """``nodata`` value ``v`` (None: none) for an array of ``dt``; PoolError when it
    cannot occur in such an array. Integral floats become ints."""
    if v is None or dt.kind == "f":
        return v
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if dt.kind == "b":
        if v not in (0, 1):
            raise PoolError(f"nodata={v} cannot occur in a bool array; use 0 or 1")
        return v
    info = np.iinfo(dt)
    if not (isinstance(v, int) and info.min <= v <= info.max):
        raise PoolError(f"nodata={v} cannot occur in a {dt} array; use an integer in "
                        f"{info.min}..{info.max}")
    return v


def prepare(kind: Kind, tile: np.ndarray, plan: Any,
            missing: np.ndarray | None = None, acc: np.dtype | None = None) -> np.ndarray:
    """Transform input cells before combining (squares, |x|**p, in ``acc``, the float the
    windows are combined in); ``missing`` cells (nodata, ignored NaN) become the value
    that leaves a window's result unchanged."""
    if kind.power is None:
        if missing is not None:
            fill = 0 if kind.combine is np.add else identity_of(kind, plan, tile.dtype)
            return np.where(missing, np.array(fill).astype(tile.dtype), tile)
        return tile
    t = tile.astype(acc or compute_float(tile.dtype))
    if kind.power == "norm" and np.isinf(plan.norm):
        np.abs(t, out=t)
    elif kind.power == "square" or plan.norm == 2:
        np.square(t, out=t)
    else:
        np.abs(t, out=t)
        if plan.norm != 1:
            np.power(t, plan.norm, out=t)
    if missing is not None:
        t[missing] = 0
    return t


def combiner(kind: Kind, plan: Any) -> np.ufunc:
    if kind.power == "norm" and np.isinf(plan.norm):
        return np.fmax if plan.ignore_nan else np.maximum
    if plan.ignore_nan and kind.nan_combine is not None:
        return kind.nan_combine
    return kind.combine


def identity_of(kind: Kind, plan: Any, dt: np.dtype) -> Any:
    if kind.nan_combine is not None and plan.ignore_nan and dt.kind == "f":
        return np.nan  # fmax(nan, x) == x, and an all-NaN window stays NaN
    if kind.power == "norm" and np.isinf(plan.norm):
        return 0
    return kind.identity(dt)




def check_input(dt: np.dtype) -> None:
    """TypeError unless arrays of ``dt`` can be pooled (bool, integer or floating)."""
    if dt.kind not in "biuf":
        raise TypeError(f"pooling needs a bool, integer or floating array, got dtype "
                        f"{dt}; convert it first (complex: take .real or abs())")


def check_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype, if it is a bool, integer or float one (else PoolError)."""
    try:
        out = np.dtype(dtype)
    except TypeError:
        out = None
    if out is None or out.kind not in "biuf":
        raise PoolError(f"dtype={dtype!r} is not a bool, integer or float dtype; use e.g. "
                        "uint8, float32")
    return out


def result_dtype(plan: Any, in_dtype: np.dtype, dtype: Any = None) -> np.dtype:
    """The dtype pool() returns for this plan and input dtype (``dtype`` overrides)."""
    if dtype is not None:
        return check_dtype(dtype)
    return KINDS[plan.kind].out_dtype(np.dtype(in_dtype))


def canonical_kind(kind: object) -> str:
    """The registry name of ``kind`` (aliases resolved, any case), or PoolError."""
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, got {kind!r}")
    name = ALIASES.get(kind.lower(), kind.lower())
    if name not in KINDS:
        raise PoolError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)} "
                        f"(or {', '.join(ALIASES)})")
    return name


# --- one tile of a separable kind: prepare, combine, finish ------------------------------


def pool_separable(kind: Kind, plan: Any, src: np.ndarray, dest: np.ndarray,
                   combine: Callable, count: Callable) -> None:
    """Pool ``src`` into ``dest``: prepare the cells, combine the windows, finish.

    ``combine(values, ufunc, identity, dtype, out=None)`` reduces every pooled axis (the
    engine knows the tile's geometry); ``count(include, override=True)`` gives the cells
    each window counts (a scalar where all windows count the same).
    """
    acc_dt = acc_dtype(kind, src.dtype, plan)
    natural = kind.out_dtype(src.dtype)
    if ((kind.combine is np.add or kind.power is not None) and dest.dtype.kind == "f"
            and acc_dt.kind == "f" and dest.dtype.itemsize > acc_dt.itemsize):
        # a wider float result is summed in (np.sum(x, dtype=) and torch's dtype= do so):
        # float32 cells summed into float64 are exact where float32 sums would round
        acc_dt = natural = dest.dtype
    missing = missing_cells(kind, plan, src)
    miss_count = None if missing is None else combine(missing, np.add, 0, np.dtype(np.int32))
    if kind.divides and kind.power is None and needs_wide_sums(src, plan):
        acc = exact_wide_sums(prepare(kind, src, plan, missing), combine)
        val = finish(kind, plan, acc, src.dtype, count, miss_count)
        store(dest, np.asarray(val).astype(natural, copy=False))
        return
    finishing = kind.power is not None or miss_count is not None
    direct = not finishing and acc_dt == natural == dest.dtype
    acc = combine(prepare(kind, src, plan, missing, acc_dt), combiner(kind, plan),
                  identity_of(kind, plan, acc_dt), acc_dt, out=dest if direct else None)
    if direct:
        if kind.divides:  # avg of floats: divide in place, in the output itself
            np.divide(dest, count(plan.count_include_pad), out=dest)
        return
    if (kind.divides and kind.power is None and dest.dtype.kind in "iu" and miss_count is None
            and src.dtype.kind in "biu" and plan.divisor_override is None
            and plan.window_size * _max_abs(src.dtype) < 2**23):
        # Integer in, integer out: float32 division then rint is exact below 2**23
        # (a tie a/b = m + 1/2 is exact, and other quotients are >= 1/(2b) from one).
        val = np.divide(acc, count(plan.count_include_pad), dtype=np.float32)
        np.rint(val, out=val)
        if dest.dtype != src.dtype:  # the mean stays within the input dtype's range
            info = np.iinfo(dest.dtype)
            np.clip(val, info.min, info.max, out=val)
        np.copyto(dest, val, casting="unsafe")
        return
    val = finish(kind, plan, acc, src.dtype, count, miss_count)
    store(dest, np.asarray(val).astype(natural, copy=False))


# 64-bit integers are summed by halves of 32 bits, each in int64: exact while a window
# holds fewer cells than this (window * 2**32 < 2**63).
WIDE_SUM_CELLS = 2**31


def needs_wide_sums(tile: np.ndarray, plan: Any) -> bool:
    """Whether a mean of ``tile``'s cells takes ``exact_wide_sums``: 64-bit integers
    whose window sums could pass 2**53. Below that, float64 sums every cell exactly (each
    partial sum is an integer it holds) and faster."""
    if not (tile.dtype.kind in "iu" and tile.dtype.itemsize == 8
            and plan.window_size < WIDE_SUM_CELLS and tile.size):
        return False
    top = max(abs(int(tile.min())), abs(int(tile.max())))
    return top * plan.window_size >= 2**53


def exact_wide_sums(values: np.ndarray, combine: Callable) -> np.ndarray:
    """Each window's sum of 64-bit integers, exact, then rounded once to float64.

    Summed in float64 cell by cell, values above 2**53 were rounded before they were
    added, and opposite signs could cancel to nothing (``2**62 + 1`` and ``-2**62``
    averaged to 0, not 0.5). Each cell is split into its high 32 bits (signed for int64)
    and its low 32 bits (unsigned); both halves are summed exactly in int64 and joined in
    float64: ``hi * 2**32`` is exact (the high sum is below 2**53 for windows of fewer
    than 2**21 cells), and the join rounds once.
    """
    hi = (values >> 32).astype(np.int64, copy=False)
    lo = (values & np.uint32(0xFFFFFFFF)).astype(np.int64, copy=False)
    s_hi = combine(hi, np.add, 0, np.dtype(np.int64))
    s_lo = combine(lo, np.add, 0, np.dtype(np.int64))
    out = np.multiply(s_hi, 2.0**32, dtype=np.float64)
    return np.add(out, s_lo, out=out)


def finish(kind: Kind, plan: Any, acc: np.ndarray, in_dtype: np.dtype, count: Callable,
           miss_count: np.ndarray | None = None) -> np.ndarray:
    """Combined values -> the kind's result: divide (avg, l2), root (l2, lp), and the
    skipped cells' rule: they leave the divisor, and a window of them only gives nodata
    (NaN for ignored NaN)."""
    val = acc
    if kind.divides:
        div = count(plan.count_include_pad)
        if miss_count is not None and plan.divisor_override is None:
            div = div - miss_count
        fdt = compute_float(in_dtype) if in_dtype.kind == "f" else np.dtype(np.float64)
        if acc.dtype.kind == "f":  # sums kept wider than the input (a wider dtype=)
            fdt = np.promote_types(fdt, acc.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN windows: 0/0
            val = np.divide(acc, div, dtype=fdt)
        if kind.power == "square":
            np.sqrt(val, out=val)
    elif kind.power == "norm":
        p = plan.norm
        if p == 2:
            val = np.sqrt(acc)
        elif p != 1 and not math.isinf(p):
            val = np.power(acc, 1.0 / p)
    if miss_count is not None:
        real = count(False, override=False)
        empty = np.nan if plan.nodata is None else plan.nodata
        val = np.where(real - miss_count == 0, np.array(empty).astype(val.dtype), val)
    return val


def _max_abs(dt: np.dtype) -> int:
    if dt.kind == "b":
        return 1
    info = np.iinfo(dt)
    return max(abs(int(info.min)), int(info.max))


def store(dest: np.ndarray, val: np.ndarray) -> None:
    """Write results into ``dest``; to an integer dtype, round half to even and clip."""
    if dest.dtype == val.dtype:
        np.copyto(dest, val)
    elif dest.dtype.kind in "iu" and val.dtype.kind == "f":
        info = np.iinfo(dest.dtype)
        v = np.rint(val)
        np.nan_to_num(v, copy=False, nan=0.0)
        np.clip(v, info.min, info.max, out=v)
        np.copyto(dest, v, casting="unsafe")
    elif dest.dtype.kind == "b":
        np.not_equal(val, 0, out=dest)
    else:
        np.copyto(dest, val, casting="unsafe")
