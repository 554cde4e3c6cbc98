"""The brute-force reference reproduces SPEC section 3 and small hand-computed cases.

If these pass, a reader can trust ``tests/reference.py`` as the yardstick for ``pool``.
"""

import math

import numpy as np
import pytest
from reference import out_length, ref_pool, same_padding

X16 = np.arange(1, 17).reshape(4, 4)


# --- SPEC section 3 -------------------------------------------------------------------------


def test_spec_max_k2_s2():
    out = ref_pool(X16, "max", 2, stride=2)
    assert out.tolist() == [[6, 8], [14, 16]]
    assert out.dtype == X16.dtype


def test_spec_avg_k2_s2():
    out = ref_pool(X16, "avg", 2, stride=2)
    assert out.tolist() == [[3.5, 5.5], [11.5, 13.5]]
    assert out.dtype == np.float64


def test_spec_l2_top_left():
    out = ref_pool(X16, "l2", 2, stride=2)
    assert out[0, 0] == pytest.approx(math.sqrt((1 + 4 + 25 + 36) / 4), rel=1e-15)


def test_spec_ceil_mode_shape():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert ref_pool(x, "max", 2, stride=2, ceil_mode=True).shape == (1, 1, 3, 3)
    assert ref_pool(x, "max", 2, stride=2).shape == (1, 1, 2, 2)


def test_spec_224_k3_s2_p1():
    assert out_length(224, 3, 2, 1, 1, 1, False) == 112
    assert ref_pool(np.zeros((224, 224)), "max", 3, stride=2, padding=1).shape == (112, 112)


def test_spec_same_k3_s2_on_7():
    assert same_padding(7, 3, 2, 1)[0] == 4
    assert ref_pool(np.zeros(7), "max", 3, stride=2, padding="same", axes=0).shape == (4,)


# --- hand-computed ----------------------------------------------------------------------------


def test_1d_kinds_by_hand():
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    assert ref_pool(x, "max", 3, stride=2).tolist() == [4, 5, 9]
    assert ref_pool(x, "min", 3, stride=2).tolist() == [1, 1, 2]
    assert ref_pool(x, "sum", 3, stride=2).tolist() == [8, 10, 16]
    assert ref_pool(x, "sum", 3, stride=2).dtype == np.int64
    assert ref_pool(x, "mean", 4).tolist() == [9 / 4, 22 / 4]
    # median of [3,1,4,1] sorted [1,1,3,4] -> lower middle 1; [5,9,2,6] -> [2,5,6,9] -> 5
    assert ref_pool(x, "median", 4).tolist() == [1, 5]
    assert ref_pool(x, "mode", 4).tolist() == [1, 2]  # second window: all once -> smallest
    assert ref_pool(x, "lp", 2, norm=1.0).tolist() == [4.0, 5.0, 14.0, 8.0]


def test_padding_counts_and_never_wins():
    x = np.array([-1.0, -2.0, -3.0])
    # windows over [0, -1, -2] [-2, -3, 0]; zeros are padding
    assert ref_pool(x, "max", 3, stride=2, padding=1).tolist() == [-1.0, -2.0]
    assert ref_pool(x, "avg", 3, stride=2, padding=1).tolist() == [-1.0, -5 / 3]
    assert ref_pool(x, "avg", 3, stride=2, padding=1, count_include_pad=False).tolist() == [
        -1.5,
        -2.5,
    ]
    assert ref_pool(x, "avg", 3, stride=2, padding=1, divisor_override=2).tolist() == [
        -1.5,
        -2.5,
    ]
    assert ref_pool(x, "median", 3, stride=2, padding=1).tolist() == [-2.0, -3.0]


def test_ceil_mode_cells_beyond_padding_never_count():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # k=2 s=2 ceil: windows [1,2] [3,4] [5, beyond]; the last divides by 1
    assert ref_pool(x, "avg", 2, ceil_mode=True).tolist() == [1.5, 3.5, 5.0]
    # with padding=1: [pad,1] [2,3] [4,5] -> ceil adds nothing new
    assert ref_pool(x, "avg", 2, padding=1, ceil_mode=True).tolist() == [0.5, 2.5, 4.5]


def test_ceil_mode_drop_rule():
    # n=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but window 3 starts at 6 >= n+before=6
    assert out_length(5, 2, 2, 1, 1, 1, True) == 3
    assert out_length(4, 2, 2, 1, 1, 1, True) == 3  # ceil(4/2)+1=3, start 4 < 5 kept


