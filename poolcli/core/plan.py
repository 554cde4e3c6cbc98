"""Options -> a validated, immutable pooling plan: per-axis windows and the output shape.

Every check of a user's arguments and every piece of shape arithmetic lives here; the
kernels, the CLI's `plan` command, the report and the Pipeline all read the same plan.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..errors import PoolError
from .kinds import KINDS, canonical_kind


@dataclass(frozen=True)
class AxisPlan:
    """How one pooled axis is cut into windows.

    Window ``i`` reads input positions ``i*stride - before + j*dilation`` for ``j < kernel``;
    positions outside ``[0, n)`` are padding. An adaptive axis (``output_size``) instead
    has window ``i`` covering ``[floor(i*n/out), ceil((i+1)*n/out))`` and ``kernel`` is the
    longest such window.
    """

    axis: int
    n: int
    kernel: int
    stride: int
    dilation: int
    before: int
    after: int
    out: int
    adaptive: bool = False
    ceil_mode: bool = False

    @property
    def span(self) -> int:
        """Input cells from a window's first cell to its last: ``dilation*(kernel-1)+1``."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def regular(self) -> bool:
        """True when every window is a strided slice of the input (not adaptive)."""
        return not self.adaptive

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Adaptive windows: (starts, ends), each of length ``out``."""
        i = np.arange(self.out, dtype=np.int64)
        return (i * self.n) // self.out, -((-(i + 1) * self.n) // self.out)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(index, valid), each (out, kernel): the input position of every window cell."""
        if self.adaptive:
            starts, ends = self.bounds()
            idx = starts[:, None] + np.arange(self.kernel)[None, :]
            return idx, idx < ends[:, None]
        idx = (np.arange(self.out)[:, None] * self.stride - self.before
               + np.arange(self.kernel)[None, :] * self.dilation)
        return idx, (idx >= 0) & (idx < self.n)

    def counts(self, include_pad: bool) -> np.ndarray:
        """Cells per window that count in an average (int64, length ``out``)."""
        if self.adaptive:
            starts, ends = self.bounds()
            return ends - starts
        idx, valid = self.positions()
        if include_pad:
            # Padded cells count, but never cells beyond the padded input (ceil mode).
            valid = (idx >= -self.before) & (idx < self.n + self.after)
        return valid.sum(axis=1)

    def covered(self) -> np.ndarray:
        """Boolean mask over the input: cells that some window reads."""
        idx, valid = self.positions()
        mask = np.zeros(self.n, dtype=bool)
        mask[idx[valid]] = True
        return mask

    def input_range(self, o0: int, o1: int) -> tuple[int, int]:
        """The input cells ``[r0, r1)`` that windows o0..o1 read."""
        if self.adaptive:
            starts, ends = self.bounds()
            return int(starts[o0]), int(ends[o1 - 1])
        r0 = max(0, o0 * self.stride - self.before)
        r1 = min(self.n, (o1 - 1) * self.stride - self.before + self.span)
        return r0, r1

    def part(self, o0: int, o1: int) -> tuple[AxisPlan, int, int]:
        """Windows o0..o1 as an axis of their own: (plan, r0, r1).

        The plan pools input cells ``[r0, r1)`` into exactly those windows, cell for cell
        and count for count (padding the part does not reach is not padding of the part),
        so a chunk pooled with it gives the whole-array result for its windows.
        """
        r0, r1 = self.input_range(o0, o1)
        if self.adaptive:
            if (o0, o1) != (0, self.out):
                raise ValueError("adaptive windows are not cut into parts")
            return self, r0, r1
        before = r0 - (o0 * self.stride - self.before)
        after = self.after if r1 == self.n else 0
        return replace(self, n=r1 - r0, before=before, after=after, out=o1 - o0), r0, r1

    def uncovered(self) -> tuple[int, int] | None:
        """(cells after the last one any window reads, other cells no window reads).

        Computed from the arithmetic, in constant time, for undilated windows; dilated
        ones are counted from the window positions when there are at most 2**22 window
        cells, else None (unknown).
        """
        t_last = (self.out - 1) * self.stride - self.before
        if self.dilation == 1:
            last = min(t_last + self.kernel - 1, self.n - 1)
            if self.stride <= self.kernel:
                return self.n - 1 - last, 0  # windows overlap or touch: no gaps
            # Windows are disjoint; only the first is cut by the padding before (it
            # holds an input cell, so before < kernel) and only the last by the end.
            covered = (self.out * self.kernel - self.before
                       - max(0, t_last + self.kernel - self.n))
            return self.n - 1 - last, self.n - covered - (self.n - 1 - last)
        if self.out * self.kernel > 1 << 22:
            return None
        covered = self.covered()
        last = int(np.flatnonzero(covered)[-1])
        return self.n - 1 - last, int((~covered).sum()) - (self.n - 1 - last)

    def describe(self) -> str:
        """One line of arithmetic, as `poolcli plan` prints it."""
        if self.adaptive:
            return (f"axis {self.axis}: n={self.n} adaptive -> {self.out} "
                    f"(windows up to {self.kernel})")
        return (f"axis {self.axis}: n={self.n} kernel={self.kernel} stride={self.stride} "
                f"dilation={self.dilation} padding={self.before}+{self.after} -> {self.out}")


