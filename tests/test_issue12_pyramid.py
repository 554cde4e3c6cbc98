"""Issue 12: pyramid() and `poolcli pyramid`, level by level against the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import one_error_line
from reference import ref_pool

from poolcli import PoolError, pyramid
from poolcli.io.image_read import read_image
from poolcli.pyramid import level_shapes

zarr = pytest.importorskip("zarr")


def _ref_level(x, kind, i, axes, factor=2, **kw):
    """Level i as the reference pools level 0 in one go: kernel = stride = factor**i."""
    k = tuple(min(factor**i, x.shape[a]) for a in axes)
    return ref_pool(x, kind, k, ceil_mode=True, axes=axes, dtype=x.dtype, **kw)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int64])
def test_integer_avg_levels_are_exact_means_of_level_0(dtype):
    x = np.random.default_rng(0).integers(0, 200, (2, 37, 29)).astype(dtype)
    levels = pyramid(x)
    assert [lv.shape for lv in levels] == level_shapes(x.shape)
    assert levels[0] is x or np.shares_memory(levels[0], x)
    for i, lv in enumerate(levels[1:], 1):
        assert lv.dtype == dtype
        np.testing.assert_array_equal(lv, _ref_level(x, "avg", i, (1, 2)))


def test_avg_does_not_drift_where_level_by_level_rounding_would():
    # [0 1 0 1 2 3 2 3] -> [0 0 2 2] (0.5 and 2.5 round half to even) -> [0 2] -> 1 if each
    # level were rounded from the one before; the exact mean of level 0 is 12/8 = 1.5 -> 2
    v = np.array([[0, 1, 0, 1, 2, 3, 2, 3]], np.uint8)
    levels = pyramid(v, factor=(1, 2), axes=(0, 1))
    assert [lv.tolist() for lv in levels[1:]] == [[[0, 0, 2, 2]], [[0, 2]], [[2]]]
    for arr in (v, np.array([[1, 2, 2, 2, 1, 2, 1, 1]], np.uint16)):
        exact = ref_pool(arr, "avg", (1, arr.shape[1]), dtype=arr.dtype)
        assert pyramid(arr, factor=(1, 2), axes=(0, 1))[-1].tolist() == exact.tolist()


@pytest.mark.parametrize("kind", ["max", "min", "mode"])
def test_selecting_kinds_equal_the_reference_of_level_0(kind):
    x = np.random.default_rng(1).integers(0, 5, (21, 34)).astype(np.uint16)
    for i, lv in enumerate(pyramid(x, kind=kind)[1:], 1):
        if kind == "mode":
            assert set(np.unique(lv)) <= set(np.unique(x))  # labels stay labels
            # mode is of the previous level, as SPEC §5 says
            prev = pyramid(x, kind=kind, levels=i - 1)[-1]
            np.testing.assert_array_equal(lv, _ref_level(prev, "mode", 1, (0, 1)))
        else:
            np.testing.assert_array_equal(lv, _ref_level(x, kind, i, (0, 1)))


def test_float_avg_and_nodata():
    x = np.random.default_rng(2).standard_normal((17, 12)).astype(np.float32)
    x[:8, :8] = -9999.0
    levels = pyramid(x, nodata=-9999.0)
    f = np.where(x == -9999.0, np.nan, x.astype(np.float64))
    for i, lv in enumerate(levels[1:], 1):
        assert lv.dtype == np.float32
        want = ref_pool(f, "avg", tuple(min(2**i, n) for n in x.shape), ceil_mode=True,
                        ignore_nan=True)
        np.testing.assert_allclose(lv, np.where(np.isnan(want), -9999.0, want), rtol=1e-6)
    assert levels[3][0, 0] == -9999.0


def test_levels_min_size_factor_and_refusals():
    assert level_shapes((512, 2048, 2048), factor=(1, 2, 2), axes=(0, 1, 2))[-1] == (512, 1, 1)
    assert level_shapes((100, 100), min_size=30) == [(100, 100), (50, 50), (25, 25)]
    assert len(pyramid(np.zeros((8, 8)), levels=1)) == 2
    with pytest.raises(PoolError, match="drop `kernel`"):
        pyramid(np.zeros((8, 8)), kernel=3)
    with pytest.raises(PoolError, match="never shrinks"):
        pyramid(np.zeros((8, 8)), factor=1)
    with pytest.raises(PoolError, match="levels=-1"):
        pyramid(np.zeros((8, 8)), levels=-1)


def test_cli_pyramid_ome_zarr_read_by_an_independent_reader(cli, exe, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    x = np.random.default_rng(3).integers(0, 65536, (5, 40, 33), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", x, metadata={"axes": "ZYX"})
    out = tmp_path / "s.zarr"
    r = exe("pyramid", tmp_path / "s.tif", "-o", out, "--levels", 3, "--report", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stderr)
    assert [lv["shape"] for lv in report["files"][0]["levels"]] == [
        [5, 40, 33], [5, 20, 17], [5, 10, 9], [5, 5, 5]]
    node = next(iter(reader.Reader(parse_url(str(out)))()))
    assert [n["name"] for n in node.metadata["axes"]] == ["z", "y", "x"]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[1, 1, 1], [1, 2, 2], [1, 4, 4], [1, 8, 8]]
    for i, data in enumerate(node.data):
        np.testing.assert_array_equal(np.asarray(data), x if i == 0 else
                                      _ref_level(x, "avg", i, (1, 2)))


def test_cli_pyramid_ngff_05_channels_first(cli, tmp_path, rgb_png):
    path, pixels = rgb_png
    out = tmp_path / "p.zarr"
    r = cli("pyramid", path, "-o", out, "--ngff", "0.5", "--levels", 2)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["datasets"][2]["coordinateTransformations"][0]["scale"] == [1, 4, 4]
    lvl1 = zarr.open_array(str(out / "1"), mode="r")[...]
    np.testing.assert_array_equal(lvl1, np.moveaxis(_ref_level(pixels, "avg", 1, (0, 1)), -1, 0))


def test_cli_pyramid_files_per_level_and_labels(cli, tmp_path):
    from poolcli.io import png

    labels = np.random.default_rng(4).integers(0, 3, (30, 20)).astype(np.uint8) * 40
    with open(tmp_path / "mask.png", "wb") as f:
        png.write_png(labels, f, "L")
    r = cli("pyramid", tmp_path / "mask.png", "--labels", "-o", tmp_path / "lv")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.glob("lv_*.png"))
    assert names == [f"lv_{i}.png" for i in range(6)]  # 30x20 .. 1x1
    prev = labels
    for i in range(1, 6):
        got = read_image(tmp_path / f"lv_{i}.png").array
        np.testing.assert_array_equal(got, _ref_level(prev, "mode", 1, (0, 1)))
        assert set(np.unique(got)) <= {0, 40, 80}
        prev = got
    again = cli("pyramid", tmp_path / "mask.png", "--labels", "-o", tmp_path / "lv")
    assert again.returncode == 1 and "exists" in one_error_line(again)


def test_cli_pyramid_png16_rgba_levels_match_image_pooling(cli, tmp_path):
    from poolcli import pool_image
    from poolcli.io import png

    x = np.random.default_rng(5).integers(0, 65536, (19, 22, 4), dtype=np.uint16)
    with open(tmp_path / "a.png", "wb") as f:
        png.write_png(x, f, "RGBA;16")
    assert cli("pyramid", tmp_path / "a.png", "-o", f"{tmp_path / 'o'}/", "--levels", 2
               ).returncode == 0
    img = read_image(tmp_path / "a.png")
    for i in (1, 2):
        got = read_image(tmp_path / "o" / f"a_{i}.png")
        assert got.mode == "RGBA;16"
        want = pool_image(img, f"avg:k={2**i},ceil=true")
        np.testing.assert_array_equal(got.array, want)


def test_cli_pyramid_refusals(cli, tmp_path, rgb_png):
    path, _ = rgb_png
    r = cli("pyramid", path, path, "-o", tmp_path / "x.zarr")
    assert r.returncode == 2 and "one INPUT" in one_error_line(r)
    r = cli("pyramid", path, "-o", tmp_path / "x.zarr", "--ngff", "0.3")
    assert r.returncode == 2 and "0.4 or 0.5" in one_error_line(r)
    r = cli("pyramid", path, "-o", tmp_path / "x.zarr", "-k", 0)
    assert r.returncode == 2 and "factor" in one_error_line(r)
    assert not (tmp_path / "x.zarr").exists()


def test_plan_shows_a_pyramids_levels_without_data(cli):
    r = cli("plan", "pyramid", "--shape", "512x2048x2047", "--levels", 2)
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert lines[1:] == ["level 0: 512x2048x2047 (2,146,435,072 cells, scale 1x1)",
                         "level 1: 512x1024x1024 (536,870,912 cells, scale 2x2)",
                         "level 2: 512x512x512 (134,217,728 cells, scale 4x4)"]
    r = cli("plan", "pyramid", "--shape", "9x9", "-k", 3)
    assert r.stdout.decode().splitlines()[-1] == "level 2: 1x1 (1 cells, scale 9x9)"
