"""Images: every mode survives read -> write -> read exactly; metadata, EXIF, errors, alpha."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from poolcli.image import premultiplied, unpremultiply
from poolcli.io.image_read import ImageReadError, LoadedImage, read_image
from poolcli.io.image_write import to_image_dtype, write_image
from poolcli.io.modes import MODE_DTYPES
from poolcli.io.sniff import (
    ARRAY_SUFFIXES,
    IMAGE_SUFFIXES,
    format_from_suffix,
    sniff_format,
)

RNG = np.random.default_rng(1234)
H, W = 7, 10  # odd and unequal, so a transposed array cannot pass for the original


def _pixels(mode: str) -> np.ndarray:
    """Random pixels covering each dtype's extremes."""
    if mode == "1":
        return RNG.random((H, W)) < 0.5
    if mode == "I;16":
        a = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
        a[0, :2] = (0, 65535)
        return a
    if mode == "I":
        a = RNG.integers(-(2**31), 2**31 - 1, (H, W), dtype=np.int32)
        a[0, :2] = (-(2**31), 2**31 - 1)
        return a
    if mode == "F":
        a = RNG.standard_normal((H, W)).astype(np.float32) * 1e6
        a[0, :3] = (-0.0, np.float32(1e-30), np.float32(3.4e38))
        return a
    shape = (H, W) if mode == "L" else (H, W, {"LA": 2, "RGB": 3, "RGBA": 4}[mode])
    a = RNG.integers(0, 256, shape, dtype=np.uint8)
    a.flat[:2] = (0, 255)
    if mode in ("LA", "RGBA"):
        a[1, :3, -1] = 0  # fully transparent pixels whose colour must survive too
        a[1, :3, 0] = (1, 128, 255)
    return a


def _save(array: np.ndarray, path, fmt: str, **params) -> None:
    if array.dtype == np.uint16:
        img = Image.frombytes(
            "I;16", (array.shape[1], array.shape[0]), array.astype("<u2").tobytes()
        )
    else:
        img = Image.fromarray(array)
    img.save(path, format=fmt, **params)


def _round_trip(tmp_path, mode: str, fmt: str, suffix: str, **params) -> None:
    """Pillow writes the file; poolcli reads, writes and reads it again: all equal."""
    expected = _pixels(mode)
    src = tmp_path / f"src{suffix}"
    _save(expected, src, fmt, **params)
    first = read_image(src)
    assert first.mode == mode
    assert first.array.dtype == MODE_DTYPES[mode]
    np.testing.assert_array_equal(first.array, expected)
    out = tmp_path / f"out{suffix}"
    write_image(first.array, out, first)
    second = read_image(out)
    assert (second.mode, second.format) == (mode, first.format)
    assert second.array.dtype == expected.dtype
    np.testing.assert_array_equal(second.array, expected)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "1", "I;16"])
def test_png_round_trip_is_exact(tmp_path, mode):
    _round_trip(tmp_path, mode, "PNG", ".png")


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "RGB", "L", "LA", "RGBA", "1"])
def test_tiff_round_trip_is_exact(tmp_path, mode):
    _round_trip(tmp_path, mode, "TIFF", ".tif")


@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
def test_bmp_round_trip_is_exact(tmp_path, mode):
    _round_trip(tmp_path, mode, "BMP", ".bmp")


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_lossless_round_trip_is_exact(tmp_path, mode):
    # RGBA includes fully transparent pixels whose colour libwebp would otherwise drop
    _round_trip(tmp_path, mode, "WEBP", ".webp", lossless=True, exact=True)


def _palette_image(transparent: bool) -> tuple[Image.Image, np.ndarray]:
    palette = RNG.integers(0, 256, (40, 3), dtype=np.uint8)
    index = RNG.integers(0, 40, (H, W), dtype=np.uint8)
    img = Image.frombytes("P", (W, H), index.tobytes())
    img.putpalette(palette.tobytes())
    rgb = palette[index]
    if not transparent:
        return img, rgb
    img.info["transparency"] = 3
    alpha = np.where(index == 3, 0, 255).astype(np.uint8)[..., None]
    return img, np.concatenate([rgb, alpha], axis=2)


