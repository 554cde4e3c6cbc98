"""pool(): plan the operation once, then hand it to the engine that fits the input.

The engine seam: an engine is a module-level object with ``prepare(x)`` (the input as
the engine holds it, checked), ``execute(plan, x, dtype=, threads=)`` and, for chains of
pools that shrink the data (a pyramid's levels), ``regroup(x, axes)``. NumPy arrays
(and anything ``np.asarray`` takes) run in memory in ``core.engine``; a new kind of
input (a dask array, say) is a new module and one entry in ``ENGINES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core.kinds import check_input
from .core.plan import make_plan


@dataclass(frozen=True)
class Engine:
    """How one family of inputs is pooled: checked by ``prepare``, run by ``execute``."""

    name: str
    prepare: Callable[[Any], Any]
    execute: Callable[..., Any]
    # x as the next pool of a shrinking chain should take it: the dask engine joins
    # chunks that pooling made small, so a pyramid's deep levels are not thousands of
    # tiny tasks; in memory there is nothing to do
    regroup: Callable[[Any, tuple[int, ...]], Any] = lambda x, axes: x


def _numpy_prepare(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    check_input(arr.dtype)
    return arr


def _numpy_execute(plan, x, *, dtype=None, threads=None):
    from .core.engine import execute

    return execute(plan, x, dtype=dtype, threads=threads)


NUMPY = Engine("numpy", _numpy_prepare, _numpy_execute)

# (test on the input's type, module that provides an ``ENGINE``): the first match runs
# the input; anything else is NumPy's. The test looks at the type's module so that an
# engine's library is imported only when one of its arrays is given.
ENGINES: tuple[tuple[Callable[[type], bool], str], ...] = (
    (lambda t: t.__module__.startswith("dask.array") and t.__name__ == "Array",
     ".dask_engine"),
)


def engine_for(x: Any) -> Engine:
    """The engine that pools ``x``."""
    for accepts, module in ENGINES:
        if accepts(type(x)):
            return importlib.import_module(module, __package__).ENGINE
    return NUMPY


def pool(x: Any, kind: str = "max", kernel: int | tuple[int, ...] = 2,
         stride: int | tuple[int, ...] | None = None, padding: Any = 0,
         dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
         count_include_pad: bool | None = None, divisor_override: float | None = None,
         norm: float = 2.0, axes: int | tuple[int, ...] | None = None,
         output_size: int | tuple[int | None, ...] | None = None, ignore_nan: bool = False,
         return_indices: bool = False, dtype: Any = None,
         threads: int | None = None, nodata: float | None = None,
         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pool ``x`` over some of its axes with windows of ``kernel`` cells.

    Parameters
    ----------
    x : array_like of bool, integer or floating dtype, ndim >= 1.
    kind : "max", "min", "avg" (or "mean"), "sum", "l2", "lp", "median" or "mode".
    kernel, stride, dilation : int or one int per pooled axis; ``stride=None`` is the kernel.
    padding : int, one int per axis, (before, after) pairs, "valid" or "same".
    ceil_mode : use ceil instead of floor for the output length (PyTorch's rule).
    count_include_pad : whether padded zeros count in avg/l2's divisor (default True,
        False for "same").
    divisor_override : the divisor for avg instead of the cell count.
    norm : p for kind "lp".
    axes : the pooled axes (default: the last ``len(kernel)``, or the last two).
    output_size : adaptive pooling to this many windows per axis (1 = global pooling).
    ignore_nan : skip NaN cells instead of propagating them.
    return_indices : for max/min, also return the flat index of each chosen cell.
    dtype : the output dtype (floats are rounded half to even and clipped for integers).
    threads : worker threads (None = all cores); the result does not depend on it.
    nodata : cells equal to it are skipped like NaN with ``ignore_nan`` (they leave avg's
        divisor, never win max/min/median/mode); a window of nodata cells only gives nodata.

    Returns
    -------
    ndarray, or (ndarray, int64 ndarray) with ``return_indices``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1, 17).reshape(4, 4)
    >>> pool(x, "max", 2)
    array([[ 6,  8],
           [14, 16]])
    >>> pool(x, "avg", 2)
    array([[ 3.5,  5.5],
           [11.5, 13.5]])
    >>> pool(x, "max", 3, stride=2, padding=1, return_indices=True)[1]
    array([[ 5,  7],
           [13, 15]])
    >>> pool(np.zeros((1, 1, 5, 5)), "max", 2, ceil_mode=True).shape
    (1, 1, 3, 3)
    """
    engine = engine_for(x)
    arr = engine.prepare(x)
    plan = make_plan(arr.shape, kind, kernel, stride, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, norm, axes, output_size,
                     ignore_nan, return_indices, nodata)
    return engine.execute(plan, arr, dtype=dtype, threads=threads)


