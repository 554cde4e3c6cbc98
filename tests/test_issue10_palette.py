"""Issue 10: palette (P) images are label images (kinds that pick a cell pool indices
and keep the palette; avg pools colours) and mode on RGB(A) takes whole pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from poolcli import pool
from poolcli.image import pack_pixels, pool_image, unpack_pixels
from poolcli.io.image_read import read_image

RNG = np.random.default_rng(10)
PALETTE = RNG.integers(0, 256, (7, 3), dtype=np.uint8)


def _labels(path, size=(32, 32), transparency=None):
    idx = RNG.integers(0, 7, size, dtype=np.uint8)
    im = Image.frombytes("P", size[::-1], idx.tobytes())
    im.putpalette(PALETTE.tobytes())
    kw = {} if transparency is None else {"transparency": transparency}
    im.save(path, **kw)
    return idx


@pytest.mark.parametrize("kind", ["mode", "max", "min", "median"])
@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_kinds_that_pick_a_cell_pool_indices_and_keep_the_palette(exe, tmp_path, kind,
                                                                   suffix):
    idx = _labels(tmp_path / f"labels{suffix}")
    p = exe(kind, tmp_path / f"labels{suffix}", "-k", "2", "-o", tmp_path / f"out{suffix}")
    assert p.returncode == 0, p.stderr
    out = Image.open(tmp_path / f"out{suffix}")
    assert out.mode == "P"
    assert np.array_equal(np.asarray(out), pool(idx, kind, 2))
    # every output colour is one of the palette's: no mixed channels
    got = {tuple(c) for c in np.asarray(out.convert("RGB")).reshape(-1, 3)}
    assert got <= {tuple(c) for c in PALETTE}
    assert np.array_equal(np.asarray(out.getpalette()[:21], np.uint8).reshape(7, 3), PALETTE)


def test_avg_on_a_palette_image_pools_its_colours(cli, tmp_path):
    idx = _labels(tmp_path / "labels.png")
    p = cli("avg", tmp_path / "labels.png", "-k", "2", "-o", tmp_path / "out.png")
    assert p.returncode == 0, p.stderr
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "RGB"
    want = np.rint(pool(PALETTE[idx], "avg", 2, axes=(0, 1))).astype(np.uint8)
    assert np.array_equal(np.asarray(out), want)


def test_a_transparent_palette_entry_is_kept_or_becomes_alpha(cli, tmp_path):
    idx = _labels(tmp_path / "t.png", transparency=3)
    cli("mode", tmp_path / "t.png", "-o", tmp_path / "m.png")
    m = Image.open(tmp_path / "m.png")
    assert m.mode == "P" and m.info.get("transparency") == 3
    cli("avg", tmp_path / "t.png", "-o", tmp_path / "a.png")
    a = Image.open(tmp_path / "a.png")
    assert a.mode == "RGBA"
    alpha = np.where(idx == 3, 0, 255).astype(float)
    assert np.array_equal(np.asarray(a)[..., 3], np.rint(pool(alpha, "avg", 2)))


def test_mode_on_rgb_takes_whole_pixels(exe, tmp_path):
    idx = RNG.integers(0, 7, (30, 30), dtype=np.uint8)
    Image.fromarray(PALETTE[idx]).save(tmp_path / "rgb.png")
    p = exe("mode", tmp_path / "rgb.png", "-k", "3", "-o", tmp_path / "m.png")
    assert p.returncode == 0, p.stderr
    out = np.asarray(Image.open(tmp_path / "m.png"))
    # the most frequent whole pixel is the colour of the most frequent label
    packed = pack_pixels(PALETTE)
    want_labels = pool(np.argsort(np.argsort(packed))[idx], "mode", 3)
    order = np.argsort(packed)
    assert np.array_equal(out, PALETTE[order[want_labels]])


def test_mode_on_rgba_in_the_library_never_mixes_channels():
    # column 0 is most often (1, 9, 9, 9) by whole pixel, yet channel-wise modes would
    # give (1, 2, 2, 2), a pixel that is not in the window at all
    px = np.array([[[1, 9, 9, 9]], [[1, 9, 9, 9]], [[2, 2, 2, 2]], [[3, 2, 2, 2]],
                   [[4, 2, 2, 2]]], np.uint8).reshape(5, 1, 4)
    from poolcli.io.image_read import LoadedImage

    img = LoadedImage(px, "RGBA", "png", alpha=True)
    out = pool_image(img, "mode:k=5x1")
    assert out.tolist() == [[[1, 9, 9, 9]]]


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 2), (np.uint8, 4), (np.uint16, 3)])
def test_pack_and_unpack_are_inverse(dtype, channels):
    a = RNG.integers(0, np.iinfo(dtype).max, (5, 6, channels), dtype=dtype)
    assert np.array_equal(unpack_pixels(pack_pixels(a), dtype, channels), a)


def test_read_image_keeps_palette_only_when_asked(tmp_path):
    idx = _labels(tmp_path / "l.png")
    assert read_image(tmp_path / "l.png").mode == "RGB"
    kept = read_image(tmp_path / "l.png", keep_palette=True)
    assert kept.mode == "P" and np.array_equal(kept.array, idx)
