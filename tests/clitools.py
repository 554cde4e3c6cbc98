"""Running poolcli from tests: in this process (fast) or as the real executable."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from poolcli.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
COFFEE = EXAMPLES / "coffee.png"
EXE = [sys.executable, "-m", "poolcli"]


@dataclass
class Result:
    """What a run did: exit status, standard output (bytes), standard error (text)."""

    args: list[str]
    returncode: int
    stdout: bytes
    stderr: str


def run_cli(*args, cwd=None, input: bytes | None = None) -> Result:
    """poolcli's main() in this process, with its own standard streams and folder.

    The same code as the executable runs, less the interpreter's start-up; the streams are
    not terminals, as in a pipe.
    """
    argv = [str(a) for a in args]
    out, err = io.BytesIO(), io.BytesIO()
    streams = (io.TextIOWrapper(io.BytesIO(input or b""), encoding="utf-8"),
               io.TextIOWrapper(out, encoding="utf-8", write_through=True),
               io.TextIOWrapper(err, encoding="utf-8", write_through=True))
    saved, here = (sys.stdin, sys.stdout, sys.stderr), os.getcwd()
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        if cwd is not None:
            os.chdir(cwd)
        code = main(argv)
    finally:
        for s in streams[1:]:
            s.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(here)
    return Result(argv, code, out.getvalue(), err.getvalue().decode())


def run_exe(*args, cwd=None, input: bytes | None = None, timeout: float = 120) -> Result:
    """The real executable in a subprocess (for pipes, signals, workers and start-up)."""
    argv = [str(a) for a in args]
    p = subprocess.run([*EXE, *argv], cwd=cwd, input=input, capture_output=True,
                       timeout=timeout)
    return Result(argv, p.returncode, p.stdout, p.stderr.decode())


def one_error_line(p: Result) -> str:
    """The one line a user's mistake gets (and no traceback)."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("poolcli: error:"), lines[0]
    return lines[0]


def error_lines(p: Result) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("poolcli: error:")]


def files_under(folder: Path) -> list[str]:
    return sorted(str(q.relative_to(folder)) for q in folder.rglob("*") if not q.is_dir())


def rgb(path: Path, seed: int = 0, size=(30, 40)) -> np.ndarray:
    """A random RGB image saved at ``path`` (its format from the suffix); returns its pixels."""
    a = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return a
