"""pool() and Pipeline on dask arrays: lazy, and equal to the in-memory result at every
chunk seam, for every kind and option; on a real LocalCluster too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli import Pipeline, pool
from poolcli.core.kinds import KINDS

da = pytest.importorskip("dask.array")


@pytest.fixture(autouse=True)
def one_thread_scheduler():
    """The values do not depend on the scheduler; the synchronous one is quickest here."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield

CASES = [
    {"kernel": 3, "stride": 2, "padding": 1},
    {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel": 2},
    {"kernel": (3, 2), "stride": (1, 3), "dilation": (2, 1)},
    {"kernel": 3, "stride": 2, "padding": "same"},
    {"kernel": 4, "stride": 3, "padding": 2, "ceil_mode": True},
    {"output_size": (5, 4)},
    {"output_size": 1},
]


def _data(dtype, nan=False):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, (3, 37, 29)).astype(dtype)
    if nan:
        x[1, 6:9, 4] = np.nan
    return x


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("opts", CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_kind_and_option_equals_in_memory_at_seams(kind, opts):
    x = _data(np.float32)
    d = da.from_array(x, chunks=(2, 7, 5))  # 7 and 5 divide no kernel, stride or padding
    got = pool(d, kind, **opts)
    assert isinstance(got, da.Array)  # lazy
    np.testing.assert_array_equal(got.compute(), pool(x, kind, **opts))


@pytest.mark.parametrize("kind", ["max", "avg", "median", "mode", "sum"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_integer_and_bool_dtypes(kind, dtype):
    x = _data(np.int64).astype(dtype)
    d = da.from_array(x, chunks=(3, 5, 6))
    got = pool(d, kind, 3, stride=2, padding=1)
    want = pool(x, kind, 3, stride=2, padding=1)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.compute(), want)


def test_nan_rules_dtype_override_and_indices():
    x = _data(np.float32, nan=True)
    d = da.from_array(x, chunks=(1, 4, 9))
    for kw in ({"ignore_nan": True}, {"ignore_nan": False}, {"dtype": np.uint8}):
        np.testing.assert_array_equal(pool(d, "avg", 3, **kw).compute(),
                                      pool(x, "avg", 3, **kw))
    out, idx = pool(d, "max", 3, stride=2, padding=1, return_indices=True)
    want_out, want_idx = pool(x, "max", 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(out.compute(), want_out)
    np.testing.assert_array_equal(idx.compute(), want_idx)


def test_output_chunks_follow_the_input_chunks():
    d = da.zeros((64, 48), chunks=(16, 12), dtype=np.float32)
    out = pool(d, "max", 2)
    assert out.chunks == ((8, 8, 8, 8), (6, 6, 6, 6))
    assert out.numblocks == d.numblocks


def test_pipeline_stays_lazy_and_exact():
    x = _data(np.float32)
    pipe = Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2")
    got = pipe(da.from_array(x, chunks=(3, 6, 6)))
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(), pipe(x))


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), k=st.integers(1, 4), s=st.integers(1, 4),
       p=st.integers(0, 2), ceil=st.booleans(), c0=st.integers(2, 9), c1=st.integers(2, 9))
def test_any_chunking_gives_the_in_memory_values(kind, k, s, p, ceil, c0, c1):
    x = np.random.default_rng(k * 7 + s).standard_normal((19, 17)).astype(np.float32)
    try:
        want = pool(x, kind, k, stride=s, padding=p, ceil_mode=ceil)
    except ValueError:
        return
    got = pool(da.from_array(x, chunks=(c0, c1)), kind, k, stride=s, padding=p,
               ceil_mode=ceil)
    np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.slow
def test_on_a_local_cluster_of_processes():
    distributed = pytest.importorskip("distributed")
    x = _data(np.float32)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        d = da.from_array(x, chunks=(1, 8, 8))
        for kind in ("max", "avg", "median", "mode"):
            got = client.compute(pool(d, kind, 3, stride=2, padding=1)).result()
            np.testing.assert_array_equal(got, pool(x, kind, 3, stride=2, padding=1))
        assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.parametrize("dtype,kw", [(np.uint8, {}), (np.uint16, {"nodata": 7}),
                                      (np.float32, {"ignore_nan": True}), (np.int32, {})])
def test_pyramid_levels_stay_lazy_and_exact(dtype, kw):
    from poolcli.pyramid import pyramid

    x = np.random.default_rng(5).integers(0, 9, (37, 53)).astype(dtype)
    if dtype == np.float32:
        x[3:9, 4] = np.nan
    want = pyramid(x, **kw)
    got = pyramid(da.from_array(x, chunks=(10, 16)), **kw)
    assert len(got) == len(want) and all(isinstance(g, da.Array) for g in got[1:])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(g), w)


@pytest.mark.parametrize("kind", ["mode", "max", "median"])
def test_pyramid_of_labels_on_dask(kind):
    from poolcli.pyramid import pyramid

    x = np.random.default_rng(6).integers(0, 4, (3, 37, 29)).astype(np.uint32)
    want = pyramid(x, kind=kind, axes=(1, 2))
    got = pyramid(da.from_array(x, chunks=(1, 9, 11)), kind=kind, axes=(1, 2))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(g), w)