@pytest.mark.parametrize("transparent", [False, True])
def test_png_palette_becomes_rgb_or_rgba_and_round_trips(tmp_path, transparent):
    img, expected = _palette_image(transparent)
    src = tmp_path / "p.png"
    img.save(src, transparency=3) if transparent else img.save(src)
    loaded = read_image(src)
    assert loaded.mode == ("RGBA" if transparent else "RGB")
    assert loaded.alpha is transparent
    np.testing.assert_array_equal(loaded.array, expected)
    write_image(loaded.array, tmp_path / "out.png", loaded)
    again = read_image(tmp_path / "out.png")
    assert again.mode == loaded.mode
    np.testing.assert_array_equal(again.array, expected)


@pytest.mark.parametrize("transparent", [False, True])
def test_gif_round_trip_is_exact(tmp_path, transparent):
    img, expected = _palette_image(transparent)
    src = tmp_path / "p.gif"
    img.save(src, transparency=3) if transparent else img.save(src)
    loaded = read_image(src)
    assert loaded.format == "gif"
    np.testing.assert_array_equal(loaded.array[..., :3], expected[..., :3])
    write_image(loaded.array, tmp_path / "out.gif", loaded)
    again = read_image(tmp_path / "out.gif")
    assert again.mode == loaded.mode
    if transparent:
        # GIF keeps no colour under a transparent pixel; only the opaque ones must match
        opaque = expected[..., 3] == 255
        np.testing.assert_array_equal(again.array[..., 3], expected[..., 3])
        np.testing.assert_array_equal(again.array[opaque], expected[opaque])
    else:
        np.testing.assert_array_equal(again.array, expected)


def test_gif_keeps_partial_alpha_as_on_or_off(tmp_path):
    like = LoadedImage(np.zeros((1, 3, 4), np.uint8), "RGBA", "gif")
    pixels = np.array([[[10, 20, 30, 127], [10, 20, 30, 128], [200, 1, 2, 255]]], np.uint8)
    write_image(pixels, tmp_path / "a.gif", like)
    back = read_image(tmp_path / "a.gif").array
    np.testing.assert_array_equal(back[0, :, 3], [0, 255, 255])
    np.testing.assert_array_equal(back[0, 1:, :3], [[10, 20, 30], [200, 1, 2]])


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_keeps_shape_and_mode(tmp_path, mode):
    expected = _pixels(mode)
    _save(expected, tmp_path / "a.jpg", "JPEG")
    loaded = read_image(tmp_path / "a.jpg")
    assert (loaded.mode, loaded.format, loaded.array.shape) == (mode, "jpeg", expected.shape)
    write_image(loaded.array[::2, ::2], tmp_path / "b.jpg", loaded, quality=95)
    again = read_image(tmp_path / "b.jpg")
    assert (again.mode, again.array.shape) == (mode, expected[::2, ::2].shape)
    # lossy, but close at quality 95
    diff = np.abs(again.array.astype(int) - loaded.array[::2, ::2].astype(int))
    assert diff.mean() < 20


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (W, H), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    loaded = read_image(tmp_path / "c.jpg")
    assert loaded.mode == "RGB" and loaded.array.shape == (H, W, 3)
    r, g, b = loaded.array.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60  # cyan-free, full magenta+yellow is red


def test_big_endian_16_bit_tiff_is_native_uint16(tmp_path):
    expected = _pixels("I;16")
    Image.frombytes("I;16B", (W, H), expected.astype(">u2").tobytes()).save(tmp_path / "b.tif")
    loaded = read_image(tmp_path / "b.tif")
    assert loaded.mode == "I;16" and loaded.array.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(loaded.array, expected)


def test_lzw_tiff_compression_is_kept(tmp_path):
    _save(_pixels("L"), tmp_path / "a.tif", "TIFF", compression="tiff_lzw")
    loaded = read_image(tmp_path / "a.tif")
    write_image(loaded.array, tmp_path / "b.tif", loaded)
    with Image.open(tmp_path / "b.tif") as im:
        assert im.info["compression"] == "tiff_lzw"


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "poolcli test camera"  # Make, which must survive
    return exif


