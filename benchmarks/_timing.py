"""Helpers shared by bench_core.py and bench_cli.py: timing, machine info, tables.

Run the benchmarks as scripts (``python benchmarks/bench_core.py``); this module is found
beside them.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def median_ms(seconds: Sequence[float]) -> float:
    """Median of a list of durations in seconds, in milliseconds."""
    return statistics.median(seconds) * 1000.0


def time_round_robin(cases: dict[str, Callable[[], Any]], repeat: int, *, warmup: int = 1,
                     slow_seconds: float = 0.4, slow_repeat: int = 3,
                     ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time each callable ``repeat`` times, interleaving them round by round.

    Returns the durations in seconds per case and the result of each case's first
    (warm-up) call, so that callers can check results without an extra call.

    Interleaving puts every tool, and the copy floor, under the same background load, so
    the ratios stay meaningful on a noisy machine. A case whose warm-up took longer than
    ``slow_seconds`` runs only ``min(repeat, slow_repeat)`` times to keep the run short.
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    wanted: dict[str, int] = {}
    first: dict[str, Any] = {}
    for name, fn in cases.items():
        elapsed = 0.0
        for i in range(max(warmup, 1)):
            t0 = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - t0
            if i == 0:
                first[name] = result
            del result
        wanted[name] = repeat if elapsed < slow_seconds else min(repeat, slow_repeat)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            for name, fn in cases.items():
                if r >= wanted[name]:
                    continue
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times, first


def cpu_model() -> str:
    """The CPU model name from lscpu (or /proc/cpuinfo), else platform.processor()."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _module_version(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def _tool_version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (res.stdout or res.stderr).strip().splitlines()
    return text[0].strip() if text else None


def machine_info(tools: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """CPU, core count, Python and library versions, and versions of external tools."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for mod, key in [("poolcli", "poolcli"), ("numpy", "numpy"), ("torch", "torch"),
                     ("skimage", "scikit-image"), ("scipy", "scipy"), ("PIL", "Pillow"),
                     ("cv2", "OpenCV"), ("tinybrain", "tinybrain")]:
        info[key] = _module_version(mod)
    for key, cmd in (tools or {}).items():
        info[key] = _tool_version(cmd)
    return info


def format_info(info: dict[str, Any]) -> str:
    return "\n".join(f"  {k:<13} {v if v is not None else 'absent'}" for k, v in info.items())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:] if r[i]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(row, widths, numeric, strict=True)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x"))
    except ValueError:
        return False
    return True


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` ("-" for standard output)."""
    text = json.dumps(payload, indent=2, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")
