"""A brute-force pooling reference written straight from SPEC section 1: one loop per output cell.

Nothing here is vectorised or clever on purpose. Each output cell gathers its window's cells
one by one (each tagged "input", "pad" or "beyond"), and each kind reduces that list with plain
Python. Speed does not matter; being obviously right does.

Where the SPEC is silent this file follows the README's written choices: per-axis options follow
the order of ``axes`` as given; with ``ignore_nan`` NaN cells leave avg's divisor while padded
cells still count; the first NaN wins ``return_indices``; an integer ``dtype=`` rounds half to
even, clips and maps NaN to 0.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np

KINDS = ("max", "min", "sum", "avg", "l2", "lp", "median", "mode")
ALIASES = {"mean": "avg"}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _per_axis(name, value, naxes):
    if isinstance(value, (tuple, list)):
        if len(value) != naxes:
            raise ValueError(f"{name} {value!r} has {len(value)} entries for {naxes} axes")
        vals = list(value)
    else:
        vals = [value] * naxes
    for v in vals:
        if not _is_int(v):
            raise TypeError(f"{name} must be an int, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} {v} must be >= 1")
    return [int(v) for v in vals]


def _axes(ndim, axes, kernel, output_size):
    if axes is None:
        if output_size is not None and isinstance(output_size, (tuple, list)):
            count = len(output_size)
        elif isinstance(kernel, (tuple, list)):
            count = len(kernel)
        else:
            count = min(ndim, 2)
        if count > ndim:
            raise ValueError(f"{count} pooled axes for an array of ndim {ndim}")
        return list(range(ndim - count, ndim))
    if _is_int(axes):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axes {a} is out of range for ndim {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axes {tuple(axes)} repeats an axis")
    return out


def out_length(n, k, s, d, before, after, ceil_mode):
    """SPEC's output length for one axis with numeric padding (before, after)."""
    span = d * (k - 1) + 1
    total = n + before + after - span
    if total < 0:
        raise ValueError(f"kernel {k} (span {span}) is longer than the padded input {n}")
    if ceil_mode:
        out = -(-total // s) + 1
        # PyTorch: the last window may not start at or past n + before
        if (out - 1) * s >= n + before:
            out -= 1
    else:
        out = total // s + 1
    return out


def same_padding(n, k, s, d):
    """TensorFlow "same": (out, before, after)."""
    span = d * (k - 1) + 1
    out = -(-n // s)
    total = max((out - 1) * s + span - n, 0)
    return out, total // 2, total - total // 2


def axis_windows(n, k, s, d, pad, ceil_mode):
    """For one axis: a list per output position of (position, tag) with tag in/pad/beyond.

    ``pad`` is "same", "valid", an int or a (before, after) pair.
    """
    if pad == "same":
        out, before, after = same_padding(n, k, s, d)
    else:
        if pad == "valid":
            pad = 0
        before, after = (pad, pad) if _is_int(pad) else pad
        for p in (before, after):
            if not _is_int(p):
                raise TypeError(f"padding must be an int, got {p!r}")
            if p < 0:
                raise ValueError(f"padding {p} must be >= 0")
        out = out_length(n, k, s, d, before, after, ceil_mode)
    windows = []
    for i in range(out):
        cells = []
        for j in range(k):
            pos = i * s - before + j * d
            if 0 <= pos < n:
                tag = "in"
            elif -before <= pos < n + after:
                tag = "pad"
            else:
                tag = "beyond"
            cells.append((pos, tag))
        if not any(tag == "in" for _, tag in cells):
            raise ValueError(f"window {i} holds no input cell (padding {before}+{after})")
        windows.append(cells)
    return windows


def adaptive_windows(n, out):
    return [
        [(pos, "in") for pos in range((i * n) // out, -(-((i + 1) * n) // out))] for i in range(out)
    ]


def _natural_dtype(kind, dt):
    if kind in ("max", "min", "median", "mode"):
        return dt
    if kind == "sum":
        if dt == np.bool_ or np.issubdtype(dt, np.signedinteger):
            return np.dtype(np.int64)
        if np.issubdtype(dt, np.unsignedinteger):
            return np.dtype(np.uint64) if dt == np.uint64 else np.dtype(np.int64)
        return dt
    # avg, l2, lp
    if np.issubdtype(dt, np.floating):
        return dt
    return np.dtype(np.float64)


def _is_nan(v):
    return isinstance(v, float) and math.isnan(v)


def _reduce(kind, vals, n_counted, divisor_override, norm):
    """vals: list of (value, flat_index) for the window's input cells, NaN cells already
    removed when ignore_nan. Returns (value, index). Python floats/ints throughout."""
    if kind in ("max", "min"):
        nan_cells = [(v, i) for v, i in vals if _is_nan(v)]
        if nan_cells:
            return nan_cells[0]
        best = vals[0]
        for v, i in vals[1:]:
            if (v > best[0]) if kind == "max" else (v < best[0]):
                best = (v, i)
        return best
    if any(_is_nan(v) for v, _ in vals):
        return math.nan, -1
    if kind == "sum":
        return sum(v for v, _ in vals), -1
    if kind == "avg":
        div = divisor_override if divisor_override is not None else n_counted
        if all(isinstance(v, int) for v, _ in vals):
            # exact: fsum would round every 64-bit integer to a float first
            return float(Fraction(sum(v for v, _ in vals)) / Fraction(div)), -1
        return math.fsum(v for v, _ in vals) / div, -1
    if kind == "l2":
        return math.sqrt(math.fsum(float(v) ** 2 for v, _ in vals) / n_counted), -1
    if kind == "lp":
        if math.isinf(norm):
            return max(abs(float(v)) for v, _ in vals), -1
        return math.fsum(abs(float(v)) ** norm for v, _ in vals) ** (1.0 / norm), -1
    if kind == "median":
        ordered = sorted(v for v, _ in vals)
        return ordered[(len(ordered) - 1) // 2], -1
    if kind == "mode":
        counts = Counter(v for v, _ in vals)
        top = max(counts.values())
        return min(v for v, c in counts.items() if c == top), -1
    raise AssertionError(kind)


def _cast(values, dtype):
    """Cast a float64/int/object array to ``dtype`` the README's way for integer targets."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and values.dtype.kind == "f":
        info = np.iinfo(dtype)
        v = np.nan_to_num(np.rint(values), nan=0.0)
        return np.clip(v, info.min, info.max).astype(dtype)
    return values.astype(dtype)


def ref_pool(
    x,
    kind="max",
    kernel=2,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    count_include_pad=None,
    divisor_override=None,
    norm=2.0,
    axes=None,
    output_size=None,
    ignore_nan=False,
    return_indices=False,
    dtype=None,
):
    x = np.asarray(x)
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"dtype {x.dtype} cannot be pooled")
    if x.ndim == 0:
        raise ValueError("a 0-d array cannot be pooled")
    if 0 in x.shape:
        raise ValueError(f"shape {x.shape} has an empty axis")
    if not norm > 0:
        raise ValueError(f"norm {norm} must be > 0")
    if return_indices and kind not in ("max", "min"):
        raise ValueError(f"return_indices is for max/min, not {kind}")

    pooled = _axes(x.ndim, axes, kernel, output_size)
    naxes = len(pooled)
    sizes = [x.shape[a] for a in pooled]

    # One list of windows per pooled axis (in the order of ``axes`` as given).
    per_axis = []
    if output_size is not None:
        outs = _per_axis("output_size", output_size, naxes)
        per_axis = [adaptive_windows(n, o) for n, o in zip(sizes, outs, strict=True)]
        include_pad = True  # no padding exists
    else:
        ks = _per_axis("kernel", kernel, naxes)
        ss = ks if stride is None else _per_axis("stride", stride, naxes)
        ds = _per_axis("dilation", dilation, naxes)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding {padding!r} is not 'same' or 'valid'")
            pads = [padding] * naxes
        elif isinstance(padding, (tuple, list)):
            if len(padding) != naxes:
                raise ValueError(f"padding {padding!r} has {len(padding)} entries")
            pads = [tuple(p) if isinstance(p, (tuple, list)) else p for p in padding]
        else:
            pads = [padding] * naxes
        for k, s, d, p, n in zip(ks, ss, ds, pads, sizes, strict=True):
            per_axis.append(axis_windows(n, k, s, d, p, ceil_mode))
        # default: True for numeric padding (PyTorch), False for "same" (TensorFlow)
        same = isinstance(padding, str) and padding == "same"
        include_pad = not same if count_include_pad is None else bool(count_include_pad)

    batch_axes = [a for a in range(x.ndim) if a not in pooled]
    out_shape = list(x.shape)
    for a, wins in zip(pooled, per_axis, strict=True):
        out_shape[a] = len(wins)

    is_float = x.dtype.kind == "f"
    natural = _natural_dtype(kind, x.dtype)
    results = np.empty(out_shape, dtype=object)
    indices = np.zeros(out_shape, dtype=np.int64)
    # Row-major flat index within the pooled axes: the pooled axes in array order.
    order = sorted(range(naxes), key=lambda j: pooled[j])
    sub_shape = [sizes[j] for j in order]

    for bidx in itertools.product(*(range(x.shape[a]) for a in batch_axes)):
        for oidx in itertools.product(*(range(len(w)) for w in per_axis)):
            # Window cells enumerated in row-major order of the array's axes.
            axis_cells = [per_axis[j][oidx[j]] for j in order]
            cells = []  # (value, flat index) of every input cell of the window
            n_pad = 0
            for combo in itertools.product(*axis_cells):
                tags = [t for _, t in combo]
                if "beyond" in tags:
                    continue  # past the padded input (ceil mode): never counts
                if "pad" in tags:
                    n_pad += 1
                    continue
                full = [0] * x.ndim
                for a, b in zip(batch_axes, bidx, strict=True):
                    full[a] = b
                for j, (pos, _) in zip(order, combo, strict=True):
                    full[pooled[j]] = pos
                flat = 0
                for (pos, _), size in zip(combo, sub_shape, strict=True):
                    flat = flat * size + pos
                cells.append((x[tuple(full)].item(), flat))
            assert cells, "axis_windows guarantees an input cell per window"
            vals = [c for c in cells if not (ignore_nan and _is_nan(c[0]))]
            if not vals:  # ignore_nan and every input cell is NaN
                value, index = math.nan, cells[0][1]
            else:
                n_counted = len(vals) + (n_pad if include_pad else 0)
                value, index = _reduce(kind, vals, n_counted, divisor_override, norm)
            dest = [0] * x.ndim
            for a, b in zip(batch_axes, bidx, strict=True):
                dest[a] = b
            for j in range(naxes):
                dest[pooled[j]] = oidx[j]
            results[tuple(dest)] = value
            indices[tuple(dest)] = index

    if kind in ("max", "min", "median", "mode"):
        out = results.astype(x.dtype)
        exact = out
    elif kind == "sum" and not is_float:
        # integer sums wrap as NumPy's do: reduce modulo 2**64 into the natural dtype
        wrapped = np.array([int(v) % 2**64 for v in results.ravel()], dtype=np.uint64)
        out = (wrapped.view(np.int64) if natural == np.int64 else wrapped).reshape(out_shape)
        exact = out
    else:
        exact = results.astype(np.float64)
        out = exact.astype(natural)
    if dtype is not None:
        out = _cast(exact, dtype)
    if return_indices:
        return out, indices
    return out
