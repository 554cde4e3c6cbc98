"""The report table on standard error (Rich): one line per file, laid out for the width it
is drawn at, then the failures again and the run's summary.

Widths: below 80 columns a file gets its shapes and one total time; from 80 the load, pool
and save times; from 120 its dtype, its output and, for a pipeline of several stages, each
stage's time folded into one cell (the dtype shows at any width where a file's changes).
Paths are shown relative to the working folder and cut from the left ("…/deep/name.png")
rather than wrapped mid-word.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..batch.report import FileRecord, Summary
from .text import dims

if TYPE_CHECKING:  # Rich loads only when a table is drawn: workers and pipes never need it
    from rich.console import Console, ConsoleOptions, RenderResult

WIDE = 120  # output column and the stages cell
MEDIUM = 80  # load, pool and save apart
MIN_FILE = 12  # the file column never gets narrower than this
TIME_COLUMNS = ("load", "pool", "save", "time")
TIME_WIDTH = len("999.9 ms")  # _time's widest


def table(records: list[FileRecord], summary: Summary, max_rows: int | None = None,
          cwd: str | None = None) -> Report:
    """The report of a run as a Rich renderable, laid out for the width it is drawn at.

    With ``max_rows``, a long batch shows its failures and then its first files up to that
    many rows, and one row saying how many more there were; every failure's reason is
    listed again under the table, and the summary line always closes it.
    """
    return Report(records, summary, max_rows, cwd or os.getcwd())


class Report:
    def __init__(self, records: list[FileRecord], summary: Summary, max_rows: int | None,
                 cwd: str) -> None:
        self.records, self.summary, self.max_rows, self.cwd = records, summary, max_rows, cwd

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        width = options.max_width
        if self.records:
            yield self._table(width)
        for r in self.records:
            if r.status != "ok":
                yield Text.assemble(("failed: ", "red"), f"{self._path(r.input)}: {r.error}")
        yield Text(summary_line(self.summary))

    # --- layout ------------------------------------------------------------------------

    def _rows(self) -> tuple[list[FileRecord], int]:
        shown = list(self.records)
        if self.max_rows is not None and len(shown) > self.max_rows:
            # every failure (up to the limit), then the first files, in their own order
            picked = set(([id(r) for r in shown if r.status != "ok"]
                          + [id(r) for r in shown if r.status == "ok"])
                         [:max(self.max_rows - 1, 1)])
            shown = [r for r in shown if id(r) in picked]
        return shown, len(self.records) - len(shown)

    def _table(self, width: int):
        from rich import box
        from rich.table import Table

        shown, more = self._rows()
        many_stages = any(len(r.stages) > 1 for r in shown)
        # the dtype has a column on wide terminals, or where a file's dtype changes
        cols: list[tuple[str, str]] = [("shape in -> out", "left")]
        if width >= WIDE or any(r.input_dtype != r.output_dtype for r in shown
                                if r.status == "ok"):
            cols.append(("dtype", "left"))
        if width >= WIDE and many_stages:
            cols.append(("stages", "left"))
        cols += ([("load", "right"), ("pool", "right"), ("save", "right")] if width >= MEDIUM
                 else [("time", "right")])
        with_dtype = ("dtype", "left") in cols
        cells = [self._cells(r, width, many_stages, with_dtype) for r in shown]
        sizes = [max(len(name), *(len(c[i + 1]) for c in cells)) if cells else len(name)
                 for i, (name, _) in enumerate(cols)]
        # times get their widest size ("999.9 ms"), so the layout never depends on them
        sizes = [TIME_WIDTH if name in TIME_COLUMNS else size
                 for (name, _), size in zip(cols, sizes, strict=True)]
        # the file column takes what the others leave: between two columns Rich puts one
        # padding space (collapsed) and one for the (blank) rule
        room = max(width - sum(sizes) - 2 * len(cols), MIN_FILE)
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  header_style="bold")
        t.add_column("file", no_wrap=True, overflow="ellipsis", max_width=room)
        for (name, justify), size in zip(cols, sizes, strict=True):
            t.add_column(name, justify=justify, no_wrap=True, min_width=size)
        for r, c in zip(shown, cells, strict=True):
            t.add_row(self._name(r, width, room), *c[1:],
                      style="red" if r.status != "ok" else None)
        if more:
            t.add_row(f"... {more} more files", *[""] * len(cols))
        return t

    def _cells(self, r: FileRecord, width: int, many_stages: bool,
               with_dtype: bool) -> list[str]:
        from rich.markup import escape

        name = self._path(r.input)
        timing = ([_time(r.load_seconds), _time(r.pool_seconds), _time(r.save_seconds)]
                  if width >= MEDIUM else [_time(r.seconds)])
        stages = []
        if width >= WIDE and many_stages:
            stages = ["; ".join(f"{escape(s.stage)} {_time(s.seconds)}" for s in r.stages)]
        dtype = ([] if not with_dtype else
                 [r.input_dtype or "" if r.input_dtype == r.output_dtype
                  else f"{r.input_dtype} -> {r.output_dtype}"])
        if r.status != "ok":
            return [name, "failed", *([""] * (len(dtype) + len(stages) + len(timing)))]
        return [name, f"{dims(r.input_shape)} -> {dims(r.output_shape)}", *dtype,
                *stages, *timing]

    def _name(self, r: FileRecord, width: int, room: int) -> str:
        """The file cell: the input (cut from the left to fit), and its output too where
        that fits whole; escaped, since file names are text, not markup ("a.npz[image]")."""
        from rich.markup import escape

        name = self._path(r.input)
        if width < WIDE or not r.output:
            return escape(_cut(name, room))
        both = f"{name} -> {self._path(r.output)}"
        return escape(both if len(both) <= room else _cut(name, room))

    def _path(self, path: str) -> str:
        """A path as short as it can be said: relative to the working folder when inside."""
        if path.startswith("<") or not os.path.isabs(path):
            return path
        rel = os.path.relpath(path, self.cwd)
        return path if rel.startswith("..") else rel


def summary_line(summary: Summary) -> str:
    """``2 ok, 1 failed in 0.05 s; 64.4 files/s, 84.8 MB/s in; peak RSS 86 MiB``."""
    rate = summary.throughput()
    return (f"{summary.ok} ok, {summary.failed} failed in {summary.seconds:.2f} s"
            + (f"; {rate}" if rate else "")
            + f"; peak RSS {summary.peak_rss_bytes / 2**20:.0f} MiB"
            + (f"; dask dashboard {summary.dashboard}" if summary.dashboard else ""))


def _cut(text: str, room: int) -> str:
    """Keep the end of a path (its name), cutting from the left: ``…/deep/name.png``."""
    return text if len(text) <= room else "…" + text[-(room - 1):]


def _time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.99995 else f"{seconds * 1e3:.1f} ms"
