"""Shape and layout ops against NumPy: shape, reshape, flatten, dimshuffle, transpose,
concatenate/stack, zeros/ones/alloc/arange and friends."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy

X234 = np.arange(24, dtype="float32").reshape(2, 3, 4)


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_shape(dtype):
    check_against_numpy(
        lambda x: [T.shape(x), x.shape[0], x.shape[-1], x.size],
        lambda x: (
            np.array(x.shape, "int64"),
            *np.array(x.shape, "int64")[[0, -1]],
            np.int64(x.size),
        ),
        [X234.astype(dtype)],
    )


@pytest.mark.parametrize(
    "newshape", [(6, 4), (4, -1), (-1,), (24,), (2, 12, 1), (1, 24), (3, 2, 4)], ids=str
)
def test_reshape(newshape):
    check_against_numpy(lambda x: T.reshape(x, newshape), lambda x: x.reshape(newshape), [X234])
    check_against_numpy(lambda x: x.reshape(newshape), lambda x: x.reshape(newshape), [X234])


def test_reshape_method_varargs_and_symbolic_shape():
    x = T.tensor3("x")
    n = T.lscalar("n")
    y = x.reshape(n, -1)
    z = T.reshape(x, x.shape[::-1], ndim=3)  # a symbolic shape vector
    w = x.reshape((x.shape[0] * x.shape[1], x.shape[2]))
    got = sg.function([x, n], [y, z, w])(X234, 4)
    np.testing.assert_array_equal(got[0], X234.reshape(4, -1))
    np.testing.assert_array_equal(got[1], X234.reshape(4, 3, 2))
    np.testing.assert_array_equal(got[2], X234.reshape(6, 4))
    assert y.ndim == 2 and z.ndim == 3 and w.ndim == 2


def test_reshape_static_size_mismatch_raises():
    x = T.tensor("float32", (2, 3), name="x")
    with pytest.raises(sg.ShapeError, match=r"(?s)'x'.*\(4, 2\).*test_shape_ops\.py"):
        T.reshape(x, (4, 2))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_flatten(ndim):
    def ref(x):
        return x.reshape(x.shape[: ndim - 1] + (-1,))

    check_against_numpy(lambda x: T.flatten(x, ndim), ref, [X234])
    check_against_numpy(lambda x: x.flatten(ndim), ref, [X234])


@pytest.mark.parametrize(
    "shape, pattern, ref",
    [
        ((2, 3), (1, 0), lambda x: x.T),
        ((2, 3), ("x", 0, 1), lambda x: x[None]),
        ((2, 3), (0, "x", 1), lambda x: x[:, None, :]),
        ((2, 3), (1, "x", 0, "x"), lambda x: x.T[:, None, :, None]),
        ((3,), ("x", 0), lambda x: x[None, :]),
        ((3,), (0, "x"), lambda x: x[:, None]),
        ((1, 3), (1,), lambda x: x[0]),  # dropping a length-1 axis
        ((2, 1, 3), (2, 0), lambda x: x[:, 0, :].T),
        ((1, 1), (), lambda x: x[0, 0]),
        ((), ("x", "x"), lambda x: x.reshape(1, 1)),
        ((2, 3, 4), (2, 0, 1), lambda x: x.transpose(2, 0, 1)),
    ],
)
def test_dimshuffle(shape, pattern, ref):
    x = np.arange(int(np.prod(shape)), dtype="float64").reshape(shape)
    check_against_numpy(lambda v: v.dimshuffle(*pattern), ref, [x])
    check_against_numpy(lambda v: T.dimshuffle(v, list(pattern)), ref, [x])


def test_dimshuffle_dropping_a_long_axis_raises():
    x = T.tensor("float32", (2, 3), name="x")
    with pytest.raises(sg.ShapeError, match="drops axis 0"):
        x.dimshuffle(1)
    with pytest.raises(ValueError, match="invalid dimshuffle"):
        x.dimshuffle(0, 0)


def test_dimshuffle_dropping_an_unknown_axis_that_is_not_1_fails_at_run_time():
    x = T.matrix("x")
    f = sg.function([x], x.dimshuffle(1))
    np.testing.assert_array_equal(f(np.ones((1, 3), "float32")), np.ones(3))
    with pytest.raises(sg.SymgraphError, match="DimShuffle"):
        f(np.ones((2, 3), "float32"))


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1)], ids=str)
def test_transpose(axes):
    check_against_numpy(lambda x: T.transpose(x, axes), lambda x: np.transpose(x, axes), [X234])
    check_against_numpy(lambda x: x.T, lambda x: x.T, [X234])
    if axes is not None:
        check_against_numpy(lambda x: x.transpose(*axes), lambda x: x.transpose(axes), [X234])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    rng = np.random.default_rng(0)
    shapes = {0: [(2, 3), (4, 3), (1, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 4)]}
    values = [rng.standard_normal(s).astype("float32") for s in shapes[axis]]
    check_against_numpy(
        lambda *xs: T.concatenate(xs, axis=axis),
        lambda *xs: np.concatenate(xs, axis=axis),
        values,
    )


def test_concatenate_mixed_dtypes_and_errors():
    values = [np.ones((2, 2), "int32"), np.zeros((1, 2), "float32")]
    check_against_numpy(lambda *xs: T.concatenate(xs), lambda *xs: np.concatenate(xs), values)
    with pytest.raises(TypeError, match="same number of dimensions"):
        T.concatenate([T.matrix(), T.vector()])
    with pytest.raises(sg.ShapeError, match="axis 1"):
        T.concatenate([T.tensor("float32", (2, 3)), T.tensor("float32", (2, 4))], axis=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    rng = np.random.default_rng(1)
    values = [rng.standard_normal((2, 3)) for _ in range(3)]
    check_against_numpy(
        lambda *xs: T.stack(xs, axis=axis), lambda *xs: np.stack(xs, axis=axis), values
    )


def test_stack_of_scalars_and_list_literal():
    a, b = T.dscalar("a"), T.dscalar("b")
    got = sg.function([a, b], [T.stack([a, b, a]), T.as_tensor_variable([b, a])])(1.0, 2.0)
    np.testing.assert_array_equal(got[0], [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(got[1], [2.0, 1.0])


@pytest.mark.parametrize("dtype", [None, "float64", "int32", "bool"])
def test_zeros_ones_and_likes(dtype):
    n = T.lscalar("n")
    x = T.imatrix("x")
    xv = np.ones((2, 3), "int32")
    outs = [
        T.zeros((n, 3), dtype=dtype),
        T.ones((2, n), dtype=dtype),
        T.zeros(n, dtype=dtype),
        T.zeros_like(x, dtype=dtype),
        T.ones_like(x, dtype=dtype),
        T.zeros(x.shape, dtype=dtype),
    ]
    got = sg.function([n, x], outs)(4, xv)
    dt = dtype or sg.config.floatX
    refs = [
        np.zeros((4, 3), dt),
        np.ones((2, 4), dt),
        np.zeros(4, dt),
        np.zeros_like(xv, dtype=dtype),
        np.ones_like(xv, dtype=dtype),
        np.zeros((2, 3), dt),
    ]
    for o, g, r in zip(outs, got, refs):
        assert o.dtype == g.dtype == r.dtype, (o, g.dtype, r.dtype)
        assert g.shape == r.shape
        np.testing.assert_array_equal(g, r)
    assert outs[0].type.shape == (None, 3)


def test_alloc_broadcasts_its_value_and_result_is_writable_copy():
    v = T.vector("v")
    n = T.lscalar("n")
    y = T.alloc(v, n, 3)
    z = T.alloc(2.5, 2, 2)
    got_y, got_z = sg.function([v, n], [y, z])(np.arange(3, dtype="float32"), 2)
    np.testing.assert_array_equal(got_y, np.broadcast_to(np.arange(3, dtype="float32"), (2, 3)))
    assert y.dtype == got_y.dtype == "float32" and z.dtype == got_z.dtype == sg.config.floatX
    assert z.type.shape == (2, 2) and got_z.flags.writeable
    np.testing.assert_array_equal(got_z, np.full((2, 2), 2.5))


@pytest.mark.parametrize(
    "args, kw",
    [((5,), {}), ((2, 7), {}), ((1, 10, 3), {}), ((5, 0, -2), {}), ((4,), {"dtype": "float32"})],
)
def test_arange_constant_bounds(args, kw):
    x = T.arange(*args, **kw)
    got = sg.function([], x)()
    want = np.arange(*args, dtype=kw.get("dtype", "int64"))
    assert got.dtype == want.dtype == x.dtype
    np.testing.assert_array_equal(got, want)


def test_arange_symbolic_bounds():
    a, b = T.iscalar("a"), T.iscalar("b")
    x = T.arange(a, b)
    got = sg.function([a, b], x)(2, 6)
    assert got.dtype == x.dtype == "int32"
    np.testing.assert_array_equal(got, np.arange(2, 6, dtype="int32"))


def test_shape_helpers():
    check_against_numpy(lambda x: T.shape_padleft(x, 2), lambda x: x[None, None], [X234])
    check_against_numpy(lambda x: T.shape_padright(x), lambda x: x[..., None], [X234])
    check_against_numpy(lambda x: T.shape_padaxis(x, 1), lambda x: x[:, None], [X234])
    check_against_numpy(lambda x: T.swapaxes(x, 0, 2), lambda x: x.swapaxes(0, 2), [X234])
    check_against_numpy(lambda x: T.eye(x.shape[0]), lambda x: np.eye(2, dtype="float32"), [X234])
