"""Issue 9: nothing but poolcli's own lines on standard error, even from C libraries:
libtiff (inside Pillow) wrote "tempfile.tif: Using code not yet in table." for a TIFF
with corrupt compressed data, and tifffile's log records came out as bare lines.

Through the real executable, in one process and in worker processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clitools import run_exe
from PIL import Image


def _corrupt_strips(path: Path) -> None:
    """Overwrite the middle of the image data (the strips), leaving the header whole."""
    with Image.open(path) as im:
        offset, count = im.tag_v2[273][0], im.tag_v2[279][0]
    data = bytearray(path.read_bytes())
    for i in range(offset + count // 4, offset + count // 2, 3):
        data[i] = 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for name, arr, compression in [("lzw_l.tif", rgb[..., 0], "tiff_lzw"),
                                   ("lzw_rgb.tif", rgb, "tiff_lzw"),
                                   ("deflate_rgb.tif", rgb, "tiff_adobe_deflate")]:
        Image.fromarray(arr).save(d / name, compression=compression)
        _corrupt_strips(d / name)
    # and a TIFF whose tags tifffile complains about while it reads (its log records)
    good = d / "tags.tif"
    Image.fromarray(rgb).save(good, compression="tiff_lzw")
    raw = bytearray(good.read_bytes())
    at = raw.find((279).to_bytes(2, "little") + (4).to_bytes(2, "little"))  # StripByteCounts
    raw[at:at + 2] = (65000).to_bytes(2, "little")  # now an unknown tag: no byte counts
    good.write_bytes(bytes(raw))
    return d


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_only_poolcli_lines_on_standard_error(damaged, tmp_path, jobs):
    p = run_exe("max", damaged, "-k", "2", "-o", tmp_path / f"out{jobs}", "-j", jobs,
                cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.splitlines()
    assert not [ln for ln in lines if "tempfile.tif" in ln], p.stderr
    assert lines and all(ln.startswith("poolcli: ") for ln in lines), p.stderr
    failed = [ln for ln in lines if ln.startswith("poolcli: error: ")]
    # each damaged file is one line naming it (or counted with the others)
    assert any("lzw_l.tif" in ln for ln in failed), p.stderr
