"""Issue 9: hostile and lying inputs and absurd options get one line, never a traceback.

Through the real executable (the library for pool(x, kernel=())).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from clitools import one_error_line, run_exe

from poolcli import PoolError, pool


def _header_only(shape, descr="<f4", tail=b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + tail


def test_toml_types_are_checked(tmp_path):
    (tmp_path / "p.toml").write_text('[[stage]]\nkind = "max"\nk = 2\nceil = "false"\n')
    p = run_exe("plan", "--pipeline-file", "p.toml", "--shape", "5x5", cwd=tmp_path)
    assert p.returncode == 2
    assert 'ceil = "false" is not allowed; use true or false' in one_error_line(p)
    (tmp_path / "p.toml").write_text('[[stage]]\nkind = "max"\nk = 2\nceil = false\n')
    p = run_exe("plan", "--pipeline-file", "p.toml", "--shape", "5x5", cwd=tmp_path)
    assert p.returncode == 0 and "output shape 2x2" in p.stdout.decode()


@pytest.mark.parametrize("text, words", [
    ("stage = [1, 2]", "needs [[stage]] tables"),
    ('[[stage]]\nkind = "max"\nout = []', "out = [] is not allowed"),
    ('[[stage]]\nkind = "max"\nk = 1' + "0" * 30, "too large"),
    ('[[stage]]\nkind = "max"\nk = ' + "[" * 3000 + "]" * 3000, "not valid TOML"),
    ('[[stage]]\nkind = "avg"\ndivisor = nan', "finite"),
])
def test_toml_mistakes_are_one_line(tmp_path, text, words):
    (tmp_path / "p.toml").write_text(text + "\n")
    p = run_exe("plan", "--pipeline-file", "p.toml", "--shape", "8x8", cwd=tmp_path)
    assert p.returncode == 2 and words in one_error_line(p)
    assert "p.toml" in one_error_line(p)


def test_a_toml_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "p.toml").write_bytes(b'[[stage]]\nkind = "\xff"\n')
    p = run_exe("plan", "--pipeline-file", "p.toml", "--shape", "8x8", cwd=tmp_path)
    assert p.returncode == 2
    assert "pipeline file p.toml: not UTF-8" in one_error_line(p)


@pytest.mark.parametrize("args, words", [
    (["--divisor", "nan"], "finite"),
    (["--divisor", "inf"], "finite"),
    (["-s", str(10**30)], "too large"),
    (["-p", str(2**64)], "too large"),
    (["--output-size", str(2**63)], "too large"),
    (["--axes", str(2**63)], "out of range"),
])
def test_absurd_numbers_are_one_line(tmp_path, args, words):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    kind = "avg" if "--divisor" in args else "max"
    p = run_exe(kind, "a.npy", "-o", "b.npy", *args, cwd=tmp_path)
    assert p.returncode == 2 and words in one_error_line(p)
    assert not (tmp_path / "b.npy").exists()


def test_damaged_npy_headers_fail_their_input_and_the_batch_goes_on(tmp_path):
    good = np.arange(16.0).reshape(4, 4)
    np.save(tmp_path / "good.npy", good)
    unclosed = _header_only((3, 4)).replace(b"(3, 4)", b"(3, 4 ")
    (tmp_path / "token.npy").write_bytes(unclosed + b"\0" * 48)
    (tmp_path / "negative.npy").write_bytes(_header_only((-3, 4), tail=b"\0" * 48))
    (tmp_path / "liar.npy").write_bytes(_header_only((10**8, 10**8), tail=b"\0" * 64))
    p = run_exe("max", ".", "-o", "out", "--memory-limit", "64MB", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 3, p.stderr
    assert any("token.npy: cannot read: not a valid .npy file" in ln for ln in lines)
    assert any("negative.npy" in ln and "negative length" in ln for ln in lines)
    assert any("liar.npy" in ln and "cut short" in ln for ln in lines)
    assert not any("kernel" in ln for ln in lines)
    assert np.array_equal(np.load(tmp_path / "out" / "good.npy"), pool(good, "max", 2))
    for name in ("token.npy", "negative.npy", "liar.npy"):
        p = run_exe("info", name, cwd=tmp_path)
        assert p.returncode == 1 and name in one_error_line(p)


def test_info_reads_only_the_headers_of_an_npz(tmp_path):
    # a member that claims 10**12 bytes: info must not allocate them
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as zf:
        zf.writestr("a.npy", _header_only((10**6, 10**6), "|u1", b"\0" * 100))
    p = run_exe("info", "lie.npz", cwd=tmp_path)
    assert p.returncode == 1 and "cut short" in one_error_line(p)
    np.savez(tmp_path / "ok.npz", x=np.zeros((3, 5), np.int16), y=np.zeros(2))
    p = run_exe("info", "ok.npz", cwd=tmp_path)
    assert p.returncode == 0
    assert "shape 3x5, int16" in p.stdout.decode() and "2 arrays: x, y" in p.stdout.decode()


def test_planning_costs_nothing_per_window(tmp_path):
    # validation used to build (windows x kernel) arrays: terabytes for these shapes
    p = run_exe("plan", "max:k=300,s=1,p=100", "--shape", f"{10**9}x{10**9}", timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"output shape {10**9 - 99}x{10**9 - 99}" in p.stdout.decode()
    p = run_exe("plan", "median:k=3,s=5,d=4", "--shape", f"{10**12}", "--axes", "0",
                timeout=60)
    assert p.returncode == 0, p.stderr
    p = run_exe("plan", f"max:out={10**12 - 1}", "--shape", f"{10**12}", "--axes", "0",
                timeout=60)
    assert p.returncode == 0, p.stderr


def test_an_empty_kernel_is_a_pool_error():
    with pytest.raises(PoolError, match=r"kernel \(\) is empty"):
        pool(np.zeros((4, 4)), kernel=())
    with pytest.raises(PoolError, match=r"output_size \(\) is empty"):
        pool(np.zeros((4, 4)), output_size=())


def test_indices_with_channels_after_the_pooled_axis():
    # found by tests/fuzz/fuzz_inputs.py: the indices' layout was guessed from the
    # output, whose pooled axis of length 1 merges where the input's axes did not
    x = np.random.default_rng(0).random((2, 2, 2)).astype(np.float32)
    out, idx = pool(x, "max", 2, axes=1, return_indices=True)
    assert idx.shape == out.shape == (2, 1, 2)
    assert np.array_equal(np.take_along_axis(x, idx, axis=1), out)
    assert np.array_equal(out, x.max(axis=1, keepdims=True))
