"""Reductions against NumPy: every kind, axis None/int/negative/tuple, keepdims, several dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy

AXES = [None, 0, 1, -1, -3, (0, 2), (-1, 0), (0, 1, 2)]
KINDS = ["sum", "mean", "max", "min", "prod", "all", "any"]


def _values(dtype, rng, shape=(2, 3, 4)):
    if dtype == "bool":
        return rng.random(shape) > 0.3
    if np.dtype(dtype).kind == "f":
        return rng.uniform(0.5, 1.5, shape).astype(dtype)
    return rng.integers(1, 4, shape).astype(dtype)


def _numpy_mean(x, axis, keepdims):
    # symgraph's mean of integers is floatX (Theano's rule); NumPy's would be float64
    dtype = None if x.dtype.kind == "f" else sg.config.floatX
    return np.mean(x, axis=axis, keepdims=keepdims, dtype=dtype)


def _numpy_reduce(kind):
    if kind == "mean":
        return _numpy_mean
    return lambda x, axis, keepdims: getattr(np, kind)(x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_reduce_axes_float32(kind, axis, keepdims):
    x = _values("float32", np.random.default_rng(0))
    ref = _numpy_reduce(kind)
    check_against_numpy(
        lambda v: getattr(T, kind)(v, axis=axis, keepdims=keepdims),
        lambda v: ref(v, axis, keepdims),
        [x],
    )


@pytest.mark.parametrize("dtype", ["float64", "int32", "int8", "bool"])
@pytest.mark.parametrize("kind", KINDS)
def test_reduce_dtypes(kind, dtype):
    x = _values(dtype, np.random.default_rng(1))
    ref = _numpy_reduce(kind)
    for axis in (None, 1):
        check_against_numpy(
            lambda v, axis=axis: getattr(T, kind)(v, axis=axis),
            lambda v, axis=axis: ref(v, axis, False),
            [x],
        )


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -3])
@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_argreduce(kind, axis, keepdims, dtype):
    x = _values(dtype, np.random.default_rng(2))
    check_against_numpy(
        lambda v: getattr(T, kind)(v, axis=axis, keepdims=keepdims),
        lambda v: getattr(np, kind)(v, axis=axis, keepdims=keepdims).astype("int64"),
        [x],
    )


def test_argreduce_rejects_several_axes():
    with pytest.raises(TypeError, match="argmax"):
        T.argmax(T.matrix(), axis=(0, 1))


@pytest.mark.parametrize("kind", KINDS + ["argmax", "argmin"])
def test_methods_match_functions(kind):
    x = T.matrix("x")
    xv = _values("float32", np.random.default_rng(3), (3, 4))
    got = sg.function([x], getattr(x, kind)(axis=0))(xv)
    want = sg.function([x], getattr(T, kind)(x, axis=0))(xv)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


@pytest.mark.parametrize("kind", KINDS)
def test_reduce_of_scalar_and_empty(kind):
    ref = _numpy_reduce(kind)
    check_against_numpy(
        lambda v: getattr(T, kind)(v), lambda v: ref(v, None, False), [np.float32(2.5)]
    )
    if kind in ("sum", "prod", "all", "any"):
        empty = np.zeros((0, 3), "float32")
        with np.errstate(all="ignore"):
            check_against_numpy(
                lambda v: getattr(T, kind)(v, axis=0),
                lambda v: ref(v, 0, False),
                [empty],
            )


def test_axis_out_of_range_names_the_line():
    x = T.matrix("x")
    with pytest.raises(sg.GraphTypeError, match=r"(?s)axis 2 is out of range.*test_reduce\.py"):
        T.sum(x, axis=2)
    with pytest.raises(sg.GraphTypeError, match=r"axis -3"):
        T.max(x, axis=-3)


def test_sum_dtype_argument_and_var_std():
    x = T.imatrix("x")
    xv = np.arange(6, dtype="int32").reshape(2, 3)
    s = T.sum(x, axis=1, dtype="float64")
    got = sg.function([x], s)(xv)
    assert s.dtype == got.dtype == "float64"
    np.testing.assert_array_equal(got, xv.sum(axis=1))
    check_against_numpy(lambda v: T.var(v, axis=0), lambda v: np.var(v, axis=0), [xv * 1.0])
    check_against_numpy(lambda v: T.std(v), lambda v: np.std(v), [xv * 1.0])


def test_norms():
    v = np.array([[3.0, -4.0], [1.0, 2.0]])
    check_against_numpy(lambda x: T.norm(x, 2), lambda x: np.sqrt((x**2).sum()), [v])
    check_against_numpy(lambda x: T.norm(x, 1, axis=0), lambda x: np.abs(x).sum(axis=0), [v])
