"""Issue 9: killed runs leave no processes and no files behind; -j is capped at the cores.

Through the real executable: signals, worker processes and exit codes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from clitools import EXE, run_exe
from PIL import Image


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _batch(tmp_path: Path, n: int = 24, side: int = 1000) -> Path:
    """``n`` uncompressed side x side RGB PNGs in ``tmp_path / "in"``."""
    d = tmp_path / "in"
    d.mkdir()
    big = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    for i in range(n):
        Image.fromarray(big).save(d / f"{i:02}.png", compress_level=0)
    return d


def _start_and_wait_for_workers(args, tmp_path):
    proc = subprocess.Popen([*EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    deadline = time.monotonic() + 60
    kids: set[int] = set()
    while time.monotonic() < deadline and len(kids) < 3:  # fork server + 2 workers
        time.sleep(0.05)
        kids = _descendants(proc.pid)
    return proc, kids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_sigkill_of_the_parent_takes_its_workers_and_the_next_run_cleans_up(tmp_path):
    d = _batch(tmp_path)
    proc, kids = _start_and_wait_for_workers(["avg", str(d), "-o", "out", "-j", "2"],
                                             tmp_path)
    assert len(kids) >= 3, "the workers never started"
    proc.kill()
    # nobody may hold the pipes: communicate() returns only when every holder is gone
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)]
    # a killed run's temporary files are recognisable and removed by the next run
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    dead = _dead_pid()
    (out / f".00.png.poolcli-{dead}.abc123.part").write_bytes(b"half")
    (out / f".x.npy.poolcli-{dead}.abc123.stage0.npy").write_bytes(b"half")
    (out / f".00.png.poolcli-{os.getpid()}.abc123.part").write_bytes(b"alive")  # live
    p = run_exe("avg", str(d / "00.png"), "-o", "out/", "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # ours, and any the killed workers really left
    assert p.stderr.count("left by a poolcli run that was killed") >= 2
    left = sorted(q.name for q in out.iterdir() if q.name.startswith("."))
    assert left == [f".00.png.poolcli-{os.getpid()}.abc123.part"]
    scratch = [n for n in os.listdir(tempfile.gettempdir())
               if n.startswith(f"pymp-poolcli-{proc.pid}-")]
    assert scratch == []  # the killed run's multiprocessing folder is gone too


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    d = _batch(tmp_path)
    proc, _ = _start_and_wait_for_workers(["avg", str(d), "-o", "out", "-j", "2"], tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode() and b"Traceback" not in err
    out = tmp_path / "out"
    names = [q.name for q in out.iterdir()] if out.exists() else []
    assert not [n for n in names if n.startswith(".")]
    # the count said is the count written: jobs that finished after the signal count too
    said = re.search(r"after (\d+) of 24", err.decode())
    assert said is not None and int(said[1]) == len(names), (err.decode(), names)
    for n in names:
        assert Image.open(out / n).size == (500, 500)


def test_jobs_are_capped_at_the_cores(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", np.zeros((8, 8)))
    p = run_exe("max", ".", "-o", "out", "-j", "10000", "--report", "json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    cores = len(os.sched_getaffinity(0))
    warnings = [ln for ln in p.stderr.splitlines() if "poolcli: warning: -j 10000" in ln]
    assert len(warnings) == 1 and f"at most {cores} files at once" in warnings[0]
    assert len(list((tmp_path / "out").iterdir())) == 3
