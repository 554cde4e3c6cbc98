"""Worker processes end with the process that started them, even when it is killed.

A SIGKILL gives a parent no chance to stop its children: without this, the fork server
and its workers outlive a killed poolcli, holding the terminal's pipes open (a shell
pipeline never ends) and writing files nobody asked for any more.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# multiprocessing's scratch folder (the fork server's socket), named so that a later run
# can remove one that a killed run left behind
_SCRATCH = re.compile(r"^pymp-poolcli-(?P<pid>\d+)-")


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux; elsewhere a
    no-op). Called first thing in the fork server and in every worker."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent == 1 or os.getppid() != parent:
        os._exit(1)  # the parent ended before the request was made


def own_scratch_folder() -> None:
    """Give multiprocessing a scratch folder named with this process's id, removed at
    exit like its own (which is named ``pymp-XXXX`` and cannot be told apart)."""
    import multiprocessing
    from multiprocessing import util

    config = multiprocessing.current_process()._config
    if config.get("tempdir") is not None:
        return
    folder = tempfile.mkdtemp(prefix=f"pymp-poolcli-{os.getpid()}-")
    util.Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True},
                  exitpriority=-100)
    config["tempdir"] = folder


def remove_dead_scratch_folders() -> list[str]:
    """Remove scratch folders of poolcli runs that were killed; returns their paths."""
    removed = []
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        m = _SCRATCH.match(name)
        if m is None or _alive(int(m["pid"])):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(os.path.join(root, name))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
