"""Peak resident memory of a real child process, measured from a fresh wrapper process.

RUSAGE_CHILDREN reports the largest child a process has waited for, so the measurement
runs in a wrapper whose only child is the command under test.
"""

import subprocess
import sys

_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    "sys.exit(rc)\n"
)


def peak_rss(cmd: list[str], **kwargs) -> int:
    """Run ``cmd`` to completion (it must succeed) and return its peak RSS in bytes."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True,
                         text=True, check=False, **kwargs)
    if out.returncode != 0:
        raise AssertionError(f"{cmd} failed ({out.returncode}): {out.stderr[-2000:]}")
    return int(out.stdout.split()[-1])
