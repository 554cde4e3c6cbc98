"""Pipeline.parse and Pipeline.from_toml: SPEC's stage grammar, equal to chained pool calls."""

import numpy as np
import pytest

from poolcli import Pipeline, PoolError, pool

# (stage text, the same chain as pool() calls, the same chain as a TOML file)
CASES = [
    (
        "max:k=3,s=2,p=1 | avg:k=2",
        [("max", {"kernel": 3, "stride": 2, "padding": 1}), ("avg", {"kernel": 2})],
        '[[stage]]\nkind = "max"\nk = 3\ns = 2\np = 1\n\n[[stage]]\nkind = "avg"\nk = 2\n',
    ),
    (
        "max:k=3x2,axes=1x2",
        [("max", {"kernel": (3, 2), "axes": (1, 2)})],
        '[[stage]]\nkind = "max"\nk = [3, 2]\naxes = [1, 2]\n',
    ),
    (
        "max:k=2x3,axes=2x1",
        [("max", {"kernel": (2, 3), "axes": (2, 1)})],
        '[[stage]]\nkind = "max"\nkernel = [2, 3]\naxes = [2, 1]\n',
    ),
    (
        "avg:kernel=3,stride=2,padding=same",
        [("avg", {"kernel": 3, "stride": 2, "padding": "same"})],
        '[[stage]]\nkind = "avg"\nkernel = 3\nstride = 2\npadding = "same"\n',
    ),
    (
        "avg:k=3,s=2,p=1,ceil=true,count_pad=false",
        [
            (
                "avg",
                {
                    "kernel": 3,
                    "stride": 2,
                    "padding": 1,
                    "ceil_mode": True,
                    "count_include_pad": False,
                },
            )
        ],
        '[[stage]]\nkind = "avg"\nk = 3\ns = 2\np = 1\nceil = true\ncount_pad = false\n',
    ),
    (
        "avg:k=3,s=2,p=same,count_pad=true,ceil=false",
        [("avg", {"kernel": 3, "stride": 2, "padding": "same", "count_include_pad": True})],
        '[[stage]]\nkind = "avg"\nk = 3\ns = 2\np = "same"\ncount_pad = true\nceil = false\n',
    ),
    (
        "avg:k=2,p=1,divisor=3",
        [("avg", {"kernel": 2, "padding": 1, "divisor_override": 3})],
        '[[stage]]\nkind = "avg"\nk = 2\np = 1\ndivisor = 3\n',
    ),
    (
        "lp:k=2,norm=3|lp:k=2,norm=1.5",
        [("lp", {"kernel": 2, "norm": 3.0}), ("lp", {"kernel": 2, "norm": 1.5})],
        '[[stage]]\nkind = "lp"\nk = 2\nnorm = 3\n[[stage]]\nkind = "lp"\nk = 2\nnorm = 1.5\n',
    ),
    (
        "max:out=3x2 | avg:output_size=1",
        [("max", {"output_size": (3, 2)}), ("avg", {"output_size": 1})],
        '[[stage]]\nkind = "max"\nout = [3, 2]\n[[stage]]\nkind = "avg"\noutput_size = 1\n',
    ),
    (
        "avg:k=2,ignore_nan=true|sum:k=2,ignore_nan=false",
        [("avg", {"kernel": 2, "ignore_nan": True}), ("sum", {"kernel": 2})],
        '[[stage]]\nkind = "avg"\nk = 2\nignore_nan = true\n'
        '[[stage]]\nkind = "sum"\nk = 2\nignore_nan = false\n',
    ),
    (
        "min:kernel=2,dilation=2,stride=1 | sum:d=2x1,k=2",
        [
            ("min", {"kernel": 2, "dilation": 2, "stride": 1}),
            ("sum", {"kernel": 2, "dilation": (2, 1)}),
        ],
        '[[stage]]\nkind = "min"\nkernel = 2\ndilation = 2\nstride = 1\n'
        '[[stage]]\nkind = "sum"\nd = [2, 1]\nk = 2\n',
    ),
    (
        "median:k=3,s=1,p=1x0 | mode:k=2,p=valid",
        [
            ("median", {"kernel": 3, "stride": 1, "padding": (1, 0)}),
            ("mode", {"kernel": 2, "padding": "valid"}),
        ],
        '[[stage]]\nkind = "median"\nk = 3\ns = 1\np = [1, 0]\n'
        '[[stage]]\nkind = "mode"\nk = 2\np = "valid"\n',
    ),
    (
        "mean:k=2|l2:k=2,s=1|max",
        [("mean", {"kernel": 2}), ("l2", {"kernel": 2, "stride": 1}), ("max", {})],
        '[[stage]]\nkind = "mean"\nk = 2\n[[stage]]\nkind = "l2"\nk = 2\ns = 1\n'
        '[[stage]]\nkind = "max"\n',
    ),
    (
        "max:k=2,axes=0",
        [("max", {"kernel": 2, "axes": 0})],
        '[[stage]]\nkind = "max"\nk = 2\naxes = 0\n',
    ),
]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 13, 11))
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


