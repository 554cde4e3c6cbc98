"""Issue 9: a Ctrl-C or SIGTERM at any moment of start-up is one line and exit 130, never
a traceback; ``import poolcli`` imports nothing heavy.

Through the real executable: the console script as installed, and ``python -m poolcli``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clitools import EXE

PACKAGE = Path(__file__).resolve().parent.parent / "poolcli"
SCRIPT = Path(sys.executable).parent / "poolcli"
# The one statement of ours that runs before main() can guard anything: importing the
# entry point itself (two small modules that import only what the interpreter has loaded).
ENTRY_IMPORT = re.compile(r"^\s*from (poolcli|)\.cli import (entry|main)\s*$")


def _frames_of_ours(stderr: str) -> list[str]:
    """The traceback frames in poolcli's own files, but the import of the entry point.

    Python's start-up (site and its .pth files, an editable install's finder) and the
    console-script wrapper pip writes run before any line of poolcli: a Ctrl-C there is
    the interpreter's to report, not ours.
    """
    lines = stderr.splitlines()
    ours = []
    for i, ln in enumerate(lines):
        m = re.match(r'\s*File "([^"]+)", line \d+', ln)
        if m is None or not Path(m[1]).resolve().is_relative_to(PACKAGE):
            continue
        source = lines[i + 1] if i + 1 < len(lines) else ""
        if not ENTRY_IMPORT.match(source):
            ours.append(f"{ln.strip()}: {source.strip()}")
    return ours


def _executables() -> list[list[str]]:
    found = [EXE]
    if SCRIPT.exists() and "entry" in SCRIPT.read_text(errors="replace"):
        found.append([str(SCRIPT)])
    return found


@pytest.mark.slow
@pytest.mark.parametrize("exe", _executables(), ids=lambda e: "-m" if e == EXE else "script")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_at_any_moment_of_start_up_is_quiet(tmp_path, exe, signum):
    np.save(tmp_path / "a.npy", np.arange(64.0).reshape(8, 8))
    args = [*exe, "max", "a.npy", "-o", "-", "--format", "npy"]
    t0 = time.monotonic()
    subprocess.run(args, cwd=tmp_path, capture_output=True, check=True, timeout=60)
    whole = time.monotonic() - t0
    quiet, outcomes = 0, []
    for delay in np.linspace(0, min(0.6, 1.2 * whole), 10):
        p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signum)
        _, err = p.communicate(timeout=60)
        text = err.decode()
        outcomes.append((round(delay, 3), p.returncode, text[-300:]))
        assert not _frames_of_ours(text), (delay, text)
        if "Traceback" in text:
            continue  # Python's own start-up, before poolcli's first line (see above)
        # 130 from poolcli; killed by the signal before Python or after poolcli took it
        # (a shell says 128 + signal); 0 when the signal came after the work was done.
        # CPython 3.11 ends with SIGINT, after poolcli's own line and exit, when the
        # KeyboardInterrupt passed through an exec() (dataclasses make their __init__ so).
        assert p.returncode in (130, -signal.SIGINT, -signum, 0), (delay, p.returncode, text)
        lines = text.splitlines()
        assert len(lines) <= 1 and all(ln.startswith("poolcli: interrupted")
                                       for ln in lines), text
        quiet += bool(lines)
    # most signals came while poolcli was starting, and each of those was quiet
    assert quiet >= 5, outcomes


def test_importing_poolcli_imports_nothing_heavy():
    probe = ("import sys, poolcli, poolcli.cli; "
             "print(sorted(m for m in ('numpy', 'PIL', 'typer', 'typing') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60, check=True)
    assert p.stdout.strip() == "[]"


def test_the_public_names_are_the_functions_whatever_was_imported_first():
    probe = ("import poolcli.pool, poolcli.pyramid, poolcli.pipeline, poolcli\n"
             "from poolcli import pool, pyramid, Pipeline, PoolError\n"
             "assert callable(pool) and pool is poolcli.pool is poolcli.pool.__globals__['pool']\n"
             "assert pyramid is poolcli.pyramid and callable(pyramid)\n"
             "assert Pipeline is poolcli.pipeline.Pipeline\n"
             "print(pool([1, 5, 2, 4], 'max', 2))\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[5 4]"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import poolcli

        _ = poolcli.nothing
