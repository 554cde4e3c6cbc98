"""A batch as the command line shows it: one line per failure, warnings once, a progress
bar on a terminal, the report, and the exit status."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch.report import FileRecord
from ..errors import UsageError
from .messages import line, say

# Rich and the batch machinery are imported where they are used: `poolcli --version` and
# `--help` should start as fast as importing NumPy, Pillow and Typer.
TABLE_ROWS = 20  # rows of the default report table on a terminal
PROGRESS_FILE_WIDTH = 110  # the progress bar names the current file from this width
EXISTS_LINES = 3  # outputs that exist already, named one per line before they are counted


@dataclass(frozen=True)
class Reporting:
    """How a run speaks: the --report mode, --report-file and --quiet."""

    report: str | None = None
    report_file: Path | None = None
    quiet: bool = False

    @property
    def mode(self) -> str:
        return self.report or ("table" if sys.stderr.isatty() else "none")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Shown:
    """Says each failure and warning once, and counts the repeats instead."""

    quiet: bool
    progress: Any = None
    task: Any = None
    warned: set[str] = field(default_factory=set)
    repeated: dict[str, int] = field(default_factory=dict)  # usage error -> more like it
    exists_named: int = 0  # outputs that exist already, named on a line
    exists_more: int = 0  # ... and only counted
    stopped: bool = False  # a mistake stopped the batch: other workers' copies are quiet
    live: bool = False  # bars may be drawn (a terminal, not --quiet)
    tasks_row: Any = None  # the bar's row of cluster tasks, once a job has reported some

    def say(self, kind: str, text: str) -> None:
        """A line above the progress bar while it shows, so the two never share a line."""
        if self.progress is None:
            say(kind, text)
        else:
            from rich.text import Text

            self.progress.console.print(Text.from_ansi(line(kind, text, colour=True)))

    def echo(self, text: str) -> None:
        """A plain line of the run's own (a level written), above the bar too."""
        if self.progress is None:
            sys.stderr.write(text + "\n")
        else:
            from rich.text import Text

            self.progress.console.print(Text(text))

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def finished(self, r: FileRecord, notes: list[str]) -> None:
        if r.status != "ok":
            if self.stopped and r.stop:
                pass
            elif r.usage_error and r.error in self.repeated:
                self.repeated[r.error] += 1  # a pipeline too big for many same-sized inputs
            elif r.cause and r.cause in self.repeated:
                self.repeated[r.cause] += 1  # a full disk fails every file the same way
            elif r.exists and self.exists_named >= EXISTS_LINES:
                self.exists_more += 1  # a batch run again: a few names are enough
            else:
                self.say("error", f"{r.input}: {r.error}")
                if r.usage_error:
                    self.repeated[r.error] = 0
                elif r.cause:
                    self.repeated[r.cause] = 0
                self.exists_named += r.exists
            self.stopped = self.stopped or r.stop
        elif not self.quiet:
            for note in notes:
                if note not in self.warned:
                    self.warned.add(note)
                    self.say("warning", f"{note} ({r.input})")

    def advanced(self, done: int, total: int, failed: int, current: str) -> None:
        if self.task is not None:  # a row of files (a batch of one has only its tasks)
            self.progress.update(self.task, completed=done,
                                 failed=f"{failed} failed" if failed else "",
                                 current=_short(current))

    def tasks(self, done: int, total: int) -> None:
        """The cluster's tasks of the job in hand, as a row of the bar."""
        if not self.live:
            return
        if self.progress is None:
            self.progress, self.tasks_row = _progress(total, "tasks")
        elif self.tasks_row is None:
            self.tasks_row = self.progress.add_task("tasks", total=total, failed="",
                                                    current="")
        self.progress.update(self.tasks_row, completed=done, total=total)

    def counts(self) -> None:
        if self.exists_more:
            say("error", f"{self.exists_more} more output{'s' if self.exists_more > 1 else ''} "
                "exist already; pass --overwrite to replace them")
        for error, more in self.repeated.items():
            if more:
                say("error", f"{more} more input{'s' if more > 1 else ''} failed the same "
                    f"way: {error}")


