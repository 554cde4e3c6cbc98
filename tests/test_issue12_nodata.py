"""Issue 12: nodata= / --nodata, for every kind and dtype, in memory and out of core."""

from __future__ import annotations

import numpy as np
import pytest
from clitools import one_error_line
from reference import ref_pool

from poolcli import Pipeline, PoolError, pool

KINDS = ["max", "min", "avg", "sum", "l2", "lp", "median", "mode"]


def _reference(x, kind, nodata, **kw):
    """Nodata as NaN with ignore_nan in the brute-force reference, then NaN -> nodata."""
    f = np.where(x == nodata, np.nan, x.astype(np.float64))
    want = ref_pool(f, kind, ignore_nan=True, **kw)
    return np.where(np.isnan(want), nodata, want)


def _data(dtype, nodata, seed=0, shape=(3, 11, 13)):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, shape).astype(dtype)
    x[rng.random(shape) < 0.3] = nodata
    x[0, :4, :4] = nodata  # whole windows of nodata
    return x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype,nodata", [(np.uint8, 255), (np.int16, -9999),
                                          (np.float32, -1.5), (np.float64, 0.0),
                                          (np.int64, 7)])
def test_nodata_every_kind_and_dtype_matches_reference(kind, dtype, nodata):
    x = _data(dtype, nodata)
    kw = {"kernel": (2, 3), "stride": (2, 2), "padding": 1, "ceil_mode": True}
    got = pool(x, kind, nodata=nodata, **kw)
    want = _reference(x, kind, nodata, **kw)
    if kind in ("avg", "l2", "lp"):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, want.astype(got.dtype))
    assert got[0, 0, 0] == nodata  # a window of nodata only


def test_nodata_cells_leave_the_divisor_and_never_win():
    x = np.array([[1, 2, 9, 9], [3, 4, 9, 8]], np.uint8)
    assert pool(x, "avg", 2, nodata=9).tolist() == [[2.5, 8.0]]
    assert pool(x, "max", 2, nodata=9).tolist() == [[4, 8]]
    assert pool(x, "min", 2, nodata=1).tolist() == [[2, 8]]
    assert pool(x, "mode", 2, nodata=9).tolist() == [[1, 8]]
    assert pool(np.full((2, 2), 9, np.uint8), "avg", 2, nodata=9).tolist() == [[9.0]]


def test_nodata_keeps_nan_rules_apart():
    x = np.array([[np.nan, 1.0], [5.0, -1.0]])
    assert np.isnan(pool(x, "avg", 2, nodata=-1)).all()  # NaN still propagates
    assert pool(x, "avg", 2, nodata=-1, ignore_nan=True).tolist() == [[3.0]]
    assert pool(x, "max", 2, nodata=float("nan")).tolist() == [[5.0]]  # NaN = ignore_nan


def test_nodata_refusals_name_the_value():
    with pytest.raises(PoolError, match=r"nodata=-1 cannot occur in a uint8 array.*0\.\.255"):
        pool(np.zeros((4, 4), np.uint8), "max", 2, nodata=-1)
    with pytest.raises(PoolError, match="return_indices"):
        pool(np.zeros((4, 4)), "max", 2, nodata=0, return_indices=True)
    with pytest.raises(TypeError, match="nodata must be a number"):
        pool(np.zeros((4, 4)), "max", 2, nodata="x")


def test_nodata_in_the_stage_grammar():
    pipe = Pipeline.parse("avg:k=2,nodata=-9999")
    assert str(pipe) == "avg:k=2,nodata=-9999"
    x = np.array([[1.0, -9999.0], [3.0, -9999.0]])
    assert pipe(x).tolist() == [[2.0]]


@pytest.mark.parametrize("kind", ["avg", "median", "max", "sum"])
def test_nodata_out_of_core_equals_in_memory(cli, tmp_path, kind):
    x = _data(np.int16, -9999, seed=3, shape=(2, 1201, 411))
    np.save(tmp_path / "a.npy", x)
    r = cli(kind, tmp_path / "a.npy", "-k", 3, "-s", 2, "-p", 1, "--nodata", -9999,
            "--memory-limit", "1MiB", "-o", tmp_path / "o.npy")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"),
                                  pool(x, kind, 3, stride=2, padding=1, nodata=-9999))


def test_cli_nodata_reported_and_refused(cli, exe, tmp_path):
    x = np.array([[0, 0, 4, 6], [0, 0, 2, 8]], np.uint8)
    np.save(tmp_path / "a.npy", x)
    r = cli("avg", tmp_path / "a.npy", "--nodata", 0, "-o", tmp_path / "o.npy",
            "--report", "json")
    assert r.returncode == 0
    assert "nodata=0" in r.stderr
    assert np.load(tmp_path / "o.npy").tolist() == [[0.0, 5.0]]
    bad = exe("avg", tmp_path / "a.npy", "--nodata", 300, "-o", tmp_path / "b.npy")
    assert bad.returncode == 2
    assert "--nodata 300" in one_error_line(bad) and "0..255" in one_error_line(bad)


def test_file_nodata_values_are_reported_not_applied(cli, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")
    x = np.array([[[1, -9999], [3, 5]]], np.int16)
    tifffile.imwrite(tmp_path / "geo.tif", x, extratags=[(42113, "s", 0, "-9999", False)])
    r = cli("max", tmp_path / "geo.tif", "-o", tmp_path / "o.tif")
    assert r.returncode == 0
    assert "GDAL_NODATA tag is -9999; it is not applied: give --nodata -9999" in r.stderr
    assert tifffile.imread(tmp_path / "o.tif").tolist() == [[[5]]]
    r = cli("min", tmp_path / "geo.tif", "--nodata", -9999, "-o", tmp_path / "n.tif")
    assert r.returncode == 0 and "GDAL_NODATA" not in r.stderr
    assert tifffile.imread(tmp_path / "n.tif").tolist() == [[[1]]]
    a = zarr.create_array(store=str(tmp_path / "f.zarr"), shape=(4, 4), dtype="f4",
                          fill_value=-1.0)
    a[...] = np.arange(16, dtype="f4").reshape(4, 4)
    r = cli("max", tmp_path / "f.zarr", "-o", tmp_path / "f.npy")
    assert r.returncode == 0 and "fill_value is -1.0; it is not applied" in r.stderr
