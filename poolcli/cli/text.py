"""Text for `poolcli plan`, `info` and `bench`, and the one way shapes are written."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..core.engine import execute
from ..core.kinds import result_dtype
from ..io.headers import InputInfo
from ..pipeline import Pipeline, Stage
from .messages import flag_words


def dims(shape: tuple[int, ...] | None) -> str:
    """``(224, 224, 3)`` -> ``224x224x3`` (None -> empty)."""
    return "" if shape is None else "x".join(map(str, shape))


def info_line(info: InputInfo) -> str:
    """One input as `poolcli info` prints it."""
    what = (f"mode {info.mode}, {info.shape[1]}x{info.shape[0]} pixels, " if info.image
            else "")
    return (f"{info.name}: {info.format}, {what}shape {dims(info.shape)}, {info.dtype}, "
            f"{info.size:,} bytes{info.members}")


def plan_text(pipe: Pipeline, shape: tuple[int, ...], axes: Any, source: str) -> str:
    """The per-stage, per-axis arithmetic and the notes, as `poolcli plan` prints them."""
    lines = [f"input {source}: shape {dims(shape)}"]
    dt = np.dtype("float64")
    for i, p in enumerate(pipe.plans(shape, axes=axes), 1):
        dt = result_dtype(p, dt)
        lines.append(f"stage {i} {pipe.stages[i - 1]}: {dims(p.in_shape)} -> "
                     f"{dims(p.out_shape)} (pooled axes {', '.join(map(str, p.axes))})")
        lines.extend("  " + ap.describe() for ap in p.axis_plans)
        lines.extend("  note: " + flag_words(n) for n in p.notes())
    lines.append(f"output shape {dims(pipe.output_shape(shape, axes=axes))}")
    return "\n".join(lines)


def pyramid_text(shape: tuple[int, ...], levels: int | None, factor: Any, axes: Any,
                 min_size: int, source: str) -> str:
    """A pyramid's levels, shapes and scales, as `poolcli plan pyramid` prints them."""
    from ..pyramid import level_shapes, resolve

    pooled, facs = resolve(shape, factor, axes)
    lines = [f"pyramid of {source}: pooled axes {', '.join(map(str, pooled))}, "
             f"factor {dims(facs)}, ceil mode (edge cells are kept)"]
    for i, s in enumerate(level_shapes(shape, levels, factor, axes, min_size)):
        scale = dims(tuple(f**i for f in facs))
        lines.append(f"level {i}: {dims(s)} ({math.prod(s):,} cells, scale {scale})")
    return "\n".join(lines)


def bench_text(stage: Stage, shape: tuple[int, ...], dtype: str, repeat: int,
               threads: int | None) -> str:
    """Median time of pooling synthetic data, and its ratio to copying the same input."""
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    x = (rng.standard_normal(shape) * 100).astype(dt) if dt.kind != "b" else \
        rng.random(shape) > 0.5
    plan = stage.plan(x.shape)
    dst = np.empty_like(x)

    def median(fn) -> float:
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    floor = median(lambda: np.copyto(dst, x))
    t = median(lambda: execute(plan, x, threads=threads))
    mb = x.nbytes / 1e6
    return (f"{stage} on {dims(shape)} {dt} ({mb:.0f} MB), threads={threads or 'all'}, "
            f"median of {repeat}:\n"
            f"  pool  {t * 1e3:9.2f} ms  {mb / t / 1e3:6.2f} GB/s\n"
            f"  copy  {floor * 1e3:9.2f} ms  (the floor)\n"
            f"  ratio {t / floor:9.2f} x copy")
