"""dot (every supported rank combination), matmul / batched_dot and outer against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy

RANKS = {  # (x shape, y shape) for each supported rank combination of dot
    "1x1": ((4,), (4,)),
    "1x2": ((4,), (4, 3)),
    "2x1": ((2, 4), (4,)),
    "2x2": ((2, 4), (4, 3)),
    "3x2": ((5, 2, 4), (4, 3)),
    "3x1": ((5, 2, 4), (4,)),
}


def _values(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-3, 4, shape).astype(dtype)


@pytest.mark.parametrize("dtypes", [("float32",) * 2, ("float64",) * 2, ("int32",) * 2])
@pytest.mark.parametrize("ranks", sorted(RANKS))
def test_dot_ranks(ranks, dtypes):
    rng = np.random.default_rng(0)
    xs, ys = RANKS[ranks]
    values = [_values(xs, dtypes[0], rng), _values(ys, dtypes[1], rng)]
    check_against_numpy(T.dot, np.dot, values, rtol=1e-5 if "float32" in dtypes else None)


@pytest.mark.parametrize(
    "dtypes", [("int32", "float32"), ("float32", "float64"), ("int8", "int32"), ("bool", "bool")]
)
def test_dot_mixed_dtypes(dtypes):
    rng = np.random.default_rng(1)
    values = [_values((3, 4), dtypes[0], rng), _values((4, 2), dtypes[1], rng)]
    check_against_numpy(T.dot, np.dot, values)


def test_dot_method_matmul_operator_and_transpose():
    x, w = T.matrix("x"), T.matrix("w")
    rng = np.random.default_rng(2)
    xv, wv = _values((3, 4), "float32", rng), _values((2, 4), "float32", rng)
    f = sg.function([x, w], [x.dot(w.T), x @ w.T, T.dot(w, x.T).T])
    for got in f(xv, wv):
        np.testing.assert_allclose(got, xv @ wv.T, rtol=1e-5)


def test_dot_refuses_scalars_and_high_rank_right_operand():
    with pytest.raises(TypeError, match="scalar"):
        T.dot(T.scalar(), T.vector())
    for x in (T.vector(), T.matrix(), T.tensor3()):
        with pytest.raises(TypeError, match="batched_dot|matmul"):
            T.dot(x, T.tensor3())


def test_dot_static_shape_mismatch():
    x = T.tensor("float32", (3, 4), name="x")
    y = T.tensor("float32", (5, 2), name="y")
    with pytest.raises(sg.ShapeError, match=r"(?s)\(3, 4\) and \(5, 2\).*test_blas\.py"):
        T.dot(x, y)


@pytest.mark.parametrize(
    "xs, ys",
    [((5, 2, 4), (5, 4, 3)), ((2, 5, 2, 4), (2, 5, 4, 3)), ((3, 2, 2), (3, 2, 2))],
)
def test_matmul_batched(xs, ys):
    rng = np.random.default_rng(3)
    values = [_values(xs, "float64", rng), _values(ys, "float64", rng)]
    check_against_numpy(T.matmul, np.matmul, values)


@pytest.mark.parametrize(
    "xs, ys",
    [((5, 4), (5, 4)), ((5, 2, 4), (5, 4)), ((5, 4), (5, 4, 3)), ((5, 2, 4), (5, 4, 3))],
)
def test_batched_dot(xs, ys):
    rng = np.random.default_rng(4)
    values = [_values(xs, "float64", rng), _values(ys, "float64", rng)]

    def ref(x, y):
        return np.stack([np.dot(a, b) for a, b in zip(x, y)])

    check_against_numpy(T.batched_dot, ref, values)


def test_matmul_rank_and_shape_errors():
    with pytest.raises(TypeError, match="same rank"):
        T.matmul(T.tensor3(), T.matrix())
    a = T.tensor("float32", (2, 3, 4))
    b = T.tensor("float32", (2, 5, 1))
    with pytest.raises(sg.ShapeError, match="matmul"):
        T.matmul(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_outer(dtype):
    rng = np.random.default_rng(5)
    values = [_values((3,), dtype, rng), _values((4,), dtype, rng)]
    check_against_numpy(T.outer, np.outer, values)


@pytest.mark.parametrize("x_shape", [(2, 3, 4), (2, 0, 4), (2, 3, 0), (3, 1, 2, 4)])
@pytest.mark.parametrize("layout", ["C", "x transposed", "y transposed"])
def test_dot_of_a_stack_of_rows_with_a_matrix(x_shape, layout):
    # N-d x: one 2-d product over the flattened rows when x is C-ordered, matmul otherwise
    rng = np.random.default_rng(0)
    x = T.TensorType("float64", (None,) * len(x_shape)).make_variable("x")
    y = T.dmatrix("y")
    f = sg.function([x, y], T.dot(x, y))
    xv = rng.normal(size=x_shape)
    yv = rng.normal(size=(x_shape[-1], 5))
    if layout == "x transposed":
        xv = np.asfortranarray(xv)
    if layout == "y transposed":
        yv = np.ascontiguousarray(yv.T).T
    np.testing.assert_allclose(f(xv, yv), np.dot(xv, yv), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 2, 20, 32, 33])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_few_rows_times_a_transposed_matrix(rows, dtype):
    # the CPU runs S @ V.T (a sentence's output layer) as (V @ S.T).T for 2..32 rows
    rng = np.random.default_rng(rows)
    s = T.matrix("s", dtype=dtype)
    v = T.matrix("v", dtype=dtype)
    f = sg.function([s, v], T.dot(s, v.T))
    for cols in (300, 7):
        sv = rng.normal(size=(rows, 16)).astype(dtype)
        vv = rng.normal(size=(cols, 16)).astype(dtype)
        out = f(sv, vv)
        assert out.flags.c_contiguous
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(out, sv @ vv.T, rtol=tol, atol=tol)
        again = f(sv * 2, vv)  # the reused buffer is never returned
        np.testing.assert_allclose(out, sv @ vv.T, rtol=tol, atol=tol)
        np.testing.assert_allclose(again, 2 * sv @ vv.T, rtol=tol, atol=tol)