def test_same_padding_split():
    # out = ceil(7/2)=4, total = 3*2 + 4 - 7 = 3 -> 1 before, 2 after
    assert same_padding(7, 4, 2, 1) == (4, 1, 2)
    # "same" does not count padding by default
    x = np.array([1.0, 2.0, 3.0])
    assert ref_pool(x, "avg", 2, stride=1, padding="same").tolist() == [1.5, 2.5, 3.0]
    assert ref_pool(x, "avg", 2, stride=1, padding="same", count_include_pad=True).tolist() == [
        1.5,
        2.5,
        1.5,
    ]


def test_before_after_pairs_and_dilation():
    x = np.array([1, 2, 3, 4, 5])
    # pad (2, 0): [p p 1 2 3 4 5]; k=2 d=2 s=3 -> windows {p,1} {2,4}
    assert ref_pool(x, "max", 2, stride=3, dilation=2, padding=[(2, 0)]).tolist() == [1, 4]


def test_adaptive_windows():
    x = np.arange(5.0)
    # out 3 on n 5: [0,2) [1,4) [3,5)
    assert ref_pool(x, "avg", output_size=3, axes=0).tolist() == [0.5, 2.0, 3.5]
    assert ref_pool(x, "max", output_size=1, axes=0).tolist() == [4.0]


def test_nan_propagates_and_ignore_nan():
    x = np.array([1.0, np.nan, 3.0, 4.0, np.nan, np.nan])
    assert np.isnan(ref_pool(x, "max", 2)).tolist() == [True, False, True]
    assert np.isnan(ref_pool(x, "median", 2)).tolist() == [True, False, True]
    got = ref_pool(x, "avg", 2, ignore_nan=True)
    assert got[:2].tolist() == [1.0, 3.5] and np.isnan(got[2])  # all-NaN window -> NaN
    got = ref_pool(x, "sum", 2, ignore_nan=True)
    assert got[:2].tolist() == [1.0, 7.0] and np.isnan(got[2])
    # NaN cells leave avg's divisor; padded cells still count (count_include_pad default)
    y = np.array([np.nan, 3.0])
    assert ref_pool(y, "avg", 3, padding=1, ignore_nan=True).tolist() == [1.5]


def test_indices_ties_and_nan():
    x = np.array([[5, 1], [5, 5]])
    out, idx = ref_pool(x, "max", 2, return_indices=True)
    assert out.tolist() == [[5]] and idx.tolist() == [[0]]
    out, idx = ref_pool(x, "min", 2, return_indices=True)
    assert idx.tolist() == [[1]]
    f = np.array([1.0, np.nan, 3.0, np.nan])
    out, idx = ref_pool(f, "max", 4, return_indices=True)
    assert np.isnan(out[0]) and idx.tolist() == [1]


def test_indices_are_within_pooled_axes_of_unpadded_input():
    x = np.zeros((2, 3, 4))
    x[1, 2, 3] = 7
    out, idx = ref_pool(x, "max", 2, stride=2, padding=1, return_indices=True)
    assert out[1, 1, 2] == 7 and idx[1, 1, 2] == 2 * 4 + 3


def test_bool_and_dtype_rules():
    b = np.array([True, False, False, False])
    assert ref_pool(b, "max", 2).tolist() == [True, False]
    assert ref_pool(b, "min", 2).tolist() == [False, False]
    assert ref_pool(b, "max", 2).dtype == np.bool_
    assert ref_pool(b, "sum", 2).dtype == np.int64
    assert ref_pool(b, "avg", 2).dtype == np.float64
    u = np.array([2**63, 2**63], dtype=np.uint64)
    s = ref_pool(u, "sum", 2)
    assert s.dtype == np.uint64 and s.tolist() == [0]  # wraps like NumPy
    h = np.array([1, 2], dtype=np.float16)
    assert ref_pool(h, "l2", 2).dtype == np.float16
    assert ref_pool(np.array([1, 2], np.int8), "l2", 2).dtype == np.float64
    assert ref_pool(np.array([1, 2], np.uint8), "sum", 2).dtype == np.int64


def test_axes_and_per_axis_order():
    x = np.arange(24).reshape(2, 3, 4)
    out = ref_pool(x, "max", (3, 2), axes=(1, 2))
    assert out.shape == (2, 1, 2)
    out2 = ref_pool(x, "max", (2, 3), axes=(2, 1))  # 2 on axis 2, 3 on axis 1
    assert np.array_equal(out, out2)
    assert ref_pool(x, "max", 2, axes=0).shape == (1, 3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel": 0},
        {"stride": 0},
        {"dilation": 0},
        {"padding": -1},
        {"kernel": 9},
        {"padding": 2},
        {"norm": 0.0},
        {"kind": "bogus"},
        {"kind": "avg", "return_indices": True},
        {"axes": (0, 0)},
        {"axes": 5},
    ],
)
def test_reference_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ref_pool(np.zeros((3, 3)), **kwargs)