def run_batch(opts, reporting: Reporting) -> int:
    """Pool every input of ``opts`` (BatchOptions), report, return the exit status."""
    from ..batch import runner
    from ..batch.jobs import STDIO

    if reporting.report not in (None, "table", "json", "none"):
        raise UsageError(f"--report {reporting.report!r} is not known; use table, json or none")
    report_file = reporting.report_file
    if report_file is not None and not report_file.parent.is_dir():
        raise UsageError(f"--report-file {report_file}: the folder {report_file.parent} "
                         "does not exist")
    mode = reporting.mode
    keep = mode != "none" or report_file is not None
    from dataclasses import replace

    opts = replace(opts, keep_records=keep)
    jobs_list = runner.plan(opts)
    _check_streams(jobs_list)
    # The file standard input came from (`< photo.png`) is an input like any other.
    stdin_id = _stdin_file(jobs_list)
    opts = replace(opts, job=replace(opts.job, protect=opts.job.protect | stdin_id))
    protect = opts.job.protect | runner.input_ids(jobs_list)
    if report_file is not None:
        _check_report_file(report_file, jobs_list, protect, opts.job.overwrite)
    if opts.jobs is not None and opts.jobs > runner.cores() and not reporting.quiet:
        say("warning", f"-j {opts.jobs}: this machine has {runner.cores()} cores for "
            f"poolcli; running at most {runner.cores()} files at once")
    for name in runner.leftovers(jobs_list):
        if not reporting.quiet:
            say("warning", f"removed {name}, left by a poolcli run that was killed")
    if not reporting.quiet:
        from ..batch.jobs import unsearched_note

        note = unsearched_note(list(opts.inputs), opts.recursive)
        if note:
            say("note", note)
    shown = Shown(quiet=reporting.quiet, live=sys.stderr.isatty() and not reporting.quiet)
    if shown.live and len(jobs_list) > 1:
        shown.progress, shown.task = _progress(len(jobs_list))
    stdin = sys.stdin.buffer if any(j.src == STDIO for j in jobs_list) else None
    stdout = sys.stdout.buffer if any(j.dest == STDIO for j in jobs_list) else None
    try:
        result = runner.run(opts, jobs_list, shown, stdin=stdin, stdout=stdout)
    finally:
        shown.stop()
    if stdout is not None and result.tally.failed:
        # the reader went away: later writes (even at exit) must not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if result.summary.dashboard and not reporting.quiet and mode == "none" and report_file is None:
        # (a report, the table or JSON, names it in its summary)
        say("note", f"the dask cluster's dashboard was {result.summary.dashboard}")
    if result.interrupted:
        # outputs in flight are whole or absent (atomic)
        say("interrupted", f"after {result.tally.ok} of {len(jobs_list)} files")
        return 130
    shown.counts()
    failed = result.tally.failed
    if report_file is not None or mode == "json":
        from ..batch.report import json_document

        doc = json_document([r.as_json() for r in result.records], result.summary)
        if report_file is not None:  # the file instead of standard error (SPEC)
            from ..io.atomic import atomic_write

            try:
                atomic_write(report_file, lambda f: f.write(doc.encode() + b"\n"),
                             overwrite=opts.job.overwrite, protect=protect)
            except OSError as e:
                say("error", f"--report-file {report_file}: "
                    f"{e.strerror if e.strerror else e}")
                failed += 1
        elif mode == "json":
            sys.stderr.write(doc + "\n")
    if mode == "table" and not reporting.quiet:
        from .table import table

        # The default table of a long batch is cut short; --report table asks for every row.
        stderr_console().print(table(result.records, result.summary,
                                     max_rows=None if reporting.report == "table"
                                     else TABLE_ROWS))
    if result.tally.usage_failures:
        return 2  # a pipeline that cannot fit an input is a usage error (SPEC: exit 2)
    return 1 if failed else 0


def _stdin_file(jobs_list) -> frozenset[tuple[int, int]]:
    """The (device, inode) of the regular file redirected into standard input, if any."""
    from ..batch.jobs import STDIO
    from ..io.atomic import file_id

    if not any(j.src == STDIO for j in jobs_list):
        return frozenset()
    try:
        st = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return frozenset()
    return frozenset({file_id(st)}) if stat.S_ISREG(st.st_mode) else frozenset()


def _check_report_file(path: Path, jobs_list, protect, overwrite: bool) -> None:
    """--report-file follows the rules of outputs, checked before any work starts."""
    from ..io.atomic import check_output

    if any(j.dest != "-" and Path(j.dest).resolve() == path.resolve() for j in jobs_list):
        raise UsageError(f"--report-file {path} is also an output of this run; name "
                         "another file")
    try:
        check_output(path, overwrite=overwrite, protect=protect)
    except FileExistsError as e:
        text = str(e).replace("output ", "", 1) if str(e).startswith("output ") else str(e)
        raise UsageError(f"--report-file {text}") from None


def _progress(total: int, what: str = "pooling"):
    """The bar Rich and tqdm users expect: percentage, done/total, failures so far, elapsed
    time, a labelled ETA, and on a wide terminal the file just finished. ``what`` labels
    the first row (files being pooled, or a cluster's tasks); rows may be added."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = stderr_console()
    columns = [TextColumn("{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
               MofNCompleteColumn(), TextColumn("[red]{task.fields[failed]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    if console.width >= PROGRESS_FILE_WIDTH:
        columns.append(TextColumn("{task.fields[current]}", markup=False))
    progress = Progress(*columns, console=console, transient=True)
    task = progress.add_task(what, total=total, failed="", current="")
    progress.start()
    return progress, task


def _short(path: str, room: int = 40) -> str:
    return path if len(path) <= room else "…" + path[-(room - 1):]


def _check_streams(jobs_list) -> None:
    """Refuse to wait on a terminal for data, or to print binary data onto one."""
    from ..batch.jobs import STDIO

    if any(j.src == STDIO for j in jobs_list) and sys.stdin.isatty():
        raise UsageError("standard input (-) is a terminal; pipe or redirect a file into it")
    if any(j.dest == STDIO for j in jobs_list) and sys.stdout.isatty():
        raise UsageError("-o - would write binary data to the terminal; redirect or pipe "
                         "standard output")
