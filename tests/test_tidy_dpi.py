"""Tidy item 2: every format's resolution metadata keeps the physical size: the written
dpi is the input's divided by the stride along each axis (x and y apart)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from poolcli.io.image_read import read_image

# format -> how close a written dpi reads back (JPEG's JFIF density is a whole number,
# PNG and BMP store pixels per metre)
FORMATS = {"png": 0.02, "jpeg": 0.5, "bmp": 0.02, "tiff": 1e-6}
DPI = (300.0, 150.0)  # non-square pixels: x and y are scaled apart


def _photo(path, fmt: str, dpi=DPI) -> None:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    Image.fromarray(px).save(path, {"jpeg": "JPEG"}.get(fmt, fmt.upper()), dpi=dpi)
    got = Image.open(path).info["dpi"]
    assert got == pytest.approx(dpi, abs=FORMATS[fmt])


@pytest.mark.parametrize("fmt", FORMATS)
def test_dpi_divided_by_the_stride(cli, tmp_path, fmt):
    src, out = tmp_path / f"a.{fmt}", tmp_path / f"o.{fmt}"
    _photo(src, fmt)
    r = cli("max", src, "-k", 2, "-o", out)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (18, 12)
        assert im.info["dpi"] == pytest.approx((150, 75), abs=FORMATS[fmt])


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff"])
def test_dpi_after_a_pipeline_of_two_stages_per_axis(cli, tmp_path, fmt):
    src, out = tmp_path / f"a.{fmt}", tmp_path / f"o.{fmt}"
    _photo(src, fmt)
    # x: stride 2 then 3 (6 in all); y: stride 3 then 1 (3 in all)
    r = cli("run", "max:k=3x2 | avg:k=1x3", src, "-o", out)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (6, 8)
        assert im.info["dpi"] == pytest.approx((300 / 6, 150 / 3), abs=FORMATS[fmt])


def test_tiff_resolution_tags_read_by_tifffile(cli, tmp_path):
    src, out = tmp_path / "a.tif", tmp_path / "o.tif"
    _photo(src, "tiff")
    r = cli("max", src, "-k", 2, "-o", out)
    assert r.returncode == 0, r.stderr
    with tifffile.TiffFile(out) as tf:
        page = tf.pages[0]
        assert page.get_resolution() == pytest.approx((150, 75))
        assert int(page.resolutionunit) == 2  # inch


def test_a_sixteen_bit_tiff_keeps_its_physical_size(cli, tmp_path):
    # a 16-bit grey TIFF goes through tifffile's writer, not Pillow's
    src, out = tmp_path / "a.tif", tmp_path / "o.tif"
    tifffile.imwrite(src, np.arange(24 * 36, dtype=np.uint16).reshape(24, 36),
                     resolution=(300, 150), resolutionunit=2)
    r = cli("avg", src, "-k", 3, "-o", out)
    assert r.returncode == 0, r.stderr
    with tifffile.TiffFile(out) as tf:
        assert tf.pages[0].get_resolution() == pytest.approx((100, 50))


def test_pyramid_levels_as_files_carry_the_dpi_of_their_grid(cli, tmp_path):
    src = tmp_path / "a.png"
    _photo(src, "png")
    r = cli("pyramid", src, "--levels", 2, "-o", tmp_path / "lv")
    assert r.returncode == 0, r.stderr
    for i in range(3):
        dpi = read_image(tmp_path / f"lv_{i}.png").info["dpi"]
        assert dpi == pytest.approx((300 / 2**i, 150 / 2**i), abs=0.02), i


def test_no_dpi_stays_no_dpi(cli, tmp_path):
    src, out = tmp_path / "a.png", tmp_path / "o.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(src)
    r = cli("avg", src, "-k", 2, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "dpi" not in Image.open(out).info
