"""Bounded memory of the real executable: huge .npy files in chunks, long batches flat."""

import sys

import numpy as np
import pytest
from PIL import Image
from rss import make_big_npy, peak_rss

from poolcli import pool

EXE = [sys.executable, "-m", "poolcli"]


@pytest.mark.slow
def test_cli_pools_a_1gb_npy_within_a_128mb_limit(tmp_path):
    src = tmp_path / "big.npy"
    make_big_npy(src)
    peak = peak_rss([*EXE, "max", str(src), "-k", "3", "-s", "2", "-p", "1",
                     "--memory-limit", "128MB", "-o", str(tmp_path / "out.npy"), "-q"])
    assert peak < 300 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    # The README's promise: the limit plus a fixed 64 MiB, whatever the file's size.
    small = peak_rss([*EXE, "max", str(src), "--memory-limit", "32MB", "-q", "-o",
                      str(tmp_path / "out2.npy")])
    assert small < 32e6 + 64 * 2**20, f"peak RSS {small / 2**20:.0f} MiB at 32MB"
    got = np.load(tmp_path / "out.npy", mmap_mode="r")
    src_map = np.load(src, mmap_mode="r")
    assert got.shape == (8192, 8192)
    # A seam-free check of a corner and of a band far into the file.
    assert np.array_equal(got[:100, :100],
                          pool(np.asarray(src_map[:200, :200]), "max", 3, stride=2,
                               padding=1)[:100, :100])
    band = np.asarray(src_map[9999:10203, 1:301])  # the cells output rows 5000.., cols 1..
    assert np.array_equal(got[5000:5100, 1:149],
                          pool(band, "max", 3, stride=2, padding=0)[:100, :148])


def _folder(path, n):
    path.mkdir()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for i in range(n):
        img.save(path / f"{i:05}.png", compress_level=1)
    return path


@pytest.mark.slow
def test_a_long_batch_does_not_grow(tmp_path):
    small = _folder(tmp_path / "small", 100)
    large = _folder(tmp_path / "large", 2000)
    args = ["avg", "-k", "2", "-j", "2", "--report", "json", "--report-file"]
    p100 = peak_rss([*EXE, *args, str(tmp_path / "r1.json"), str(small), "-o",
                     str(tmp_path / "o1")])
    p2000 = peak_rss([*EXE, *args, str(tmp_path / "r2.json"), str(large), "-o",
                      str(tmp_path / "o2")])
    assert len(list((tmp_path / "o2").iterdir())) == 2000
    assert p2000 - p100 < 20 * 2**20, (p100 / 2**20, p2000 / 2**20)
