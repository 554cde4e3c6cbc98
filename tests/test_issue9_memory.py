"""Issue 9: work that cannot fit --memory-limit is refused up front, with the reason.

Through the real executable; each refusal happens before anything big is allocated.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from clitools import EXE, one_error_line, run_exe
from rss import peak_rss


def test_rows_too_long_for_one_chunk_are_refused(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((2, 5 * 10**7), np.uint8))
    p = run_exe("max", "wide.npy", "-o", "out.npy", "--memory-limit", "64MB", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 1 and "one chunk of stage 'max:k=2' needs" in line
    assert "over the memory limit of 64,000,000" in line
    assert not (tmp_path / "out.npy").exists()


def test_a_fortran_order_npy_over_the_limit_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((3000, 3000), np.float32)))
    p = run_exe("max", "f.npy", "-o", "out.npy", "--memory-limit", "32MB", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 1 and "Fortran-order" in line and "C order" in line
    np.save(tmp_path / "c.npy", np.zeros((3000, 3000), np.float32))
    p = run_exe("max", "c.npy", "-o", "out.npy", "--memory-limit", "32MB", cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # the same data in C order is pooled in chunks
    assert np.load(tmp_path / "out.npy").shape == (1500, 1500)


def test_an_npz_zip_bomb_is_refused_from_its_headers(tmp_path):
    n = 300 * 10**6  # 300 MB of zeros in a ~300 KB archive
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("a.npy", "w", force_zip64=True) as member:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False,
                                                    "shape": (n,)})
        member.write(head.getvalue())
        block = bytes(1 << 24)
        for _ in range(n // len(block)):
            member.write(block)
        member.write(bytes(n % len(block)))
    p = run_exe("max", "bomb.npz", "-o", "out.npz", "--memory-limit", "64MB", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 1 and "needs 450,000,000 bytes in memory" in line
    p = run_exe("info", "bomb.npz", cwd=tmp_path)
    assert p.returncode == 0 and "shape 300000000, uint8" in p.stdout.decode()
    # from the headers only: af71dcf said the same after holding the member (330 MiB)
    peak = peak_rss([*EXE, "info", "bomb.npz"], cwd=tmp_path)
    assert peak < 150 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"


def test_standard_input_is_read_within_the_limit(tmp_path):
    data = b"\x93NUMPY" + bytes(3 * 10**6)
    p = run_exe("max", "-", "-o", "out.npy", "--memory-limit", "1MiB", cwd=tmp_path,
                input=data)
    line = one_error_line(p)
    assert p.returncode == 1 and "standard input holds more than the memory limit" in line
    assert "save it to a file" in line


def test_standard_output_of_an_npy_over_the_limit_is_refused_with_a_way_out(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4000, 4000), np.float32))
    p = run_exe("max", "a.npy", "-o", "-", "--memory-limit", "32MB", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 1 and "write a .npy file (not standard output)" in line
    assert p.stdout == b""
