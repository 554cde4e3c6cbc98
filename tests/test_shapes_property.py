"""Shape rules as hypothesis properties: pool, Pipeline.output_shape and SPEC's formula agree."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli import Pipeline, pool


def spec_axis(n, k, s, d, pad, ceil_mode):
    """SPEC section 1 for one axis: (out, before, after), or None where SPEC says error."""
    span = d * (k - 1) + 1
    if pad == "same":
        out = math.ceil(n / s)
        total = max((out - 1) * s + span - n, 0)
        before, after = total // 2, total - total // 2
    else:
        before = after = 0 if pad == "valid" else pad
        if span > n + before + after:
            return None  # a kernel longer than the padded input
        q = (n + before + after - span) / s
        out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
        if ceil_mode and (out - 1) * s >= n + before:
            out -= 1
    for i in range(out):
        cells = [i * s - before + j * d for j in range(k)]
        if not any(0 <= c < n for c in cells):
            return None  # a window that holds no input cell
    return out, before, after


def stage_text(kind, ks, ss, ds, pad, ceil_mode, axes):
    def xs(vals):
        return "x".join(str(v) for v in vals)

    p = pad if isinstance(pad, str) else xs([pad] * len(ks))
    ceil = "true" if ceil_mode else "false"
    return f"{kind}:k={xs(ks)},s={xs(ss)},d={xs(ds)},p={p},ceil={ceil},axes={xs(axes)}"


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 10), min_size=ndim, max_size=ndim)))
    npool = draw(st.integers(1, min(ndim, 3)))
    axes = tuple(draw(st.permutations(range(ndim)))[:npool])
    ks = [draw(st.integers(1, 5)) for _ in axes]
    ss = [draw(st.integers(1, 4)) for _ in axes]
    ds = [draw(st.integers(1, 3)) for _ in axes]
    pad = draw(st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])))
    ceil_mode = draw(st.booleans())
    kind = draw(st.sampled_from(["max", "avg", "median"]))
    return shape, axes, ks, ss, ds, pad, ceil_mode, kind


@settings(max_examples=150, deadline=None)
@given(cases())
def test_pool_shape_equals_plan_and_spec_formula(case):
    shape, axes, ks, ss, ds, pad, ceil_mode, kind = case
    per_axis = [
        spec_axis(shape[a], k, s, d, pad, ceil_mode)
        for a, k, s, d in zip(axes, ks, ss, ds, strict=True)
    ]
    text = stage_text(kind, ks, ss, ds, pad, ceil_mode, axes)
    x = np.zeros(shape, dtype=np.float32)
    kwargs = {
        "stride": tuple(ss),
        "dilation": tuple(ds),
        "padding": pad,
        "ceil_mode": ceil_mode,
        "axes": axes,
    }
    if any(r is None for r in per_axis):
        with pytest.raises(ValueError):
            pool(x, kind, tuple(ks), **kwargs)
        # parse may already reject options that fail on every shape; else output_shape does
        with pytest.raises(ValueError):
            Pipeline.parse(text).output_shape(shape)
        return
    pipe = Pipeline.parse(text)
    expected = list(shape)
    for a, (out, _, _) in zip(axes, per_axis, strict=True):
        expected[a] = out
    got = pool(x, kind, tuple(ks), **kwargs)
    assert got.shape == tuple(expected)
    assert pipe.output_shape(shape) == tuple(expected)
    assert pipe(x).shape == tuple(expected)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 7),
    s=st.integers(1, 6),
    d=st.integers(1, 3),
)
def test_same_gives_ceil_n_over_stride(n, k, s, d):
    x = np.zeros(n)
    if spec_axis(n, k, s, d, "same", False) is None:
        # a dilated "same" window can step over every input cell: SPEC makes that an error
        with pytest.raises(ValueError):
            pool(x, "max", k, stride=s, dilation=d, padding="same", axes=0)
        return
    got = pool(x, "max", k, stride=s, dilation=d, padding="same", axes=0)
    assert got.shape == (math.ceil(n / s),)
    pipe = Pipeline.parse(f"max:k={k},s={s},d={d},p=same,axes=0")
    assert pipe.output_shape((n,)) == (math.ceil(n / s),)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 25),
    k=st.integers(1, 6),
    s=st.integers(1, 5),
    d=st.integers(1, 3),
    before=st.integers(0, 4),
    after=st.integers(0, 4),
    ceil_mode=st.booleans(),
)
def test_every_window_holds_an_input_cell_unless_error(n, k, s, d, before, after, ceil_mode):
    # mark each input cell with 1 and pool by max: a window without an input cell would
    # have no value to give, so pool must raise instead; a window with one gives 1
    x = np.ones(n, dtype=np.int64)
    kw = {"stride": s, "dilation": d, "padding": ((before, after),), "ceil_mode": ceil_mode}
    try:
        got = pool(x, "max", k, axes=0, **kw)
    except ValueError:
        span = d * (k - 1) + 1
        total = n + before + after - span
        if total >= 0:
            # then some window must be all padding or past the input
            q = total // s + 1 if not ceil_mode else -(-total // s) + 1
            if ceil_mode and (q - 1) * s >= n + before:
                q -= 1
            starts = [i * s - before for i in range(q)]
            assert any(not any(0 <= st0 + j * d < n for j in range(k)) for st0 in starts), (
                "pool raised though every window holds an input cell"
            )
        return
    assert np.all(got == 1)
    # count of input cells per window, from SPEC's geometry, is >= 1 for every cell
    counts = pool(x, "sum", k, axes=0, **kw)
    assert counts.shape == got.shape and np.all(counts >= 1)
    for i, c in enumerate(counts):
        cells = [i * s - before + j * d for j in range(k)]
        assert c == sum(0 <= p < n for p in cells)


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    data=st.data(),
)
def test_adaptive_output_shape_and_windows(shape, data):
    outs = tuple(data.draw(st.integers(1, 8)) for _ in shape)
    axes = tuple(range(len(shape)))
    x = np.zeros(shape)
    got = pool(x, "avg", output_size=outs, axes=axes)
    assert got.shape == outs
    text = "avg:out=" + "x".join(map(str, outs)) + ",axes=" + "x".join(map(str, axes))
    assert Pipeline.parse(text).output_shape(tuple(shape)) == outs
    # every adaptive window covers [floor(i*n/out), ceil((i+1)*n/out)): count its cells
    ones = np.ones(shape, dtype=np.int64)
    counts = pool(ones, "sum", output_size=outs, axes=axes)
    for idx in np.ndindex(*outs):
        want = 1
        for i, n, o in zip(idx, shape, outs, strict=True):
            want *= math.ceil((i + 1) * n / o) - math.floor(i * n / o)
        assert counts[idx] == want
