"""Issue 9: images that cannot be read exactly, or are damaged, fail; bombs are described.

Through the real executable.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from clitools import COFFEE, one_error_line, run_exe
from PIL import Image


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _png(width: int, height: int, depth: int, colour: int, raw: bytes) -> bytes:
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def test_frames_that_would_be_dropped_are_refused(tmp_path):
    """An animated GIF or WebP is refused (its first frame alone would drop the others);
    a 16-bit RGB PNG and a multi-page TIFF are read whole (issue 12) instead."""
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:],
                   lossless=True)
    for name, words in (("anim.gif", "gif of 3 frames"), ("anim.webp", "webp of 3 frames")):
        p = run_exe("max", name, "-o", "out" + name[-5:], cwd=tmp_path)
        assert p.returncode == 1 and words in one_error_line(p), p.stderr
        assert not (tmp_path / ("out" + name[-5:])).exists()
    a = np.random.default_rng(0).integers(0, 65536, (8, 8, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + a[i].tobytes() for i in range(8))
    (tmp_path / "rgb16.png").write_bytes(_png(8, 8, 16, 2, raw))
    p = run_exe("max", "rgb16.png", "-k", "1", "-o", "o.npy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), a.astype(np.uint16))


def test_damaged_png_data_fails_the_input(tmp_path):
    data = COFFEE.read_bytes()
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at:at + 4])[0]
    bad_crc = bytearray(data)
    # the CRC itself, the data intact: zlib decodes it, so only a CRC check can see it
    # (a flipped data byte breaks the zlib stream, which af71dcf refused already)
    bad_crc[at + 8 + length] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(bad_crc))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name, words in (("crc.png", "fails its CRC check"), ("cut.png", "truncated PNG")):
        p = run_exe("max", name, "-o", "out.png", cwd=tmp_path)
        assert p.returncode == 1 and words in one_error_line(p), p.stderr
        assert not (tmp_path / "out.png").exists()
        # standard input is checked the same way
        p = run_exe("max", "-", "-o", "out.png", cwd=tmp_path,
                    input=(tmp_path / name).read_bytes())
        assert p.returncode == 1 and words in one_error_line(p)


def test_a_decompression_bomb_is_described_by_info_and_plan_and_refused_by_a_run(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png(40000, 40000, 8, 0, b"\0" * 100))
    p = run_exe("info", "bomb.png", cwd=tmp_path)
    assert p.returncode == 0 and "40000x40000 pixels" in p.stdout.decode(), p.stderr
    p = run_exe("plan", "max:k=2", "bomb.png", cwd=tmp_path)
    assert p.returncode == 0 and "output shape 20000x20000" in p.stdout.decode(), p.stderr
    p = run_exe("max", "bomb.png", "-o", "out.png", cwd=tmp_path)
    line = one_error_line(p)
    # the limit quoted is the one applied (Pillow's own message gives twice it)
    assert p.returncode == 1 and f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels" in line


def test_python_warnings_are_one_line_without_source_paths(tmp_path):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    data[8] = 0xFF  # the IFD's entry count: Pillow warns of corrupt EXIF data and reads on
    (tmp_path / "odd.tif").write_bytes(bytes(data))
    p = run_exe("max", "odd.tif", "-o", "out.png", cwd=tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines, "the damaged file raised no warning: the test lost its subject"
    assert all(ln.startswith("poolcli: ") for ln in lines), p.stderr
    assert "site-packages" not in p.stderr and ".py:" not in p.stderr