def chain(x, calls):
    for kind, kw in calls:
        x = pool(x, kind, **kw)
    return x


IDS = [text for text, _, _ in CASES]


@pytest.mark.parametrize("text,calls,toml", CASES, ids=IDS)
def test_parse_equals_chained_pool_calls(text, calls, toml):
    x = data()
    pipe = Pipeline.parse(text)
    want = chain(x, calls)
    got = pipe(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert pipe.output_shape(x.shape) == want.shape


@pytest.mark.parametrize("text,calls,toml", CASES, ids=IDS)
def test_toml_file_is_equivalent(text, calls, toml, tmp_path):
    path = tmp_path / "pipe.toml"
    path.write_text(toml)
    x = data()
    from_file = Pipeline.from_toml(path)
    want = chain(x, calls)
    np.testing.assert_array_equal(from_file(x), want)
    np.testing.assert_array_equal(Pipeline.from_toml(str(path))(x), want)
    assert (
        from_file.output_shape(x.shape) == want.shape == Pipeline.parse(text).output_shape(x.shape)
    )


def test_stage_text_with_and_without_spaces_is_the_same():
    x = data()
    a = Pipeline.parse("max:k=3,s=2,p=1|avg:k=2")(x)
    b = Pipeline.parse("  max:k=3,s=2,p=1   |   avg:k=2 ")(x)
    np.testing.assert_array_equal(a, b)


def test_spec_example_output_shape():
    pipe = Pipeline.parse("max:k=3,s=2,p=1 | avg:k=2")
    assert pipe.output_shape((224, 224)) == (56, 56)
    assert pipe.output_shape((3, 224, 224)) == (3, 56, 56)


def test_differences_in_text_change_the_result():
    # guards against a parser that silently ignores keys
    x = data()
    base = Pipeline.parse("avg:k=3,s=2,p=1")(x)
    for other in (
        "avg:k=3,s=2,p=1,count_pad=false",
        "avg:k=3,s=2,p=1,divisor=2",
        "avg:k=3,s=2,p=1,ignore_nan=true",
    ):
        assert not np.array_equal(Pipeline.parse(other)(x), base, equal_nan=True), other
    # 12: floor((12 + 2 - 3) / 2) + 1 = 6, ceil mode 7; 10: 5 and 6
    assert Pipeline.parse("avg:k=3,s=2,p=1").output_shape((12, 10)) == (6, 5)
    assert Pipeline.parse("avg:k=3,s=2,p=1,ceil=true").output_shape((12, 10)) == (7, 6)
    assert Pipeline.parse("max:k=2,d=2").output_shape((13, 11)) == (6, 5)


BAD = [
    ("maxx:k=2", "maxx"),
    ("max:q=2", "q"),
    ("max:k=abc", "abc"),
    ("max:k", "k"),
    ("max:k=3x", "3x"),
    ("max:ceil=maybe", "maybe"),
    ("avg:count_pad=2", "count_pad"),
    ("lp:norm=abc", "abc"),
    ("avg:divisor=one", "one"),
    ("max:p=middle", "middle"),
    ("max:k=2 | avgg:k=2", "avgg"),
    ("max:k=0", "0"),
    ("lp:k=2,norm=-1", "-1"),
    ("max:k=2,axes=0x0", "axes"),
]


@pytest.mark.parametrize("text,part", BAD, ids=[t for t, _ in BAD])
def test_bad_pipeline_text_names_the_bad_part(text, part):
    with pytest.raises(PoolError) as excinfo:
        Pipeline.parse(text).output_shape((8, 8))
    assert part in str(excinfo.value)


@pytest.mark.parametrize("text", ["", "   ", "max:k=2 | | avg:k=2", "max:k=2 |", "| max"])
def test_empty_pipeline_or_stage_is_an_error(text):
    with pytest.raises(PoolError):
        Pipeline.parse(text).output_shape((8, 8))


@pytest.mark.parametrize(
    "toml,part",
    [
        ("[[stage]]\nk = 2\n", "kind"),
        ('[[stage]]\nkind = "max"\nq = 2\n', "q"),
        ('[[stage]]\nkind = "maxx"\n', "maxx"),
        ('[[stage]]\nkind = "max"\nk = "abc"\n', "abc"),
        ('[[stage]]\nkind = "max"\nk = 0\n', "0"),
    ],
)
def test_bad_toml_pipeline_names_the_bad_part(toml, part, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(PoolError) as excinfo:
        Pipeline.from_toml(path).output_shape((8, 8))
    assert part in str(excinfo.value)