@dataclass(frozen=True)
class PoolPlan:
    """A validated pooling operation on arrays of one shape; equal options give equal plans."""

    kind: str
    in_shape: tuple[int, ...]
    axes: tuple[int, ...]
    axis_plans: tuple[AxisPlan, ...]
    out_shape: tuple[int, ...]
    count_include_pad: bool = True
    divisor_override: float | None = None
    norm: float = 2.0
    ignore_nan: bool = False
    return_indices: bool = False
    nodata: float | int | None = None  # cells equal to it are skipped (never NaN: see make_plan)

    @property
    def window_size(self) -> int:
        """Cells in the largest window (the product of the per-axis kernels)."""
        return math.prod(ap.kernel for ap in self.axis_plans)

    def part(self, windows: tuple[tuple[int, int], ...], shape: tuple[int, ...],
             ) -> tuple[PoolPlan, tuple[slice, ...]]:
        """Windows ``(o0, o1)`` per pooled axis of an array of ``shape`` (batch axes as
        they are): the plan that pools just those from the input cells ``key`` selects.

        Returns ``(plan, key)``; ``x[key]`` pooled with ``plan`` equals the whole result
        restricted to those windows. Chunked engines cut their work with this.
        """
        key = [slice(None)] * len(shape)
        parts, in_shape, out_shape = [], list(shape), list(shape)
        for ap, (o0, o1) in zip(self.axis_plans, windows, strict=True):
            sub, r0, r1 = ap.part(o0, o1)
            parts.append(sub)
            key[ap.axis] = slice(r0, r1)
            in_shape[ap.axis], out_shape[ap.axis] = r1 - r0, o1 - o0
        return (replace(self, in_shape=tuple(in_shape), axis_plans=tuple(parts),
                        out_shape=tuple(out_shape)), tuple(key))

    def notes(self) -> list[str]:
        """What users otherwise discover late: input cells no window reads, dropped windows."""
        m = len(self.axis_plans)
        names = ("row", "column") if m == 2 else ("cell",) * m
        out = []
        for name, ap in zip(names, self.axis_plans, strict=True):
            if ap.adaptive:
                continue
            uncovered = ap.uncovered()
            if uncovered is None:
                continue  # too many windows to count their gaps: nothing is claimed
            tail, gaps = uncovered
            if tail:
                noun, verb = (name, "is") if tail == 1 else (name + "s", "are")
                msg = f"axis {ap.axis}: the last {tail} {noun} {verb} never pooled"
                if not ap.ceil_mode and _length(ap.n, ap.kernel, ap.stride, ap.dilation,
                                                ap.before, ap.after, True) > ap.out:
                    msg += "; ceil_mode=True keeps " + ("it" if tail == 1 else "them")
                out.append(msg)
            if gaps:
                out.append(f"axis {ap.axis}: {gaps} {name}s inside the input are never pooled "
                           f"(stride {ap.stride} > window span {ap.span})")
            if ap.ceil_mode:
                raw = -(-(ap.n + ap.before + ap.after - ap.span) // ap.stride) + 1
                if raw > ap.out:
                    out.append(f"axis {ap.axis}: ceil mode drops the last window because it "
                               "would start in the padding (the PyTorch/ONNX rule)")
        return out


def _length(n: int, k: int, s: int, d: int, before: int, after: int, ceil_mode: bool) -> int:
    span = d * (k - 1) + 1
    room = n + before + after - span
    out = (-(-room // s) if ceil_mode else room // s) + 1
    if ceil_mode and (out - 1) * s >= n + before:
        out -= 1  # PyTorch: the last window may not start in the right padding
    return out


def _first_empty_window(n: int, k: int, s: int, d: int, b: int, out: int) -> int | None:
    """The first window (of ``out``) that reads no input cell, or None; O(log) time.

    Window i starts at t = i*s - b and reads t + j*d for j < k. One starting inside the
    input reads its first cell; one starting past the end reads none (only the last can,
    as starts grow). One starting in the padding before first reaches the input at
    j0 = ceil(-t/d), the cell t mod d: it is empty when j0 >= k (worst for window 0) or
    when t mod d >= n, which is only possible for n < d and is counted for all such
    windows at once with a floor sum.
    """
    left = min(out, -(-b // s))  # windows that start in the padding before
    if left and -(-b // d) >= k:
        return 0
    if left and n < d:
        def empty_among(m: int) -> int:  # windows among the first m whose cell t mod d >= n
            shift = ((b + n) // d + 1) * d  # keeps every numerator >= 0
            # (x mod d) >= n  <=>  floor(x/d) == floor((x-n)/d), for 0 < n < d
            return m - (_floor_sum(m, d, s, shift - b) - _floor_sum(m, d, s, shift - b - n))
        if empty_among(left):
            lo, hi = 1, left  # the smallest m with an empty window among the first m
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if empty_among(mid) else (mid + 1, hi)
            return lo - 1
    if (out - 1) * s - b >= n:
        return -(-(n + b) // s)  # the first window that starts past the input's end
    return None


def _floor_sum(m: int, d: int, a: int, c: int) -> int:
    """sum(floor((a*i + c) / d) for i in range(m)) for a, c >= 0, in O(log) steps."""
    total = 0
    while True:
        if a >= d:
            total += m * (m - 1) // 2 * (a // d)
            a %= d
        if c >= d:
            total += m * (c // d)
            c %= d
        y = a * m + c
        if y < d:
            return total
        m, c = y // d, y % d
        d, a = a, d


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


# The largest kernel, stride, dilation, padding or output size accepted: far beyond any
# array, and small enough that no arithmetic on it overflows 64 bits.
MAX_INT = 1 << 48


def _bounded(name: str, v: int) -> int:
    if abs(v) > MAX_INT:
        raise PoolError(f"{name} {v} is too large; use at most {MAX_INT:,} (2**48)")
    return int(v)


def _per_axis(name: str, value: object, m: int, axes: tuple[int, ...]) -> tuple[int, ...]:
    if _is_int(value):
        return (_bounded(name, value),) * m
    if isinstance(value, (tuple, list)):
        if not all(_is_int(v) for v in value):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
        for v in value:
            _bounded(name, v)
        if len(value) != m:
            raise PoolError(f"{name} {tuple(value)} has {len(value)} values but {m} axes "
                            f"{axes} are pooled; give one value per axis or a single int")
        return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")


def _hashable(v: object) -> object:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(e) for e in v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def make_plan(shape: tuple[int, ...], kind: str = "max", kernel: object = 2,
              stride: object = None, padding: object = 0, dilation: object = 1,
              ceil_mode: bool = False, count_include_pad: bool | None = None,
              divisor_override: float | None = None, norm: float = 2.0,
              axes: object = None, output_size: object = None, ignore_nan: bool = False,
              return_indices: bool = False, nodata: object = None) -> PoolPlan:
    """Validate pooling options for an array of ``shape`` and return the plan (cached).

    ``nodata``: cells equal to it are skipped like NaN with ``ignore_nan`` (they leave the
    divisor and never win); a window of nodata cells only gives nodata. NaN as nodata is
    ``ignore_nan=True``.
    """
    if nodata is not None:
        if isinstance(nodata, (bool, np.bool_)) or not isinstance(nodata, numbers.Real):
            raise TypeError(f"nodata must be a number, got {nodata!r}")
        if math.isnan(nodata):
            nodata, ignore_nan = None, True
        elif return_indices:
            raise PoolError("return_indices cannot be combined with nodata: a window of "
                            "nodata cells has no cell to point to; drop one of them")
        else:
            nodata = int(nodata) if float(nodata).is_integer() and not math.isinf(
                nodata) else float(nodata)
    args = [_hashable(v) for v in (shape, kind, kernel, stride, padding, dilation, ceil_mode,
                                   count_include_pad, divisor_override, norm, axes,
                                   output_size, ignore_nan, return_indices, nodata)]
    try:
        hash(tuple(args))
    except TypeError:
        raise TypeError("pooling options must be ints, strings, floats or tuples of them") from None
    return _make_plan(*args)


@lru_cache(maxsize=512)
def _make_plan(shape, kind, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
               divisor_override, norm, axes, output_size, ignore_nan, return_indices,
               nodata) -> PoolPlan:
    name = canonical_kind(kind)
    spec = KINDS[name]
    ndim = len(shape)
    if ndim == 0:
        raise PoolError("cannot pool a 0-d array (a scalar); give an array with at least 1 axis")

    for a, n in enumerate(shape):
        if not _is_int(n) or n < 0:
            raise PoolError(f"shape {shape}: axis {a} has length {n!r}; lengths are ints >= 0")
    for name_, v in (("kernel", kernel), ("output_size", output_size)):
        if isinstance(v, tuple) and not v:
            raise PoolError(f"{name_} () is empty; give an int or one value per pooled axis")
    if isinstance(output_size, tuple):
        for v in output_size:
            if _is_int(v):
                _bounded("output_size", v)
    elif _is_int(output_size):
        _bounded("output_size", output_size)

    # Which axes are pooled.
    if axes is None:
        if isinstance(kernel, tuple) and output_size is None:
            m = len(kernel)
        elif isinstance(output_size, tuple):
            m = len(output_size)
        else:
            m = min(ndim, 2)
        if m > ndim:
            name, value = (("output_size", output_size) if output_size is not None
                           else ("kernel", kernel))
            raise PoolError(f"{name} {value} pools {m} axes but the array has only {ndim} "
                            f"(shape {shape}); give at most {ndim} values")
        axes = tuple(range(ndim - m, ndim))
    else:
        raw = (axes,) if _is_int(axes) else axes
        if not isinstance(raw, tuple) or not all(_is_int(a) for a in raw):
            raise TypeError(f"axes must be an int or a tuple of ints, got {axes!r}")
        if not raw:
            raise PoolError("axes is empty; name at least one axis to pool")
        for a in raw:
            if not -ndim <= a < ndim:
                raise PoolError(f"axes {raw}: axis {a} is out of range for an array with "
                                f"{ndim} axes (shape {shape}); use -{ndim}..{ndim - 1}")
        norm_axes = tuple(a % ndim for a in raw)
        if len(set(norm_axes)) != len(norm_axes):
            raise PoolError(f"axes {raw} names an axis twice; give each axis once")
        axes = tuple(sorted(norm_axes))
        if norm_axes != axes:
            # Per-axis options follow the order the user gave; re-order them with the axes.
            order = sorted(range(len(norm_axes)), key=norm_axes.__getitem__)
            kernel, stride, dilation, output_size = (
                tuple(v[i] for i in order) if isinstance(v, tuple) and len(v) == len(order)
                else v for v in (kernel, stride, dilation, output_size))
            if isinstance(padding, tuple) and len(padding) == len(order):
                padding = tuple(padding[i] for i in order)
    m = len(axes)
    for a in axes:
        if shape[a] == 0:
            raise PoolError(f"axis {a} is empty (shape {shape}); there is nothing to pool")
    for a, n in enumerate(shape):
        if n == 0:
            raise PoolError(f"axis {a} is empty (shape {shape}); there is nothing to pool")

    if not (isinstance(norm, numbers.Real) and not isinstance(norm, bool)):
        raise TypeError(f"norm must be a number, got {norm!r}")
    if not norm > 0:  # NaN fails this too; inf is the max of |x|
        raise PoolError(f"norm {norm} must be > 0 (2 is the L2 norm, inf the max of |x|)")
    if return_indices and not spec.supports_indices:
        allowed = ", ".join(k for k, s in KINDS.items() if s.supports_indices)
        raise PoolError(f"return_indices is not available for kind {name!r}; only for {allowed}")
    if divisor_override is not None:
        if name != "avg":
            raise PoolError(f"divisor_override applies to avg only, not to kind {name!r}")
        if not isinstance(divisor_override, numbers.Real) or isinstance(divisor_override, bool):
            raise TypeError(f"divisor_override must be a number, got {divisor_override!r}")
        if not divisor_override > 0 or not math.isfinite(divisor_override):
            raise PoolError(f"divisor_override {divisor_override} must be a finite number > 0")

    if output_size is not None:
        plans = _adaptive_axes(shape, axes, output_size)
        include = True
    else:
        plans, include = _window_axes(shape, axes, m, kernel, stride, padding, dilation,
                                      bool(ceil_mode), count_include_pad)
    out_shape = list(shape)
    for ap in plans:
        out_shape[ap.axis] = ap.out
    return PoolPlan(kind=name, in_shape=tuple(shape), axes=axes, axis_plans=tuple(plans),
                    out_shape=tuple(out_shape), count_include_pad=include,
                    divisor_override=None if divisor_override is None else divisor_override,
                    norm=float(norm), ignore_nan=bool(ignore_nan),
                    return_indices=bool(return_indices), nodata=nodata)


def _adaptive_axes(shape, axes, output_size) -> list[AxisPlan]:
    m = len(axes)
    if _is_int(output_size):
        sizes = (output_size,) * m
    elif isinstance(output_size, tuple) and all(v is None or _is_int(v) for v in output_size):
        if len(output_size) != m:
            raise PoolError(f"output_size {output_size} has {len(output_size)} values but "
                            f"{m} axes {axes} are pooled")
        sizes = output_size
    else:
        raise TypeError(f"output_size must be an int or a tuple of ints, got {output_size!r}")
    plans = []
    for a, size in zip(axes, sizes, strict=True):
        n = shape[a]
        out = n if size is None else size
        if out < 1:
            raise PoolError(f"output_size {out} on axis {a} must be >= 1")
        if n % out == 0:
            # Equal windows: the fast strided path gives the same cells.
            k = n // out
            plans.append(AxisPlan(a, n, k, k, 1, 0, 0, out))
        else:
            # Window i is q + ceil((u + r) / out) long with u = i*r mod out, which takes
            # every multiple of g = gcd(r, out): so q + 2 cells exactly when r > g.
            q, r = divmod(n, out)
            longest = q + 2 if r > math.gcd(r, out) else q + 1
            plans.append(AxisPlan(a, n, longest, 0, 1, 0, 0, out, adaptive=True))
    return plans


def _window_axes(shape, axes, m, kernel, stride, padding, dilation, ceil_mode,
                 count_include_pad) -> tuple[list[AxisPlan], bool]:
    ks = _per_axis("kernel", kernel, m, axes)
    ss = ks if stride is None else _per_axis("stride", stride, m, axes)
    ds = _per_axis("dilation", dilation, m, axes)
    for name, vals in (("kernel", ks), ("stride", ss), ("dilation", ds)):
        for a, v in zip(axes, vals, strict=True):
            if v < 1:
                raise PoolError(f"{name} {v} on axis {a} must be >= 1")
    same = False
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            pads = ((0, 0),) * m
        elif mode == "same":
            same = True
            pads = []
            for a, k, s, d in zip(axes, ks, ss, ds, strict=True):
                n, span = shape[a], d * (k - 1) + 1
                out = -(-n // s)
                total = max((out - 1) * s + span - n, 0)
                pads.append((total // 2, total - total // 2))
            pads = tuple(pads)
        else:
            raise PoolError(f"padding {padding!r} is not understood; use an int, a tuple, "
                            "(before, after) pairs, 'valid' or 'same'")
    elif _is_int(padding):
        pads = ((int(padding), int(padding)),) * m
    elif isinstance(padding, tuple):
        if len(padding) != m:
            raise PoolError(f"padding {padding} has {len(padding)} values but {m} axes "
                            f"{axes} are pooled; give one value or (before, after) pair per axis")
        pads = []
        for p in padding:
            if _is_int(p):
                pads.append((int(p), int(p)))
            elif isinstance(p, tuple) and len(p) == 2 and all(_is_int(v) for v in p):
                pads.append((int(p[0]), int(p[1])))
            else:
                raise TypeError(f"padding entry {p!r} must be an int or a (before, after) pair")
        pads = tuple(pads)
    else:
        raise TypeError(f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    for a, (b, e) in zip(axes, pads, strict=True):
        _bounded("padding", b)
        _bounded("padding", e)
        if b < 0 or e < 0:
            raise PoolError(f"padding ({b}, {e}) on axis {a} is negative; use padding >= 0")

    plans = []
    for a, k, s, d, (b, e) in zip(axes, ks, ss, ds, pads, strict=True):
        n, span = shape[a], d * (k - 1) + 1
        if span > n + b + e:
            what = f"kernel {k}" if d == 1 else f"window span {span} (kernel {k}, dilation {d})"
            raise PoolError(f"{what} on axis {a} is longer than the padded input "
                            f"({n} + {b} + {e}); use a kernel <= {n + b + e} or pad more")
        out = -(-n // s) if same else _length(n, k, s, d, b, e, ceil_mode)
        ap = AxisPlan(a, n, k, s, d, b, e, out, ceil_mode=ceil_mode and not same)
        empty = _first_empty_window(n, k, s, d, b, out)
        if empty is not None:
            raise PoolError(f"padding ({b}, {e}) on axis {a} leaves window {empty} "
                            f"with no input cell (n={n}, kernel {k}, stride {s}, dilation {d}); "
                            f"use padding <= {span - 1} or a larger kernel")
        plans.append(ap)
    include = (not same) if count_include_pad is None else bool(count_include_pad)
    return plans, include
