"""Issue 9: SIGTERM (or SIGINT) to the parent of a `-j` run stops its workers promptly:
no file is finished after the signal but the ones in place, no `.part` is left, and the
count said is the count on disk.

Through the real executable: signals, worker processes and exit codes.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from clitools import EXE
from PIL import Image
from test_issue9_signals import _batch, _start_and_wait_for_workers

N = 8


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_signal_to_the_parent_stops_its_workers_mid_file(tmp_path):
    d = _batch(tmp_path, N, side=700)
    args = ["median", str(d), "-k", "5", "-s", "1", "-j", "2"]
    t0 = time.monotonic()
    subprocess.run([*EXE, *args, "-o", "whole"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=600)
    per_file = (time.monotonic() - t0) / (N / 2)  # two workers, start-up included
    for signum in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"out{signum}"
        proc, kids = _start_and_wait_for_workers([*args, "-o", str(out)], tmp_path)
        assert len(kids) >= 3, "the workers never started"
        time.sleep(0.3)  # each worker is into a file
        t1 = time.monotonic()
        proc.send_signal(signum)  # to the parent only, as `kill` does
        _, err = proc.communicate(timeout=300)
        stopped = time.monotonic() - t1
        text = err.decode()
        assert proc.returncode == 130, text
        assert "Traceback" not in text
        # the workers' files were stopped, not finished (then the queued ones)
        assert stopped < per_file / 2, (signum, stopped, per_file, text)
        names = sorted(q.name for q in out.iterdir()) if out.exists() else []
        assert not [n for n in names if n.startswith(".")], names  # no .part
        said = re.search(rf"interrupted after (\d+) of {N} files", text)
        assert said is not None and int(said[1]) == len(names), (text, names)
        assert len(names) < N
        for n in names:
            assert Image.open(out / n).size == (696, 696)
