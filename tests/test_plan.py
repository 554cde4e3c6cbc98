"""The plan: per-axis arithmetic, notes about cells no window reads, caching and equality."""

import numpy as np

from poolcli import Pipeline, PoolError
from poolcli.core.plan import make_plan


def test_equal_options_give_the_same_plan_object():
    a = make_plan((8, 8), "max", 3, 2, 1)
    b = make_plan((8, 8), "max", [3, 3], (2, 2), 1)
    assert a == b
    assert make_plan((8, 8), "max", 3, 2, 1) is a  # cached: parsed once


def test_alias_mean_is_avg():
    assert make_plan((4, 4), "mean").kind == "avg"


def test_axis_plan_fields_and_describe():
    (ap,) = make_plan((224,), "max", 3, 2, 1, axes=0).axis_plans
    assert (ap.n, ap.kernel, ap.stride, ap.dilation, ap.before, ap.after, ap.out) == (
        224, 3, 2, 1, 1, 1, 112)
    assert ap.describe() == "axis 0: n=224 kernel=3 stride=2 dilation=1 padding=1+1 -> 112"


def test_same_padding_smaller_half_before():
    (ap,) = make_plan((7,), "max", 4, 2, "same").axis_plans
    # out = ceil(7/2) = 4; total = (4-1)*2 + 4 - 7 = 3 -> 1 before, 2 after
    assert (ap.out, ap.before, ap.after) == (4, 1, 2)
    assert make_plan((7,), "avg", 4, 2, "same").count_include_pad is False
    assert make_plan((7,), "avg", 4, 2, 1).count_include_pad is True


def test_note_for_rows_never_pooled_and_ceil_hint():
    plan = make_plan((5, 4), "max", 2)
    assert plan.notes() == ["axis 0: the last 1 row is never pooled; ceil_mode=True keeps it"]
    assert make_plan((5, 4), "max", 2, ceil_mode=True).notes() == []
    three = make_plan((7, 8), "max", 4)
    assert three.notes() == ["axis 0: the last 3 rows are never pooled; ceil_mode=True keeps them"]


def test_note_for_gaps_when_stride_exceeds_window():
    plan = make_plan((10,), "max", 2, 3, axes=0)
    notes = plan.notes()
    assert any("inside the input are never pooled (stride 3 > window span 2)" in n
               for n in notes)


def test_note_for_ceil_window_dropped_in_padding():
    # n=5, k=2, s=2, p=1, ceil: raw ceil gives 4 windows; the 4th starts at 6 >= 5+1.
    plan = make_plan((5,), "max", 2, 2, 1, ceil_mode=True, axes=0)
    assert plan.axis_plans[0].out == 3
    assert any("drops the last window" in n for n in plan.notes())


def test_covered_matches_a_direct_count():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n, k, s, d, p = (int(v) for v in rng.integers(1, 6, size=5))
        try:
            (ap,) = make_plan((n + 6,), "max", k, s, p % 3, d, axes=0).axis_plans
        except PoolError:
            continue
        direct = np.zeros(ap.n, bool)
        for i in range(ap.out):
            for j in range(ap.kernel):
                q = i * ap.stride - ap.before + j * ap.dilation
                if 0 <= q < ap.n:
                    direct[q] = True
        assert np.array_equal(ap.covered(), direct)


def test_adaptive_divisible_becomes_a_regular_window():
    (ap,) = make_plan((12,), "avg", output_size=4, axes=0).axis_plans
    assert (ap.adaptive, ap.kernel, ap.stride) == (False, 3, 3)
    (ap,) = make_plan((10,), "avg", output_size=4, axes=0).axis_plans
    assert ap.adaptive and ap.kernel == 3  # windows [0,3) [2,5) [5,8) [7,10)
    starts, ends = ap.bounds()
    assert starts.tolist() == [0, 2, 5, 7] and ends.tolist() == [3, 5, 8, 10]


def test_per_axis_options_follow_the_axes_order_given():
    a = make_plan((6, 9), "max", (3, 2), axes=(1, 0))
    assert [(p.axis, p.kernel) for p in a.axis_plans] == [(0, 2), (1, 3)]


def test_pipeline_plans_chain_shapes():
    plans = Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2").plans((224, 224, 3), axes=(0, 1))
    assert [p.out_shape for p in plans] == [(112, 112, 3), (56, 56, 3)]
    assert plans[0].axes == (0, 1)
