"""Out-of-core pooling: chunked results are bit-identical to in-memory ones, seams included."""

import os
import sys

import numpy as np
import pytest
from rss import make_big_npy, peak_rss

from poolcli import Pipeline, PoolError, pool
from poolcli.io.arrays import ArrayReadError
from poolcli.tiled import parse_size, pool_file, read_header, working_set

PIPES = ["max:k=3,s=2,p=1", "min:k=2,ceil=true", "avg:k=3,s=2,p=1,ceil=true",
         "sum:k=3,s=1,p=same", "l2:k=2,ignore_nan=true", "lp:k=3,norm=3",
         "median:k=3x2,d=2x1,p=1", "mode:k=2", "avg:out=7", "max:k=5,s=3,p=2,ceil=true",
         "avg:k=3,s=2,p=same | max:k=2 | median:k=2"]


@pytest.mark.parametrize("shape,axes", [((1501, 97), None), ((5, 7, 64, 53), None),
                                        ((3, 190, 60, 3), (1, 2)), ((300, 6, 50), (0, 2))])
def test_chunked_equals_in_memory_for_every_kind(tmp_path, shape, axes):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::97] = np.nan
    src = tmp_path / "in.npy"
    np.save(src, x)
    for text in PIPES:
        pipe = Pipeline.parse(text)
        want = pipe(x, axes=axes)
        dst = tmp_path / "out.npy"
        res = pool_file(src, dst, pipe, axes=axes, memory_limit="1MiB", force_tiled=True,
                        overwrite=True)
        got = np.load(dst)
        assert res.tiled and res.chunks >= 2, text
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True), text
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "out.npy"]  # no temporaries left


def test_integer_input_with_dtype_override(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (700, 300, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    pipe = Pipeline.parse("avg:k=2")
    pool_file(tmp_path / "a.npy", tmp_path / "b.npy", pipe, axes=(0, 1), dtype="uint8",
              memory_limit="1MiB", force_tiled=True)
    assert np.array_equal(np.load(tmp_path / "b.npy"), pipe(x, axes=(0, 1), dtype="uint8"))


def test_existing_output_is_kept_without_overwrite(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    np.save(tmp_path / "b.npy", np.ones(3))
    with pytest.raises(FileExistsError, match=r"b\.npy exists"):
        pool_file(tmp_path / "a.npy", tmp_path / "b.npy", Pipeline.parse("max"))
    assert np.array_equal(np.load(tmp_path / "b.npy"), np.ones(3))


def test_small_files_run_in_memory(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(16.0).reshape(4, 4))
    res = pool_file(tmp_path / "a.npy", tmp_path / "b.npy", Pipeline.parse("max"))
    assert not res.tiled and res.output_shape == (2, 2)
    assert np.load(tmp_path / "b.npy").tolist() == [[5.0, 7.0], [13.0, 15.0]]


def test_truncated_file_is_an_error_and_leaves_no_output(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2000, 200), np.float32))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArrayReadError, match=r"ends early|cut short"):
        pool_file(tmp_path / "a.npy", tmp_path / "b.npy", Pipeline.parse("max"),
                  memory_limit="1MiB", force_tiled=True)
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


@pytest.mark.parametrize("text,expect", [("512MB", 512 * 10**6), ("2GiB", 2 * 2**30),
                                         ("1.5G", 1_500_000_000), ("3000000", 3_000_000)])
def test_parse_size(text, expect):
    assert parse_size(text) == expect


@pytest.mark.parametrize("bad", ["lots", "12XB", "-5MB", "10"])
def test_parse_size_errors_name_the_value(bad):
    with pytest.raises(PoolError, match="memory limit"):
        parse_size(bad)


def test_working_set_counts_input_and_largest_neighbouring_output():
    pipe = Pipeline.parse("max:k=2 | max:k=2")
    assert working_set((100, 100), "float32", pipe) == 40000 + 10000
    assert read_header  # re-exported helper exists


@pytest.mark.slow
def test_peak_rss_of_a_1gb_file_with_a_128mb_limit(tmp_path):
    """The real process's peak RSS stays far below the file's size."""
    src = tmp_path / "big.npy"
    make_big_npy(src)
    code = ("from poolcli import Pipeline\nfrom poolcli.tiled import pool_file\n"
            f"pool_file({str(src)!r}, {str(tmp_path / 'out.npy')!r}, "
            "Pipeline.parse('max:k=3,s=2,p=1'), memory_limit='128MB')\n")
    peak = peak_rss([sys.executable, "-c", code])
    assert peak < 300 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    # The README's promise: the limit plus a fixed 40 MiB (interpreter and NumPy).
    small = peak_rss([sys.executable, "-c", code.replace("128MB", "32MB")
                      .replace("out.npy", "out2.npy")])
    assert small < 32e6 + 40 * 2**20, f"peak RSS {small / 2**20:.0f} MiB at a 32MB limit"
    got = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert got.shape == (8192, 8192)
    src_map = np.load(src, mmap_mode="r")
    block = np.asarray(src_map[:64, :64])
    assert np.array_equal(got[:31, :31], pool(block, "max", 3, stride=2, padding=1)[:31, :31])