def test_exif_orientation_6_is_applied_to_a_jpeg(tmp_path):
    # left half black, right half white, in blocks of 16 so JPEG keeps them clean
    stored = np.zeros((32, 64), np.uint8)
    stored[:, 32:] = 255
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=_exif(6), quality=95)
    loaded = read_image(tmp_path / "o.jpg")
    # orientation 6: the stored image is shown turned 90 degrees clockwise
    expected = np.rot90(stored, k=-1)
    assert loaded.array.shape == expected.shape == (64, 32)
    assert np.abs(loaded.array.astype(int) - expected).max() < 40
    assert loaded.array[:32].mean() < 30 and loaded.array[32:].mean() > 225


def test_exif_orientation_is_reset_to_1_and_other_tags_survive(tmp_path):
    stored = _pixels("RGB")
    Image.fromarray(stored).save(tmp_path / "o.png", exif=_exif(8))
    loaded = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(loaded.array, np.rot90(stored, k=1))
    write_image(loaded.array, tmp_path / "out.png", loaded)
    with Image.open(tmp_path / "out.png") as im:
        exif = im.getexif()
        assert exif[0x0112] == 1
        assert exif[0x010F] == "poolcli test camera"
    # reading the output again does not turn it a second time
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").array, loaded.array)


def test_tiff_layout_tags_do_not_leak_into_a_smaller_output(tmp_path):
    big = _pixels("L")
    Image.fromarray(big).save(tmp_path / "a.tif", exif=_exif(3), dpi=(300, 300))
    loaded = read_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(loaded.array, np.rot90(big, k=2))
    small = loaded.array[::2, ::2]
    write_image(small, tmp_path / "b.tif", loaded)
    again = read_image(tmp_path / "b.tif")
    np.testing.assert_array_equal(again.array, small)
    assert again.info["dpi"] == pytest.approx((300, 300))


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("WEBP", ".webp")]
)
def test_icc_profile_and_dpi_survive(tmp_path, fmt, suffix):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    params = {"icc_profile": icc}
    if fmt != "WEBP":
        params["dpi"] = (150, 150)
    Image.fromarray(_pixels("RGB")).save(tmp_path / f"a{suffix}", format=fmt, **params)
    loaded = read_image(tmp_path / f"a{suffix}")
    assert loaded.info["icc_profile"] == icc
    write_image(loaded.array, tmp_path / f"b{suffix}", loaded)
    with Image.open(tmp_path / f"b{suffix}") as im:
        assert im.info.get("icc_profile") == icc
        if fmt != "WEBP":
            assert im.info["dpi"] == pytest.approx((150, 150), abs=0.1)


def test_decompression_bomb_over_pillows_limit_is_refused(tmp_path, monkeypatch):
    Image.new("L", (200, 100)).save(tmp_path / "big.png")
    # between the limit and twice it Pillow only warns; that must refuse too
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)
    with pytest.raises(ImageReadError, match=r"20,000 pixels is over the limit of 15,000"):
        read_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # past twice: Pillow's error
    # the limit quoted is the one applied, not Pillow's twice it (issue 9)
    with pytest.raises(ImageReadError, match=r"20,000 pixels is over the limit of 5,000"):
        read_image(tmp_path / "big.png")


def test_max_pixels_sets_the_limit(tmp_path):
    Image.new("L", (200, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match=r"200x100 = 20,000 pixels .* limit of 19,999"):
        read_image(tmp_path / "big.png", max_pixels=19_999)
    assert read_image(tmp_path / "big.png", max_pixels=20_000).array.shape == (100, 200)


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("GIF", ".gif"), ("BMP", ".bmp")],
)
def test_truncated_file_names_the_problem(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(data[: len(data) // 2])


def test_garbage_and_unsupported_formats_are_refused(tmp_path):
    with pytest.raises(ImageReadError, match="not a PNG, JPEG, TIFF, BMP, WebP or GIF"):
        read_image(b"\x89PNG\r\n\x1a\n this is not really a png")
    ppm = io.BytesIO()
    Image.new("RGB", (2, 2)).save(ppm, "PPM")  # Pillow reads it, poolcli promises not to
    with pytest.raises(ImageReadError, match="not a PNG"):
        read_image(ppm.getvalue())


def test_missing_file_is_an_os_error_not_a_read_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "nope.png")


def test_bytes_input_reads_like_a_file(tmp_path):
    expected = _pixels("RGBA")
    buf = io.BytesIO()
    Image.fromarray(expected).save(buf, "PNG")
    loaded = read_image(buf.getvalue())
    assert (loaded.mode, loaded.format, loaded.alpha) == ("RGBA", "png", True)
    np.testing.assert_array_equal(loaded.array, expected)


def test_write_to_a_file_object_and_another_format(tmp_path):
    expected = _pixels("I;16")
    like = LoadedImage(expected, "I;16", "png")
    buf = io.BytesIO()
    write_image(expected, buf, like, format="tif")
    assert sniff_format(buf.getvalue()[:16]) == "tiff"
    np.testing.assert_array_equal(read_image(buf.getvalue()).array, expected)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGBA", "jpeg"),
        ("LA", "jpg"),
        ("I;16", "jpeg"),
        ("I;16", "webp"),
        ("I;16", "gif"),
        ("F", "png"),
        ("I", "png"),
        ("RGBA", "bmp"),
        ("L", "webp"),
        ("1", "jpeg"),
    ],
)
def test_a_mode_the_format_cannot_hold_is_a_clear_value_error(tmp_path, mode, fmt):
    like = LoadedImage(_pixels(mode), mode, "png")
    dest = tmp_path / "x"
    with pytest.raises(ValueError, match=rf"cannot hold a {mode} \(.*\) image") as e:
        write_image(like.array, dest, like, format=fmt)
    assert "\n" not in str(e.value)
    assert "tiff" in str(e.value)  # it says where the mode does fit
    assert not dest.exists()


