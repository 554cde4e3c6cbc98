"""PoolPlan.part: any block of windows, pooled from just the cells it reads, equals the
whole-array result there (what chunked engines rely on)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli import pool
from poolcli.core.engine import execute
from poolcli.core.kinds import KINDS
from poolcli.core.plan import make_plan

OPTIONS = st.fixed_dictionaries({
    "kernel": st.integers(1, 4), "stride": st.integers(1, 4), "dilation": st.integers(1, 2),
    "padding": st.integers(0, 2), "ceil_mode": st.booleans(),
    "count_include_pad": st.booleans(),
})


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), opts=OPTIONS, n0=st.integers(4, 19),
       n1=st.integers(4, 13), cut=st.data(), nan=st.booleans())
def test_every_part_equals_the_whole(kind, opts, n0, n1, cut, nan):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (2, n0, n1)).astype(np.float32)
    if nan:
        x[0, n0 // 2, 1] = np.nan
    try:
        plan = make_plan(x.shape, kind, **opts)
    except ValueError:  # e.g. a window that holds no input cell
        return
    whole = execute(plan, x)
    windows = []
    for ap in plan.axis_plans:
        a = cut.draw(st.integers(0, ap.out - 1))
        b = cut.draw(st.integers(a + 1, ap.out))
        windows.append((a, b))
    sub, key = plan.part(tuple(windows), x.shape)
    got = execute(sub, x[key])
    want = whole[:, windows[0][0]:windows[0][1], windows[1][0]:windows[1][1]]
    np.testing.assert_array_equal(got, want)


def test_a_part_keeps_padding_counts_and_ceil_windows():
    x = np.arange(1.0, 12.0)
    plan = make_plan(x.shape, "avg", 3, stride=2, padding=1, ceil_mode=True, axes=0)
    whole = pool(x, "avg", 3, stride=2, padding=1, ceil_mode=True, axes=0)
    for o0, o1 in [(0, 1), (1, 3), (4, plan.out_shape[0]), (0, plan.out_shape[0])]:
        sub, key = plan.part(((o0, o1),), x.shape)
        assert sub.out_shape == (o1 - o0,)
        np.testing.assert_array_equal(execute(sub, x[key]), whole[o0:o1])


def test_adaptive_axes_are_parts_only_whole():
    plan = make_plan((7, 5), "avg", output_size=(3, 2))
    with pytest.raises(ValueError):
        plan.part(((0, 1), (0, 2)), (7, 5))
    sub, key = plan.part(((0, 3), (0, 2)), (7, 5))
    assert sub == plan and key == (slice(0, 7), slice(0, 5))
