"""The report table on standard error (Rich): one row per file, and the run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..batch.report import FileRecord, Summary
from .text import dims

if TYPE_CHECKING:  # Rich loads only when a table is drawn: workers and pipes never need it
    from rich.table import Table


def table(records: list[FileRecord], summary: Summary, max_rows: int | None = None) -> Table:
    """A Rich table: one row per file with a line per stage, and the total as its caption.

    With ``max_rows``, a long batch shows its failures and then its first files up to that
    many rows, and one row saying how many more there were.
    """
    from rich.markup import escape
    from rich.table import Table

    t = Table(header_style="bold", caption_justify="left")
    t.add_column("file", overflow="fold", min_width=16)
    t.add_column("shape in -> out", no_wrap=True)
    t.add_column("stages", no_wrap=True)
    for col in ("load", "pool", "save"):
        t.add_column(col, justify="right", no_wrap=True)
    shown = list(records)
    if max_rows is not None and len(shown) > max_rows:
        # every failure (up to the limit), then the first files, in their own order
        picked = set(([id(r) for r in shown if r.status != "ok"]
                      + [id(r) for r in shown if r.status == "ok"])[:max(max_rows - 1, 1)])
        shown = [r for r in shown if id(r) in picked]
    for r in shown:
        # file names are text, not markup: "a.npz[image]" must keep its brackets
        if r.status != "ok":
            t.add_row(escape(r.input), "[red]failed[/red] (reported above)", "", "", "", "")
            continue
        stages = "\n".join(f"{escape(s.stage)} -> {dims(s.output_shape)}  "
                           f"{s.seconds * 1e3:.1f} ms" for s in r.stages)
        t.add_row(escape(f"{r.input}\n-> {r.output}"),
                  f"{dims(r.input_shape)} {r.input_dtype}\n"
                  f"{dims(r.output_shape)} {r.output_dtype}",
                  stages, _ms(r.load_seconds), _ms(r.pool_seconds), _ms(r.save_seconds))
    if len(shown) < len(records):
        t.add_row(f"... {len(records) - len(shown)} more files", "", "", "", "", "")
    t.caption = (f"{summary.ok} ok, {summary.failed} failed in {summary.seconds:.2f} s; "
                 f"{summary.throughput()}; peak RSS {summary.peak_rss_bytes / 2**20:.0f} MiB")
    return t


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"
