"""Issue 9, checked again: each case here failed on the main the issue was filed against
(af71dcf) or fails on the code before this branch, and the issue's tests did not see it.

docs/issue9-evidence.md maps every item of the issue to its tests. Through the real
executable, except where the item is about the library.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from clitools import EXE, one_error_line, run_exe
from PIL import Image
from rss import peak_rss

MiB = 2**20


def _stderr_is_ours(p) -> None:
    """Every line on standard error is poolcli's own (no library's lines, no traceback)."""
    foreign = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("poolcli")]
    assert not foreign, p.stderr


# item 7 (OverflowError from a TOML integer beyond 64 bits, axes=2**63) --------------------

@pytest.mark.parametrize("text, words", [
    ('[[stage]]\nkind = "max"\nk = 2\ns = 1' + "0" * 30, "stride 1" + "0" * 30 + " is too large"),
    ('[[stage]]\nkind = "max"\nk = 2\naxes = 9223372036854775808', "out of range"),
    ('[[stage]]\nkind = "max"\nk = 2\naxes = [9223372036854775808]', "out of range"),
])
def test_huge_integers_in_a_pipeline_file_are_one_line(tmp_path, text, words):
    # the CLI's own -s/--axes were checked on af71dcf; a pipeline file's were a traceback
    (tmp_path / "p.toml").write_text(text + "\n")
    p = run_exe("plan", "--pipeline-file", "p.toml", "--shape", "8x8", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 2 and words in line and "p.toml" in line


def test_huge_axes_in_a_stage_are_one_line(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = run_exe("run", "max:k=2,axes=9223372036854775808", "a.npy", "-o", "b.npy",
                cwd=tmp_path)
    assert p.returncode == 2 and "out of range" in one_error_line(p)
    assert not (tmp_path / "b.npy").exists()


# items 7 and 10 (the stand-in length: MemoryError, minutes and gigabytes; its number in
# messages; a kernel longer than it refused whatever the input) ----------------------------

def test_a_kernel_far_beyond_a_small_image_is_refused_at_once(tmp_path):
    # af71dcf built (windows x kernel) arrays for a 2**20-long stand-in axis: -k 1000 -s 1
    # ran out of memory, -k 300 -s 1 took 5.6 GiB; the message now names the real input
    Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(tmp_path / "small.png")
    for k in ("300", "1000"):
        args = [*EXE, "max", "small.png", "-k", k, "-s", "1", "-o", "out.png"]
        peak = peak_rss(args, status=2, cwd=tmp_path, timeout=60)
        assert peak < 200 * MiB, f"-k {k}: peak RSS {peak / MiB:.0f} MiB"
        p = run_exe(*args[len(EXE):], cwd=tmp_path, timeout=60)
        assert "use a kernel <= 60" in one_error_line(p)


def test_a_kernel_longer_than_the_stand_in_length_is_planned_on_a_longer_axis(tmp_path):
    # a stage was checked against a 2**20-long stand-in axis, so a kernel longer than that
    # was refused before the input was seen, with the stand-in's numbers cut out of the
    # message ("padded input + 0 + 0); use a kernel <= or pad more")
    p = run_exe("plan", "max:k=2000000", "--shape", "3000000", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "output shape 1" in p.stdout.decode()
    p = run_exe("plan", "max:k=2,d=3000000", "--shape", "8x8", cwd=tmp_path)
    line = one_error_line(p)
    assert p.returncode == 2
    assert "longer than the padded input (8 + 0 + 0); use a kernel <= 8" in line
    assert "1048576" not in line
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    p = run_exe("max", "a.npy", "-k", "2000000", "-o", "b.npy", cwd=tmp_path)
    assert p.returncode == 2
    assert "(4 + 0 + 0); use a kernel <= 4 or pad more" in one_error_line(p)


def test_a_lying_npy_header_costs_nothing(tmp_path):
    # 192 bytes claiming 10**8 x 10**8 float32: af71dcf took 30 s and 2 GB to say so
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (10**8, 10**8)})
    (tmp_path / "liar.npy").write_bytes(buf.getvalue() + bytes(64))
    peak = peak_rss([*EXE, "max", "liar.npy", "-o", "out.npy", "--memory-limit", "64MB"],
                    status=1, cwd=tmp_path, timeout=60)
    assert peak < 64e6 + 64 * MiB, f"peak RSS {peak / MiB:.0f} MiB"
    assert not (tmp_path / "out.npy").exists()


# item 11 (memory on real files) -------------------------------------------------------

@pytest.mark.slow
def test_a_dense_kernel_stays_within_the_limit(tmp_path):
    # 4000x4000 float32, -k 31 -s 1 at 16MB: 619 MiB on af71dcf
    x = np.random.default_rng(0).random((4000, 4000), dtype=np.float32)
    np.save(tmp_path / "a.npy", x)
    peak = peak_rss([*EXE, "max", "a.npy", "-k", "31", "-s", "1", "-o", "out.npy",
                     "--memory-limit", "16MB"], cwd=tmp_path)
    assert peak < 16e6 + 64 * MiB, f"peak RSS {peak / MiB:.0f} MiB"
    out = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert out.shape == (3970, 3970)
    assert np.array_equal(out[:3, :5], [[x[i:i + 31, j:j + 31].max() for j in range(5)]
                                        for i in range(3)])


# item 5 (image data that stop halfway come out black) -----------------------------------

def test_png_image_data_that_end_early_fail_the_input(tmp_path):
    # a complete zlib stream of half the rows, every chunk and CRC right: Pillow fills
    # the other rows with zeros (af71dcf, and this main before the check: exit 0)
    import zlib

    def chunk(ctype: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + ctype + data
                + struct.pack(">I", zlib.crc32(ctype + data)))

    a = np.random.default_rng(0).integers(1, 256, (64, 64), dtype=np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in a)
    for interlace in (0, 1):  # the size an Adam7 image needs is worked out per pass
        head = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, interlace)
        (tmp_path / "half.png").write_bytes(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(raw[: len(raw) // 2])) + chunk(b"IEND", b""))
        p = run_exe("max", "half.png", "-o", "out.png", cwd=tmp_path)
        line = one_error_line(p)
        assert p.returncode == 1 and "half.png" in line and "truncated PNG" in line
        assert "end after 2,080 of the" in line
        assert not (tmp_path / "out.png").exists()
    Image.fromarray(a).save(tmp_path / "whole.png")  # and a whole one still reads
    p = run_exe("max", "whole.png", "-k", "1", "-o", "out.png", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), a)


# item 4, overtaken by issue 12: a multi-page TIFF is read whole ----------------------------

def test_every_page_of_a_tiff_is_pooled(tmp_path):
    # af71dcf pooled the first page alone, exit 0
    pages = [np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8)
             for i in range(3)]
    frames = [Image.fromarray(a) for a in pages]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    p = run_exe("max", "pages.tif", "-o", "out.npy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    want = np.stack(pages).reshape(3, 4, 2, 4, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


# items 5, 7 and 13 for TIFFs read through tifffile (since issue 12) ----------------------

def _damaged_tiff(path, patch: dict[int, tuple[str, int]]) -> None:
    """A 3-page TIFF whose tags are patched in every page: {tag: ("type"|"value", n)}."""
    frames = [Image.fromarray(np.full((8, 8), 10 * i, np.uint8)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    while ifd:
        n = struct.unpack_from("<H", data, ifd)[0]
        for i in range(n):
            at = ifd + 2 + 12 * i
            tag = struct.unpack_from("<H", data, at)[0]
            if tag in patch:
                what, value = patch[tag]
                struct.pack_into("<H", data, at + (2 if what == "type" else 8), value)
        ifd = struct.unpack_from("<I", data, ifd + 2 + 12 * n)[0]
    path.write_bytes(bytes(data))


def test_a_tiff_with_unknown_tag_values_is_a_failed_input(tmp_path):
    # photometric 12345: tifffile gives a bare int, which was an "internal error"
    # (AttributeError) after tifffile's own log lines on standard error
    _damaged_tiff(tmp_path / "bad.tif", {262: ("value", 12345)})
    p = run_exe("max", "bad.tif", "-o", "out.npy", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "bad.tif: cannot read" in p.stderr and "internal error" not in p.stderr
    _stderr_is_ours(p)
    assert not (tmp_path / "out.npy").exists()
    p = run_exe("info", "bad.tif", cwd=tmp_path)
    _stderr_is_ours(p)


def test_tifffile_log_lines_become_warnings(tmp_path):
    # a tag of an unknown data type: tifffile logs it and reads on
    _damaged_tiff(tmp_path / "odd.tif", {284: ("type", 0x3C04)})
    p = run_exe("max", "odd.tif", "-o", "out.npy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "poolcli: warning: TIFF:" in p.stderr and "invalid data type" in p.stderr
    _stderr_is_ours(p)
    assert np.load(tmp_path / "out.npy").shape == (3, 4, 4)


def test_an_npz_member_without_a_name_is_a_failed_input(tmp_path):
    # found by tests/fuzz/fuzz_inputs.py: zipfile fails on such a member (IndexError),
    # which was an "internal error" in max and info
    (tmp_path / "noname.npz").write_bytes(_NONAME_NPZ)
    for args in (["max", "noname.npz", "-o", "out.npz"], ["info", "noname.npz"]):
        p = run_exe(*args, cwd=tmp_path)
        line = one_error_line(p)
        assert p.returncode == 1 and "noname.npz" in line and "has no name" in line
    assert not (tmp_path / "out.npz").exists()


_NONAME_NPZ = bytes.fromhex(
    "504b03042d00000008000000210020e078ceffffffffffffffff05001400612e6e707901"
    "0010006002000000000000c7000000000000009dc8bf4ec2601486f1c3469c1c181818be"
    "18e2574c438a201428b420a2fca9717170320d9430104a5ae2424cb8076ed44ba0a4cfe2"
    "ca597ee7794fef9ffec7574e7ee4a09761b28875476967656b53e95514efe360fb1dc5cb"
    "f0b28f834d12a67bb20e7661da46d35435ab62aa5f75edddc8bffb7379bc8c3cde62018b"
    "5842857758c67b34f0014daca285357cc43a36f0099bd8421bdbd8c12e3ad8c33ebae865"
    "1e510634ca904679a6514634ca0b8d32a6515e6994371a6542a34c6994198d32a7517cda"
    "f7ce504b01022d032d00000008000000210020e078cec700000060020000050000000000"
    "000000000000800100000000002e6e7079504b0506000000000100010033000000fe0000"
    "000000"
)

