"""Issue 10: the report table at 60, 80 and 120+ columns, failures findable at the end,
and the progress bar (only on a terminal, never in pipes or with -q)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading

import pytest
from clitools import EXE, rgb
from rich.console import Console
from test_report import bad_record, ok_record

from poolcli.batch.report import Summary
from poolcli.cli.table import table

LONG = "photos/2024/holiday/a_rather_long_folder_name/IMG_20240612_101112.png"


def _records(n: int = 3):
    recs = []
    for i in range(n):
        r = ok_record()
        r.input, r.output = f"in/{i:02}.npy", f"out/{i:02}.npy"
        recs.append(r)
    long = ok_record()
    long.input, long.output = LONG, "small/" + LONG
    return [*recs, long, bad_record()]


def _text(width: int, records, max_rows=None) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(table(records, Summary(len(records), len(records) - 1, 1, 0.5, 2**20, 99),
                        max_rows=max_rows, cwd="/nowhere"))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_one_line_per_file_names_and_numbers_whole(width):
    lines = _text(width, _records())
    assert all(len(ln) <= width for ln in lines)
    for i in range(3):  # short names whole, one line each
        assert sum(f"in/{i:02}.npy" in ln for ln in lines) == 1
    row = next(ln for ln in lines if "in/00.npy" in ln)
    assert "2x17x23 -> 2x4x6" in row
    # numbers are never cut: every time is whole ("15.6 ms"), no ellipsis among them
    times = re.findall(r"\d+\.\d ms", row)
    assert times and "…" not in row
    # a long path keeps its file name, cut from the left
    long_row = next(ln for ln in lines if "_101112.png" in ln
                    and not ln.startswith("failed"))
    assert "2x17x23 -> 2x4x6" in long_row
    assert "4 ok, 1 failed in 0.50 s" in " ".join(lines[-2:])


def test_the_layout_grows_with_the_width():
    narrow, medium, wide = (_text(w, _records()) for w in (60, 80, 120))
    assert "time" in narrow[0] and "load" not in narrow[0]
    assert all(h in medium[0] for h in ("load", "pool", "save")) and "stages" not in medium[0]
    assert "stages" in wide[0]
    row = next(ln for ln in wide if "in/00.npy" in ln)
    # the output joins the file cell where it fits whole
    assert "in/00.npy -> out/00.npy" in next(ln for ln in _text(160, _records())
                                             if "in/00.npy" in ln)
    assert "max:k=3,s=2,p=1 12.5 ms; avg:k=2 3.1 ms" in row


def test_a_single_stage_gets_no_stages_column():
    recs = _records()
    for r in recs:
        r.stages = r.stages[:1]
    assert "stages" not in _text(200, recs)[0]


def test_failures_are_listed_again_under_a_long_table():
    recs = [*_records(40)]
    lines = _text(80, recs, max_rows=10)
    assert sum("in/" in ln and ".npy" in ln for ln in lines) <= 10
    assert any("more files" in ln for ln in lines)
    tail = lines[-3:]
    assert any(ln == "failed: in/bad.png: cannot read: not a PNG" for ln in tail)
    assert "reported above" not in "\n".join(lines)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(4):
        rgb(d / f"p{i}.png", seed=i)
    (d / "broken.png").write_bytes(b"not an image")
    return d


def test_the_table_shows_file_names_when_stderr_is_a_pipe_at_80_columns(folder, tmp_path):
    env = {**os.environ, "COLUMNS": "80"}
    p = subprocess.run([*EXE, "max", "photos", "-o", "out", "--report", "table"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    for i in range(4):
        assert sum(f"photos/p{i}.png" in ln for ln in lines) == 1
    assert lines[-2].startswith("failed: photos/broken.png: cannot read")
    assert lines[-1].startswith("4 ok, 1 failed in ")
    assert all(len(ln) <= 80 for ln in lines if not ln.startswith(("failed", "poolcli")))


def _in_a_terminal(args, cwd, columns=120):
    """Run poolcli with standard error on a pseudo-terminal; returns (status, what it showed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    p = subprocess.Popen([*EXE, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    status = p.wait(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


def test_the_progress_bar_on_a_terminal(folder, tmp_path):
    status, shown = _in_a_terminal(["max", "photos", "-o", "out"], tmp_path)
    assert status == 1
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert "pooling" in plain and "%" in plain and "ETA" in plain
    assert re.search(r"\d/5", plain)  # done of total
    assert "0:00:0" in plain  # elapsed
    assert "1 failed" in plain  # failures so far
    assert re.search(r"photos/p\d\.png|photos/broken\.png", plain)  # the current file


def test_no_progress_bar_with_q_or_in_a_pipe(folder, tmp_path):
    status, shown = _in_a_terminal(["max", "photos", "-o", "out", "-q"], tmp_path)
    assert status == 1 and "pooling" not in shown and "ETA" not in shown
    p = subprocess.run([*EXE, "max", "photos", "-o", "out2"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "pooling" not in p.stderr and "ETA" not in p.stderr


def test_a_narrow_terminal_bar_leaves_out_the_file(folder, tmp_path):
    _, shown = _in_a_terminal(["max", "photos", "-o", "out"], tmp_path, columns=80)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    bar_lines = [ln for ln in re.split(r"[\r\n]", plain) if "pooling" in ln]
    assert bar_lines and not any("photos/" in ln for ln in bar_lines)
