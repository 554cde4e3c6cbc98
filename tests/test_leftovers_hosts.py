"""Leftovers are judged by host and process: a shared folder's files written by another
host's process are never removed, whatever its process id means here."""

from __future__ import annotations

import os
import subprocess
import sys

from poolcli.io.atomic import LEFTOVER, atomic_write, host_tag, remove_leftovers


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_only_this_hosts_dead_writers_files_are_removed(tmp_path):
    dead, other = _dead_pid(), f"{host_tag()}x"
    names = {
        "mine": f".a.png.poolcli-{host_tag()}-{dead}.k1.part",
        "old": f".b.png.poolcli-{dead}.k2.part",  # before names carried the host
        "stage": f".c.npy.poolcli-{host_tag()}-{dead}.k3.stage0.npy",
        "elsewhere": f".d.png.poolcli-{other}-{dead}.k4.part",
        "live": f".e.png.poolcli-{host_tag()}-{os.getpid()}.k5.part",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"half")
    removed = sorted(p.name for p in remove_leftovers(tmp_path))
    assert removed == sorted(names[k] for k in ("mine", "old", "stage"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names["elsewhere"], names["live"]])


def test_the_writers_temporary_name_carries_host_and_pid(tmp_path):
    seen = []

    def write(f):
        seen.extend(os.listdir(tmp_path))  # the temporary file, while it is written
        f.write(b"x")

    atomic_write(tmp_path / "out.bin", write)
    m = LEFTOVER.match(seen[0])
    assert m and m["host"] == host_tag() and int(m["pid"]) == os.getpid()
    assert (tmp_path / "out.bin").read_bytes() == b"x"
