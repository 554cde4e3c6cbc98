"""Issue 9: outputs are regular files written whole, never an input, never standard input's file.

Through the real executable, as an attacker or a careless user would run it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from clitools import COFFEE, EXE, files_under, one_error_line, run_exe


def test_report_file_never_replaces_an_input(tmp_path):
    shutil.copy(COFFEE, tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    p = run_exe("max", "a.png", "-o", "b.png", "--report-file", "a.png", cwd=tmp_path)
    assert p.returncode == 2
    assert "--report-file a.png is an input" in one_error_line(p)
    assert (tmp_path / "a.png").read_bytes() == before
    assert not (tmp_path / "b.png").exists()  # refused before any work
    # with --overwrite too: an input is never an output
    p = run_exe("max", "a.png", "-o", "b.png", "--report-file", "a.png", "--overwrite",
                cwd=tmp_path)
    assert p.returncode == 2 and (tmp_path / "a.png").read_bytes() == before


def test_report_file_is_not_replaced_without_overwrite(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    (tmp_path / "r.json").write_text("keep me")
    p = run_exe("max", "a.npy", "-o", "b.npy", "--report-file", "r.json", cwd=tmp_path)
    assert p.returncode == 2 and "r.json exists" in one_error_line(p)
    assert (tmp_path / "r.json").read_text() == "keep me"
    p = run_exe("max", "a.npy", "-o", "b.npy", "--report-file", "r.json", "--overwrite",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert '"ok": 1' in (tmp_path / "r.json").read_text()
    assert files_under(tmp_path) == ["a.npy", "b.npy", "r.json"]  # no temporary left


def test_report_file_that_is_also_the_output_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = run_exe("max", "a.npy", "-o", "b.npy", "--report-file", "b.npy", cwd=tmp_path)
    assert p.returncode == 2 and "also an output" in one_error_line(p)


@pytest.mark.parametrize("target", ["fifo", "symlink"])
def test_output_that_is_not_a_regular_file_is_refused(tmp_path, target):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    (tmp_path / "real.npy").write_bytes(b"x")
    out = tmp_path / "o.npy"
    if target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to(tmp_path / "real.npy")
    p = run_exe("max", "a.npy", "-o", out, "--overwrite", cwd=tmp_path, timeout=30)
    line = one_error_line(p)
    assert p.returncode == 2
    assert ("FIFO" in line) if target == "fifo" else ("symbolic link" in line)
    assert (out.is_fifo() if target == "fifo" else out.is_symlink())
    assert (tmp_path / "real.npy").read_bytes() == b"x"


def test_report_file_that_is_a_fifo_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    os.mkfifo(tmp_path / "r.json")
    p = run_exe("max", "a.npy", "-o", "b.npy", "--report-file", "r.json", "--overwrite",
                cwd=tmp_path, timeout=30)
    assert p.returncode == 2 and "FIFO" in one_error_line(p)
    assert (tmp_path / "r.json").is_fifo()


def _device(path) -> None:
    """A twin of /dev/null at ``path``: the test never risks the machine's own (run against
    code that replaces a device, it would leave /dev/null a regular file for everyone)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        pytest.skip("making a device node needs root")


def test_a_device_is_never_replaced_even_as_root(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    _device(tmp_path / "null")
    for args in (["-o", "null", "--overwrite"],
                 ["-o", "b.npy", "--report-file", "null", "--overwrite"]):
        p = run_exe("max", "a.npy", *args, cwd=tmp_path)
        assert p.returncode == 2 and "device" in one_error_line(p)
        assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)
    assert not (tmp_path / "b.npy").exists()


def test_standard_input_file_is_never_the_output(tmp_path):
    shutil.copy(COFFEE, tmp_path / "s.png")
    before = (tmp_path / "s.png").read_bytes()
    with open(tmp_path / "s.png", "rb") as f:
        p = subprocess.run([*EXE, "max", "-", "-o", "s.png", "--overwrite"], stdin=f,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "is an input" in p.stderr and "Traceback" not in p.stderr
    assert (tmp_path / "s.png").read_bytes() == before
    # a hard link to an input is that input too
    os.link(tmp_path / "s.png", tmp_path / "h.png")
    p = run_exe("max", "s.png", "-o", "h.png", "--overwrite", cwd=tmp_path)
    assert p.returncode == 2 and (tmp_path / "h.png").read_bytes() == before


def test_a_pipe_closed_early_is_a_failed_output(tmp_path):
    shutil.copy(COFFEE, tmp_path / "a.png")
    # -k 1 keeps the full size: far more than one pipe buffer
    p = subprocess.run(f"{sys.executable} -m poolcli max a.png -k 1 -o - --report json "
                       "2>err.txt | head -c1 >/dev/null; echo ${PIPESTATUS[0]}",
                       shell=True, executable="bash", cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    err = (tmp_path / "err.txt").read_text()
    assert p.stdout.strip() == "1", err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "standard output was closed" in err
    assert '"status": "error"' in err and '"ok": 0' in err


def test_a_failed_write_names_the_output_not_the_temporary_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
                          capture_output=True).returncode != 0:
            pytest.skip("root needs a read-only tmpfs for this test")
        undo = ["umount", str(ro)]
    else:
        os.chmod(ro, 0o555)
        undo = ["chmod", "755", str(ro)]
    try:
        p = run_exe("max", "a.npy", "-o", "ro/b.npy", cwd=tmp_path)
    finally:
        subprocess.run(undo, check=False)
    line = one_error_line(p)
    assert p.returncode == 1 and "ro/b.npy" in line and ".part" not in line


def test_a_fifo_input_is_refused_and_a_folder_never_blocks_on_one(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    os.mkfifo(tmp_path / "f.npy")
    p = run_exe("max", "f.npy", "-o", "out.npy", cwd=tmp_path, timeout=30)
    assert p.returncode == 1 and "FIFO" in one_error_line(p)
    p = run_exe("max", ".", "-o", "out", cwd=tmp_path, timeout=30)
    assert p.returncode == 0, p.stderr
    assert files_under(tmp_path / "out") == ["a.npy"]
    p = run_exe("info", "f.npy", cwd=tmp_path, timeout=30)
    assert p.returncode == 1 and "FIFO" in one_error_line(p)
    p = run_exe("plan", "max:k=2", "f.npy", cwd=tmp_path, timeout=30)
    assert p.returncode == 1 and "FIFO" in one_error_line(p)


def test_a_full_disk_is_said_once_then_counted(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(full)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs a small tmpfs (root)")
    try:
        (tmp_path / "in").mkdir()
        for i in range(20):
            np.save(tmp_path / "in" / f"{i:02}.npy", np.random.default_rng(i).random((99, 99)))
        p = run_exe("max", "in", "-k", "1", "-o", "full/out", cwd=tmp_path)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("poolcli: error:")]
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert len(errors) == 2, p.stderr
        assert errors[0].endswith("No space left on device") and "full/out/" in errors[0]
        assert ".part" not in p.stderr
        assert "more inputs failed the same way: No space left on device" in errors[1]
        assert not [q for q in (full / "out").iterdir() if q.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(full)], check=False)