def test_write_rejects_bad_settings_and_shapes(tmp_path):
    like = LoadedImage(_pixels("RGB"), "RGB", "png")
    with pytest.raises(ValueError, match="cannot write an image as 'npy'"):
        write_image(like.array, tmp_path / "x", like, format="npy")
    with pytest.raises(ValueError, match="quality=0 is out of range"):
        write_image(like.array, tmp_path / "x", like, format="jpeg", quality=0)
    with pytest.raises(ValueError, match="compress_level=10 is out of range"):
        write_image(like.array, tmp_path / "x", like, compress_level=10)
    with pytest.raises(ValueError, match=r"shape \(7, 10\) cannot be a RGB image"):
        write_image(like.array[..., 0], tmp_path / "x", like)


def test_compress_level_and_quality_reach_the_encoders(tmp_path):
    like = LoadedImage(_pixels("RGB"), "RGB", "png")
    big = np.repeat(np.repeat(like.array, 20, axis=0), 20, axis=1)
    write_image(big, tmp_path / "0.png", like, compress_level=0)
    write_image(big, tmp_path / "9.png", like, compress_level=9)
    assert (tmp_path / "0.png").stat().st_size > (tmp_path / "9.png").stat().st_size
    write_image(big, tmp_path / "q10.jpg", like, format="jpeg", quality=10)
    write_image(big, tmp_path / "q95.jpg", like, format="jpeg", quality=95)
    assert (tmp_path / "q10.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size
    # webp is lossless unless a quality is given
    write_image(big, tmp_path / "l.webp", like, format="webp")
    np.testing.assert_array_equal(read_image(tmp_path / "l.webp").array, big)


def _like(mode: str) -> LoadedImage:
    return LoadedImage(np.zeros((1, 1), MODE_DTYPES[mode]), mode, "png")


def test_to_image_dtype_rounds_half_to_even_and_clips():
    got = to_image_dtype(
        np.array([0.5, 1.5, 2.5, 3.5, -0.5, 254.5, 255.5, -7.0, 1e9, np.nan]), _like("L")
    )
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [0, 2, 2, 4, 0, 254, 255, 0, 255, 0])
    got16 = to_image_dtype(np.array([65534.5, 65535.5, 70000.0, -1.0]), _like("I;16"))
    np.testing.assert_array_equal(got16, [65534, 65535, 65535, 0])
    assert got16.dtype == np.uint16


def test_to_image_dtype_int32_bounds_do_not_wrap():
    got = to_image_dtype(np.array([3e9, -3e9, 2**31 - 1.4], np.float32), _like("I"))
    np.testing.assert_array_equal(got, [2**31 - 1, -(2**31), 2**31 - 1])
    got = to_image_dtype(np.array([2**64 - 1, 5], np.uint64), _like("I"))
    np.testing.assert_array_equal(got, [2**31 - 1, 5])


def test_to_image_dtype_clips_integer_sums():
    got = to_image_dtype(np.array([-5, 0, 300, 2**40], np.int64), _like("RGB"))
    np.testing.assert_array_equal(got, [0, 0, 255, 255])
    assert got.dtype == np.uint8


