"""Timing records for a run: per file, per stage, and the summary; as a table or as JSON."""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import dataclass, field
from typing import Any

from ..pipeline import StageTiming


@dataclass
class FileRecord:
    """What happened to one input (or one array of a .npz)."""

    input: str
    output: str | None = None
    status: str = "ok"
    error: str | None = None
    input_shape: tuple[int, ...] | None = None
    input_dtype: str | None = None
    output_shape: tuple[int, ...] | None = None
    output_dtype: str | None = None
    axes: tuple[int, ...] | None = None
    stages: list[StageTiming] = field(default_factory=list)
    load_seconds: float = 0.0
    pool_seconds: float = 0.0
    save_seconds: float = 0.0
    seconds: float = 0.0
    input_bytes: int = 0  # for throughput; not in the JSON document
    usage_error: bool = False  # the options cannot apply to this input (exit status 2)
    stop: bool = False  # ... nor to any input like it: the batch stops
    exists: bool = False  # failed only because its output exists (no --overwrite)
    notes: list[str] = field(default_factory=list)  # warnings about this input's data
    cause: str | None = None  # the system's reason, the same for every file (a full disk)
    pid: int = 0  # the process that did the work, and its peak RSS then (-j workers)
    process_peak_rss: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "input": self.input, "output": self.output, "status": self.status,
            "error": self.error,
            "input_shape": _list(self.input_shape), "input_dtype": self.input_dtype,
            "output_shape": _list(self.output_shape), "output_dtype": self.output_dtype,
            "axes": _list(self.axes),
            "stages": [{"stage": s.stage, "input_shape": list(s.input_shape),
                        "output_shape": list(s.output_shape), "seconds": s.seconds}
                       for s in self.stages],
            "load_seconds": self.load_seconds, "pool_seconds": self.pool_seconds,
            "save_seconds": self.save_seconds, "seconds": self.seconds,
        }


def _list(t: tuple[int, ...] | None) -> list[int] | None:
    return None if t is None else list(t)


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports kilobytes, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


@dataclass
class Summary:
    files: int
    ok: int
    failed: int
    seconds: float
    peak_rss_bytes: int
    input_bytes: int
    dashboard: str | None = None  # the dask cluster's dashboard, when one ran the batch

    @classmethod
    def of(cls, counts: tuple[int, int], seconds: float, input_bytes: int,
           worker_peak: int = 0, workers: int = 0) -> Summary:
        """The run's summary. With worker processes, peak RSS is this process's peak plus
        ``workers`` times the largest peak a worker reached (a bound on their sum)."""
        ok, failed = counts
        peak = peak_rss_bytes() + workers * worker_peak
        return cls(ok + failed, ok, failed, seconds, peak, input_bytes)

    def as_json(self) -> dict[str, Any]:
        doc = {"files": self.files, "ok": self.ok, "failed": self.failed,
               "seconds": self.seconds, "peak_rss_bytes": self.peak_rss_bytes}
        return doc if self.dashboard is None else doc | {"dashboard": self.dashboard}

    def throughput(self) -> str:
        if self.seconds <= 0:
            return ""
        return (f"{self.files / self.seconds:.1f} files/s, "
                f"{self.input_bytes / self.seconds / 1e6:.1f} MB/s in")


def json_document(records: list[dict[str, Any]], summary: Summary) -> str:
    """The JSON report document; ``records`` are FileRecord.as_json() dicts."""
    return json.dumps({"files": records, "summary": summary.as_json()}, indent=2)
