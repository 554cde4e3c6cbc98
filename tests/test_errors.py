"""Every error path of SPEC section 1: the exception type, and a message naming argument, value."""

import re

import numpy as np
import pytest

from poolcli import PoolError, pool

X = np.zeros((5, 5))


def test_poolerror_is_a_valueerror():
    assert issubclass(PoolError, ValueError)


# (kwargs, words the message must contain: the argument's name and the offending value)
VALUE_ERRORS = [
    ({"kernel": 0}, ["kernel", "0"]),
    ({"kernel": -1}, ["kernel", "-1"]),
    ({"kernel": (2, 0)}, ["kernel", "0"]),
    ({"stride": 0}, ["stride", "0"]),
    ({"stride": (1, -2)}, ["stride", "-2"]),
    ({"dilation": 0}, ["dilation", "0"]),
    ({"padding": -1}, ["padding", "-1"]),
    ({"padding": (0, -2)}, ["padding", "-2"]),
    ({"padding": ((0, 0), (1, -1))}, ["padding", "-1"]),
    ({"padding": "middle"}, ["padding", "middle"]),
    ({"kernel": (2, 2, 2), "axes": (0, 1)}, ["kernel", "(2, 2, 2)"]),
    ({"stride": (1, 1, 1)}, ["stride", "(1, 1, 1)"]),
    ({"dilation": (1,), "axes": (0, 1)}, ["dilation", "(1,)"]),
    ({"padding": (1, 1, 1)}, ["padding", "(1, 1, 1)"]),
    ({"axes": (0, 0)}, ["axes", "(0, 0)"]),
    ({"axes": (1, -1)}, ["axes", "(1, -1)"]),
    ({"axes": 5}, ["ax", "5"]),
    ({"axes": (0, -3)}, ["ax", "-3"]),
    ({"kernel": 9}, ["kernel", "9"]),
    ({"kernel": (2, 6), "padding": 0}, ["kernel", "6"]),
    ({"kernel": 3, "dilation": 3}, ["dilation", "3"]),
    ({"kernel": 2, "padding": 2}, ["padding", "2"]),
    ({"kernel": 1, "padding": ((0, 0), (0, 3))}, ["padding", "3"]),
    ({"kind": "lp", "norm": 0.0}, ["norm", "0"]),
    ({"kind": "lp", "norm": -1.5}, ["norm", "-1.5"]),
    ({"kind": "l2", "norm": 0}, ["norm", "0"]),
    ({"kind": "maxx"}, ["kind", "maxx"]),
    ({"kind": "avg", "return_indices": True}, ["return_indices", "avg"]),
    ({"kind": "median", "return_indices": True}, ["return_indices", "median"]),
    ({"kind": "sum", "return_indices": True}, ["return_indices", "sum"]),
    ({"output_size": 0}, ["output_size", "0"]),
    ({"output_size": (2, 2, 2)}, ["output_size", "(2, 2, 2)"]),
    ({"kind": "avg", "divisor_override": 0}, ["divisor", "0"]),  # README: must be > 0
]


def _check(excinfo, words):
    msg = str(excinfo.value)
    for w in words:
        assert re.search(re.escape(w), msg), f"{w!r} not in message {msg!r}"


@pytest.mark.parametrize("kwargs,words", VALUE_ERRORS, ids=[repr(kw) for kw, _ in VALUE_ERRORS])
def test_bad_argument_raises_valueerror_naming_it(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words[0])) as excinfo:
        pool(X, **kwargs)
    assert isinstance(excinfo.value, PoolError)
    _check(excinfo, words)


TYPE_ERRORS = [
    ({"kernel": "a"}, ["kernel", "a"]),
    ({"kernel": 2.5}, ["kernel", "2.5"]),
    ({"kernel": None}, ["kernel", "None"]),
    ({"stride": 1.5}, ["stride", "1.5"]),
    ({"dilation": (1, 2.0)}, ["dilation", "2.0"]),
    ({"padding": 1.5}, ["padding", "1.5"]),
    ({"axes": "a"}, ["axes", "a"]),
]


@pytest.mark.parametrize("kwargs,words", TYPE_ERRORS, ids=[repr(kw) for kw, _ in TYPE_ERRORS])
def test_wrong_type_raises_typeerror_naming_it(kwargs, words):
    with pytest.raises(TypeError, match=re.escape(words[0])) as excinfo:
        pool(X, **kwargs)
    _check(excinfo, words)


@pytest.mark.parametrize(
    "x,words",
    [
        (np.zeros((0, 4)), ["(0, 4)", "empty"]),
        (np.zeros((3, 0, 2)), ["(3, 0, 2)", "empty"]),
        (np.zeros((3, 4, 0)), ["(3, 4, 0)", "empty"]),
    ],
)
def test_empty_axis(x, words):
    with pytest.raises(ValueError) as excinfo:
        pool(x, "max", 1)
    _check(excinfo, words)


def test_zero_d_array():
    with pytest.raises(ValueError, match="0-d"):
        pool(np.array(3.0), "max", 1)


def test_kernel_tuple_longer_than_ndim():
    with pytest.raises(ValueError) as excinfo:
        pool(np.zeros(5), "max", (2, 2))
    _check(excinfo, ["kernel", "(2, 2)", "(5,)"])


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, 2), dtype=complex),
        np.array([[1, 2]], dtype=object),
        np.array([["a", "b"]]),
        np.array([[b"a", b"b"]]),
    ],
    ids=["complex", "object", "str", "bytes"],
)
@pytest.mark.parametrize("kind", ["max", "avg", "median"])
def test_unsupported_dtypes_get_a_clear_error(x, kind):
    with pytest.raises((TypeError, ValueError)) as excinfo:
        pool(x, kind, 1)
    assert str(x.dtype) in str(excinfo.value)


def test_errors_do_not_depend_on_threads_or_dtype():
    for dtype in (np.uint8, np.float16, np.bool_):
        for threads in (1, 2):
            with pytest.raises(ValueError, match="kernel"):
                pool(np.zeros((4, 4), dtype), "max", 0, threads=threads)


def test_valid_edge_cases_do_not_raise():
    # the boundaries of the error rules: span == padded input; padding == span - 1
    assert pool(X, "max", 5).shape == (1, 1)
    assert pool(X, "max", 7, padding=1).shape == (1, 1)
    assert pool(X, "max", 2, padding=1).shape == (3, 3)
    assert pool(X, "max", 3, dilation=2, padding=0).shape == (1, 1)
    assert pool(np.zeros(1), "max", 1).shape == (1,)