def test_to_image_dtype_one_bit_is_white_from_one_half():
    got = to_image_dtype(np.array([0.0, 0.25, 0.4999, 0.5, 0.75, 1.0]), _like("1"))
    np.testing.assert_array_equal(got, [False, False, False, True, True, True])
    np.testing.assert_array_equal(to_image_dtype(np.array([0, 2]), _like("1")), [False, True])


def test_to_image_dtype_float_mode_keeps_values():
    got = to_image_dtype(np.array([0.1, -2.5, 1e10]), _like("F"))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([0.1, -2.5, 1e10], np.float32))


def test_premultiplied_average_of_transparent_black_and_opaque_white():
    pixels = np.array([[[0, 0, 0, 0], [255, 255, 255, 255]]], np.uint8)
    colour, alpha = premultiplied(pixels)
    assert colour.shape == (1, 2, 3) and alpha.shape == (1, 2, 1)
    pooled = unpremultiply(colour.mean(axis=1, keepdims=True), alpha.mean(axis=1, keepdims=True))
    np.testing.assert_array_equal(pooled, [[[255.0, 255.0, 255.0, 127.5]]])
    # pooling every channel on its own would have given the dark fringe
    assert pixels.mean(axis=1)[0, 0] == 127.5
    # and written back as RGBA, alpha 127.5 rounds half to even
    written = to_image_dtype(pooled, _like("RGBA"))
    np.testing.assert_array_equal(written, [[[255, 255, 255, 128]]])


def test_unpremultiply_weights_by_alpha_and_zero_alpha_gives_zero():
    pixels = np.array(
        [[[100, 10, 0, 255], [200, 40, 0, 85]], [[50, 50, 50, 0], [50, 50, 50, 0]]], np.uint8
    )
    colour, alpha = premultiplied(pixels)
    pooled = unpremultiply(colour.sum(axis=1, keepdims=True), alpha.sum(axis=1, keepdims=True))
    expected_r = (100 * 255 + 200 * 85) / (255 + 85)
    assert pooled[0, 0, 0] == pytest.approx(expected_r)
    np.testing.assert_array_equal(pooled[1, 0], [0, 0, 0, 0])
    # a 2-D alpha is accepted too
    flat = unpremultiply(colour.sum(axis=1, keepdims=True), alpha.sum(axis=1))
    np.testing.assert_array_equal(flat, pooled)


def test_premultiplied_needs_an_alpha_channel():
    with pytest.raises(ValueError, match="last channel alpha"):
        premultiplied(np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize(
    ("fmt", "name", "params"),
    [
        ("PNG", "png", {}),
        ("JPEG", "jpeg", {}),
        ("TIFF", "tiff", {}),
        ("BMP", "bmp", {}),
        ("WEBP", "webp", {}),
        ("GIF", "gif", {}),
        ("TIFF", "tiff", {"big_tiff": True}),
    ],
)
def test_sniff_format_recognises_every_image_format(fmt, name, params):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, fmt, **params)
    assert sniff_format(buf.getvalue()[:16]) == name


def test_sniff_format_recognises_arrays_and_refuses_the_rest():
    npy, npz, empty_npz = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.save(npy, np.zeros(3))
    np.savez(npz, a=np.zeros(3))
    np.savez(empty_npz)
    assert sniff_format(npy.getvalue()) == "npy"
    assert sniff_format(npz.getvalue()) == "npz"
    assert sniff_format(empty_npz.getvalue()) == "npz"
    for head in (b"", b"RIFF\0\0\0\0WAVE", b"GIF90a", b"hello world", b"\x93NUMP"):
        assert sniff_format(head) is None


def test_suffixes():
    assert format_from_suffix("a/B.JPG") == "jpeg"
    assert format_from_suffix("x.tif") == format_from_suffix("x.TIFF") == "tiff"
    assert format_from_suffix("x.npz") == "npz"
    assert format_from_suffix("x.txt") is None and format_from_suffix("png") is None
    assert {format_from_suffix("x" + s) for s in IMAGE_SUFFIXES} == {
        "png",
        "jpeg",
        "tiff",
        "bmp",
        "webp",
        "gif",
    }
    assert frozenset({".npy", ".npz"}) == ARRAY_SUFFIXES
