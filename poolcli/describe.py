"""Text for `poolcli plan`, `info` and `bench`: headers read without decoding, plans shown."""

from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .io.arrays import ArrayReadError, npy_header, read_arrays
from .io.sniff import sniff_format
from .pipeline import Pipeline, Stage
from .pool import execute, result_dtype

_BANDS = {"1": 1, "L": 1, "P": 3, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1}


@dataclass
class InputInfo:
    """What an input holds, from its header."""

    name: str
    format: str
    shape: tuple[int, ...]
    dtype: str
    size: int
    mode: str | None = None
    members: str = ""

    @property
    def image(self) -> bool:
        return self.mode is not None

    def line(self) -> str:
        dims = "x".join(map(str, self.shape))
        what = f"mode {self.mode}, {self.shape[1]}x{self.shape[0]} pixels, " if self.image \
            else ""
        return (f"{self.name}: {self.format}, {what}shape {dims}, {self.dtype}, "
                f"{self.size:,} bytes{self.members}")


def describe_input(name: str) -> InputInfo:
    """Read only what is needed to know an input's shape (ValueError if it can't be read)."""
    data = b""
    if name == "-":
        data = sys.stdin.buffer.read()
        size, handle, head = len(data), io.BytesIO(data), data[:16]
    else:
        if os.path.isdir(name):
            raise ValueError("is a folder; name its files")
        size = os.path.getsize(name)
        with open(name, "rb") as f:
            head = f.read(16)
        handle = name
    fmt = sniff_format(head)
    if fmt == "npy":
        if isinstance(handle, io.BytesIO):
            arr = np.load(handle, allow_pickle=False)
            return InputInfo(name, "npy", arr.shape, str(arr.dtype), size)
        try:
            shape, dtype = npy_header(handle)
        except ArrayReadError as e:
            raise ValueError(str(e)) from None
        return InputInfo(name, "npy", shape, str(dtype), size)
    if fmt == "npz":
        try:
            members = read_arrays(data if name == "-" else name)
        except ArrayReadError as e:
            raise ValueError(str(e)) from None
        first = next(iter(members.values()))
        return InputInfo(name, "npz", first.shape, str(first.dtype), size,
                         members=f"; {len(members)} arrays: {', '.join(members)}")
    if fmt is None:
        raise ValueError("not a PNG, JPEG, TIFF, BMP, WebP, GIF, .npy or .npz file")
    try:
        with Image.open(handle) as im:
            bands = _BANDS.get(im.mode, len(im.getbands()))
            if im.mode == "P" and ("transparency" in im.info):
                bands = 4
            shape = (im.height, im.width) if bands == 1 else (im.height, im.width, bands)
            dtype = {"1": "bool", "I": "int32", "F": "float32"}.get(
                im.mode, "uint16" if im.mode.startswith("I;16") else "uint8")
            return InputInfo(name, fmt, shape, dtype, size, mode=im.mode)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read the image header ({e})") from None


def plan_text(pipe: Pipeline, shape: tuple[int, ...], axes: Any, source: str) -> str:
    """The per-stage, per-axis arithmetic and the notes, as `poolcli plan` prints them."""
    lines = [f"input {source}: shape {_dims(shape)}"]
    dt = np.dtype("float64")
    for i, p in enumerate(pipe.plans(shape, axes=axes), 1):
        dt = result_dtype(p, dt)
        lines.append(f"stage {i} {pipe.stages[i - 1]}: {_dims(p.in_shape)} -> "
                     f"{_dims(p.out_shape)} (pooled axes {', '.join(map(str, p.axes))})")
        lines.extend("  " + ap.describe() for ap in p.axis_plans)
        lines.extend("  note: " + n for n in p.notes())
    lines.append(f"output shape {_dims(pipe.output_shape(shape, axes=axes))}")
    return "\n".join(lines)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


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
    return (f"{stage} on {_dims(shape)} {dt} ({mb:.0f} MB), threads={threads or 'all'}, "
            f"median of {repeat}:\n"
            f"  pool  {t * 1e3:9.2f} ms  {mb / t / 1e3:6.2f} GB/s\n"
            f"  copy  {floor * 1e3:9.2f} ms  (the floor)\n"
            f"  ratio {t / floor:9.2f} x copy")
