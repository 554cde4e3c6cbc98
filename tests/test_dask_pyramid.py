"""pyramid() on dask arrays: deep levels regrouped into fewer, larger tasks (the engine
seam's ``regroup``), and a graph that carries no whole-level arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from poolcli.pyramid import pyramid

da = pytest.importorskip("dask.array")


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_deep_levels_are_regrouped_and_stay_exact(kind):
    x = np.random.default_rng(0).integers(0, 255, (1000, 700), dtype=np.uint8)
    d = da.from_array(x, chunks=(50, 35))  # 400 chunks
    got = pyramid(d, kind=kind)
    parts = [lv.npartitions for lv in got]
    assert parts[0] == 400
    assert parts == sorted(parts, reverse=True) and parts[-1] == 1
    # without regrouping every level would keep 400 tasks (one per input chunk)
    assert sum(parts) < 400 * 3
    for lv, want in zip(got, pyramid(x, kind=kind), strict=True):
        np.testing.assert_array_equal(lv.compute(), want)


def test_regroup_leaves_big_chunks_and_numpy_alone():
    from poolcli.pool import NUMPY, engine_for

    big = da.zeros((4096, 4096), chunks=1024, dtype=np.uint8)
    assert engine_for(big).regroup(big, (0, 1)) is big
    small = da.zeros((4096, 4096), chunks=64, dtype=np.uint8)
    assert engine_for(small).regroup(small, (0, 1)).chunks[0][0] == 256
    assert engine_for(small).regroup(small, (0,)).chunks[1] == small.chunks[1]  # not pooled
    x = np.zeros((3, 3))
    assert NUMPY.regroup(x, (0, 1)) is x


def test_an_avg_pyramids_graph_carries_no_whole_count_arrays():
    d = da.zeros((2000, 2000), chunks=500, dtype=np.uint16)
    graph = {}
    for level in pyramid(d, levels=3):
        graph.update(level.__dask_graph__())
    size = len(pickle.dumps(graph, protocol=5))
    # level 1's block counts alone would be 1000 x 1000 int64 = 8 MB
    assert size < 2**20, size
