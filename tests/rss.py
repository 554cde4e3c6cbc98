"""Helpers for memory tests: a large .npy made without holding it, and the peak RSS of a
real child process.

RUSAGE_CHILDREN reports the largest child a process has waited for, so the measurement
runs in a wrapper whose only child is the command under test.
"""

import subprocess
import sys

import numpy as np

_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    "sys.exit(rc)\n"
)


def peak_rss(cmd: list[str], status: int = 0, **kwargs) -> int:
    """Run ``cmd`` to completion (it must exit with ``status``, success by default: a
    refusal is measured too) and return its peak RSS in bytes."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True,
                         text=True, check=False, **kwargs)
    if out.returncode != status:
        raise AssertionError(f"{cmd} exited {out.returncode}, not {status}: "
                             f"{out.stderr[-2000:]}")
    return int(out.stdout.split()[-1])


def make_big_npy(path, rows: int = 16384, cols: int = 16384) -> None:
    """A float32 .npy of random normals (1 GiB by default), written a band at a time."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    for r in range(0, rows, 2048):
        n = min(2048, rows - r)
        arr[r:r + n] = np.random.default_rng(r).standard_normal((n, cols), dtype=np.float32)
    arr.flush()
    del arr
