"""Tidy item 1: a 1-bit cell from a mean follows one rule on every path (mean >= 1/2 is
white), in pyramids (exact sums carried) as in pooled images."""

from __future__ import annotations

import numpy as np
from PIL import Image

from poolcli import pool, pyramid
from poolcli.io.image_read import read_image


def _threshold(mean: np.ndarray) -> np.ndarray:
    """The reference: white where at least half the level-0 cells under it are white."""
    return np.asarray(mean) >= 0.5


def _block_means(x: np.ndarray, f: int) -> np.ndarray:
    """Means of the real cells of each f x f block (ceil mode): sums and counts of the
    blocks of a zero-padded copy."""
    h, w = -(-x.shape[0] // f), -(-x.shape[1] // f)
    s, c = np.zeros((h * f, w * f)), np.zeros((h * f, w * f))
    s[:x.shape[0], :x.shape[1]] = x
    c[:x.shape[0], :x.shape[1]] = 1
    return s.reshape(h, f, w, f).sum((1, 3)) / c.reshape(h, f, w, f).sum((1, 3))


def test_pyramid_of_bools_ties_go_to_white():
    # every 2x2 block holds exactly two white cells: a tie on every block
    x = np.array([[1, 0, 1, 1], [1, 0, 0, 0]], bool)
    got = pyramid(x, levels=1)[1]
    np.testing.assert_array_equal(got, _threshold(_block_means(x, 2)))
    assert got.tolist() == [[True, True]]


def test_pyramid_levels_match_the_threshold_of_level0_means():
    rng = np.random.default_rng(7)
    x = rng.random((37, 29)) < 0.5
    for i, lv in enumerate(pyramid(x)[1:], 1):
        assert lv.dtype == bool
        np.testing.assert_array_equal(lv, _threshold(_block_means(x, 2**i)), err_msg=f"{i}")


def _one_bit_png(path, x: np.ndarray) -> None:
    Image.fromarray(x).convert("1").save(path)
    assert Image.open(path).mode == "1"


def test_image_and_pyramid_paths_agree_on_a_one_bit_png(cli, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random((24, 18)) < 0.5
    x[:2, :2] = [[True, False], [False, True]]  # a tie in the first block, for sure
    _one_bit_png(tmp_path / "a.png", x)
    r = cli("avg", tmp_path / "a.png", "-k", 2, "-o", tmp_path / "img.png")
    assert r.returncode == 0, r.stderr
    r = cli("pyramid", tmp_path / "a.png", "--levels", 1, "-o", tmp_path / "lv")
    assert r.returncode == 0, r.stderr
    pooled = read_image(tmp_path / "img.png")
    level = read_image(tmp_path / "lv_1.png")
    assert pooled.mode == level.mode == "1"
    want = _threshold(_block_means(x, 2))
    np.testing.assert_array_equal(pooled.array, want)
    np.testing.assert_array_equal(level.array, want)
    assert bool(level.array[0, 0]) is True


def test_the_rule_is_pillows_threshold():
    from poolcli.core.kinds import bool_of_mean

    # Pillow: average to grey, then "1" without dither; white from 128 of 255 up
    for cells, white in (([[255, 0], [0, 255]], True), ([[255, 0], [0, 0]], False),
                         ([[255, 255], [0, 255]], True)):
        grey = Image.fromarray(np.array(cells, np.uint8)).reduce(2)
        pil = grey.convert("1", dither=Image.Dither.NONE).getpixel((0, 0)) == 255
        mean = pool(np.array(cells, np.uint8) > 0, "avg", 2)
        assert pil is white and bool(bool_of_mean(mean)[0, 0]) is white, cells


def test_bools_stored_as_any_nonzero_byte_average_as_true():
    # np.asarray of a Pillow 1-bit image holds True as the byte 255; NumPy reads it as True
    rng = np.random.default_rng(1)
    x = rng.random((12, 16)) < 0.5
    odd = (x.view(np.uint8) * np.uint8(255)).view(bool)
    for kind in ("avg", "sum"):
        np.testing.assert_array_equal(pool(odd, kind, 2), pool(x, kind, 2), err_msg=kind)
    assert pool(odd, "sum", 2).max() <= 4


def test_a_streamed_pyramid_of_bools_follows_the_same_rule(cli, tmp_path, monkeypatch):
    import pytest

    import poolcli.stores

    zarr = pytest.importorskip("zarr")
    streamed = []
    real = poolcli.stores.stream_pyramid
    monkeypatch.setattr(poolcli.stores, "stream_pyramid",
                        lambda *a, **k: streamed.append(1) or real(*a, **k))
    x = np.random.default_rng(9).random((1500, 1400)) < 0.5
    x[:2, :2] = [[True, False], [False, True]]  # a tie
    np.save(tmp_path / "b.npy", x)
    # 2 MiB of input against a 1 MiB limit: streamed slab by slab into the OME-Zarr
    r = cli("pyramid", tmp_path / "b.npy", "-o", tmp_path / "b.zarr", "--levels", 2,
            "--memory-limit", "1MiB", "-q")
    assert r.returncode == 0, r.stderr
    g = zarr.open_group(tmp_path / "b.zarr", mode="r")
    for i in (1, 2):
        got = np.asarray(g[str(i)])
        np.testing.assert_array_equal(got, _threshold(_block_means(x, 2**i)), err_msg=f"{i}")
    assert bool(np.asarray(g["1"])[0, 0]) is True
    assert streamed, "the pyramid was made in memory, not streamed"
