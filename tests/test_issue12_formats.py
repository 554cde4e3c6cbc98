"""Issue 12: TIFF stacks through tifffile and 16-bit PNGs, read and written exactly."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from clitools import one_error_line
from reference import ref_pool

from poolcli.io import png
from poolcli.io.image_read import ImageReadError, read_image

tifffile = pytest.importorskip("tifffile")


def _stack(seed=0, shape=(5, 13, 11)):
    """A hand-made 5-page 16-bit stack (values over the whole uint16 range)."""
    x = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    x[0, 0, 0], x[-1, -1, -1] = 0, 65535
    return x


# --- TIFF stacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["max", "avg", "median", "mode", "min"])
def test_tiff_stack_pooled_in_plane_matches_reference(cli, tmp_path, kind):
    x = _stack()
    src, dest = tmp_path / "s.tif", tmp_path / "o.tif"
    tifffile.imwrite(src, x, photometric="minisblack", resolution=(10.0, 20.0),
                     metadata={"axes": "ZYX"})
    assert cli(kind, src, "-k", 2, "-o", dest).returncode == 0
    with tifffile.TiffFile(dest) as tf:
        got = tf.series[0].asarray()
        assert len(tf.pages) == 5
        assert tf.pages[0].get_resolution() == pytest.approx((5.0, 10.0))
        assert '"shape": [5, 6, 5]' in tf.pages[0].description
    want = ref_pool(x, kind, 2, axes=(1, 2), dtype=np.uint16)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["max", "avg", "sum"])
def test_tiff_stack_pooled_in_3d_against_reference(cli, tmp_path, kind):
    x = _stack(1)
    src, dest = tmp_path / "s.tif", tmp_path / "o.npy"
    tifffile.imwrite(src, x)
    r = cli(kind, src, "--axes", "0,1,2", "-k", "2x3x2", "--ceil-mode", "-o", dest)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(dest), ref_pool(x, kind, (2, 3, 2), axes=(0, 1, 2),
                                                          ceil_mode=True))


def test_bigtiff_rgb16_and_float_samples(cli, tmp_path):
    rgb16 = np.random.default_rng(2).integers(0, 65536, (3, 8, 10, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", rgb16, bigtiff=True, photometric="rgb")
    assert cli("max", tmp_path / "big.tif", "-o", tmp_path / "o.tif").returncode == 0
    got = tifffile.imread(tmp_path / "o.tif")
    np.testing.assert_array_equal(got, ref_pool(rgb16, "max", 2, axes=(1, 2)))
    f = np.random.default_rng(3).standard_normal((4, 6, 6, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f, photometric="minisblack", planarconfig="contig")
    assert cli("avg", tmp_path / "f.tif", "-o", tmp_path / "f_out.tif").returncode == 0
    got = tifffile.imread(tmp_path / "f_out.tif")
    np.testing.assert_allclose(got, ref_pool(f, "avg", 2, axes=(1, 2)).astype(np.float32),
                               rtol=1e-6)


def test_ome_tiff_physical_size_describes_the_output(cli, tmp_path):
    x = _stack(4, (5, 8, 8))
    tifffile.imwrite(tmp_path / "s.ome.tif", x, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25})
    assert cli("avg", tmp_path / "s.ome.tif", "-k", "4x2", "-o",
               tmp_path / "o.ome.tif").returncode == 0
    with tifffile.TiffFile(tmp_path / "o.ome.tif") as tf:
        assert tf.is_ome and tf.series[0].shape == (5, 2, 4)
        assert 'SizeX="4"' in tf.ome_metadata and 'SizeY="2"' in tf.ome_metadata
        assert 'PhysicalSizeX="1.0"' in tf.ome_metadata
        assert 'PhysicalSizeY="1.0"' in tf.ome_metadata


def test_tiff_stack_to_png_is_refused_in_one_line(cli, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", _stack())
    r = cli("max", tmp_path / "s.tif", "-o", tmp_path / "o.png")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "s.tif" in line and "tiff, npy or npz" in line
    assert not (tmp_path / "o.png").exists()


def test_info_reports_every_page(cli, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", _stack())
    r = cli("info", tmp_path / "s.tif")
    assert r.returncode == 0
    assert "5x13x11" in r.stderr + r.stdout.decode() and "5 pages" in r.stderr + r.stdout.decode()


# --- 16-bit PNG ------------------------------------------------------------------------------

MODES16 = {"I;16": (0, 1), "LA;16": (4, 2), "RGB;16": (2, 3), "RGBA;16": (6, 4)}


def _pixels(mode, seed=0, shape=(19, 23)):
    c = MODES16[mode][1]
    x = np.random.default_rng(seed).integers(0, 65536, (*shape, c), dtype=np.uint16)
    x[: shape[0] // 2] //= 257  # smooth rows too, so every filter gets chosen somewhere
    return x[..., 0] if c == 1 else x


def _hand_png(pixels, colour_type, filters=(0, 1, 2, 3, 4)):
    """An independent 16-bit PNG writer: each row with the next filter of ``filters``."""
    h, w = pixels.shape[:2]
    raw = pixels.astype(">u2").reshape(h, -1).view(np.uint8).astype(int)
    bpp = raw.shape[1] // w
    out = bytearray()
    prev = [0] * raw.shape[1]
    for r in range(h):
        f, row = filters[r % len(filters)], list(raw[r])
        out.append(f)
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else b if pb <= pc else c
            pred = (0, a, b, (a + b) // 2, paeth)[f]
            out.append((v - pred) % 256)
        prev = row

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

    return (png.SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type,
                                                        0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("mode", list(MODES16))
def test_png16_every_mode_round_trips_exactly(tmp_path, mode):
    x = _pixels(mode)
    independent = read_image(_hand_png(x, MODES16[mode][0]))
    assert independent.mode == mode and independent.array.dtype == np.uint16
    np.testing.assert_array_equal(independent.array, x)
    p = tmp_path / "a.png"
    with open(p, "wb") as f:
        png.write_png(x, f, mode)
    again = read_image(p)
    assert again.mode == mode
    np.testing.assert_array_equal(again.array, x)


@pytest.mark.parametrize("mode", list(MODES16))
def test_png16_pooled_keeps_16_bits(cli, tmp_path, mode):
    x = _pixels(mode, seed=5)
    (tmp_path / "a.png").write_bytes(_hand_png(x, MODES16[mode][0]))
    r = cli("max", tmp_path / "a.png", "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    got = read_image(tmp_path / "o.png")
    assert got.mode == mode
    np.testing.assert_array_equal(got.array, ref_pool(x, "max", 2, axes=(0, 1)))


def test_png16_avg_without_alpha_matches_reference(cli, tmp_path):
    x = _pixels("RGB;16", seed=6)
    (tmp_path / "a.png").write_bytes(_hand_png(x, 2))
    assert cli("avg", tmp_path / "a.png", "-k", 3, "-o", tmp_path / "o.png").returncode == 0
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").array,
                                  ref_pool(x, "avg", 3, axes=(0, 1), dtype=np.uint16))


def test_png16_rgb_to_tiff_and_back(cli, tmp_path):
    x = _pixels("RGBA;16", seed=7)
    (tmp_path / "a.png").write_bytes(_hand_png(x, 6))
    assert cli("max", tmp_path / "a.png", "-o", tmp_path / "o.tif").returncode == 0
    t = tifffile.imread(tmp_path / "o.tif")
    np.testing.assert_array_equal(t, ref_pool(x, "max", 2, axes=(0, 1)))
    assert cli("min", tmp_path / "o.tif", "-k", 1, "-o", tmp_path / "b.png").returncode == 0
    np.testing.assert_array_equal(read_image(tmp_path / "b.png").array, t)


def test_png16_that_cannot_be_read_exactly_is_refused(cli, tmp_path):
    data = bytearray(_hand_png(_pixels("RGB;16"), 2))
    data[28] = 1  # interlaced
    crc = zlib.crc32(bytes(data[12:29]))
    data[29:33] = struct.pack(">I", crc)
    (tmp_path / "i.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="interlaced"):
        read_image(bytes(data))
    r = cli("max", tmp_path / "i.png", "-o", tmp_path / "o.png")
    assert r.returncode == 1
    assert "i.png" in one_error_line(r) and "interlaced" in one_error_line(r)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64, np.uint32])
def test_stacks_of_every_sample_type_keep_it(cli, tmp_path, dtype):
    x = (np.random.default_rng(8).standard_normal((3, 10, 9)) * 50 + 100).astype(dtype)
    tifffile.imwrite(tmp_path / "s.tif", x, photometric="minisblack")  # 3 pages, not RGB
    assert cli("avg", tmp_path / "s.tif", "-k", 3, "--ceil-mode", "-o",
               tmp_path / "o.tif").returncode == 0
    got = tifffile.imread(tmp_path / "o.tif")
    assert got.dtype == dtype
    want = ref_pool(x, "avg", 3, axes=(1, 2), ceil_mode=True, dtype=dtype)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-12)
    else:
        np.testing.assert_array_equal(got, want)


def test_png16_info_and_plan_read_the_header(cli, tmp_path):
    x = _pixels("RGB;16")
    (tmp_path / "a.png").write_bytes(_hand_png(x, 2))
    r = cli("info", tmp_path / "a.png")
    assert "mode RGB;16" in r.stdout.decode() and "uint16" in r.stdout.decode()
