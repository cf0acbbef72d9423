"""Property-based tests (hypothesis): broadcasting, reductions and their gradients against NumPy,
over random shapes (length-0 and length-1 axes included), dtypes and axes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy

SETTINGS = settings(max_examples=30, deadline=None)
DTYPES = st.sampled_from(["float32", "float64", "int32", "int8"])
BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "lt": np.less,
    "eq": np.equal,
}


def _array(draw, shape, dtype):
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-10, 10, width=32)
    else:
        elements = st.integers(-5, 5)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def broadcast_case(draw, n=2):
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=4, min_side=0)
    )
    dtypes = [draw(DTYPES) for _ in range(n)]
    return [_array(draw, s, d) for s, d in zip(shapes.input_shapes, dtypes)]


@SETTINGS
@given(values=broadcast_case(), name=st.sampled_from(sorted(BINARY)))
def test_binary_broadcasting(values, name):
    with np.errstate(all="ignore"):  # int8 overflow wraps in both
        check_against_numpy(lambda x, y: T.elemwise_apply(name, x, y), BINARY[name], values)


@SETTINGS
@given(values=broadcast_case(3))
def test_ternary_switch_broadcasting(values):
    cond = values[0] > 0
    check_against_numpy(
        lambda c, a, b: T.switch(c, a, b), lambda c, a, b: np.where(c, a, b), [cond, *values[1:]]
    )


@st.composite
def reduce_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    x = _array(draw, shape, draw(DTYPES))
    ndim = len(shape)
    if ndim and draw(st.booleans()):
        axis = draw(hnp.valid_tuple_axes(ndim, min_size=1))
        if len(axis) == 1 and draw(st.booleans()):
            axis = axis[0]  # a plain (possibly negative) int
    else:
        axis = None
    return x, axis, draw(st.booleans())


@SETTINGS
@given(case=reduce_case(), kind=st.sampled_from(["sum", "max", "min", "prod", "any", "mean"]))
def test_reductions(case, kind):
    x, axis, keepdims = case
    axes = range(x.ndim) if axis is None else np.atleast_1d(axis)
    if kind in ("max", "min") and any(x.shape[a] == 0 for a in axes):
        return  # NumPy refuses too: no identity for max of nothing
    if kind == "mean":
        if x.size == 0:
            return  # mean of nothing: NaN with a warning in NumPy

        def ref(v):
            dtype = None if v.dtype.kind == "f" else sg.config.floatX
            return np.mean(v, axis=axis, keepdims=keepdims, dtype=dtype)
    else:

        def ref(v):
            return getattr(np, kind)(v, axis=axis, keepdims=keepdims)

    rtol = 1e-4 if x.dtype == np.float32 or kind == "mean" else None
    with np.errstate(all="ignore"):
        check_against_numpy(
            lambda v: getattr(T, kind)(v, axis=axis, keepdims=keepdims),
            ref,
            [x],
            rtol=rtol,
            atol=1e-5,
        )


@SETTINGS
@given(values=broadcast_case())
def test_gradient_of_broadcast_product_sums_over_broadcast_axes(values):
    a, b = (v.astype("float64") for v in values)
    x, y = T.tensor("float64", (None,) * a.ndim), T.tensor("float64", (None,) * b.ndim)
    gx, gy = T.grad(T.sum(x * y), [x, y])
    got_x, got_y = sg.function([x, y], [gx, gy])(a, b)
    full = np.broadcast_shapes(a.shape, b.shape)
    want_x = _sum_to(np.broadcast_to(b, full), a.shape)
    want_y = _sum_to(np.broadcast_to(a, full), b.shape)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-12)
    assert got_x.shape == a.shape and got_y.shape == b.shape


def _sum_to(g, shape):
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


@st.composite
def basic_index_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    idx = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return np.arange(int(np.prod(shape)), dtype="float32").reshape(shape), idx


@SETTINGS
@given(case=basic_index_case())
def test_basic_indexing(case):
    x, idx = case
    check_against_numpy(lambda v: v[idx], lambda v: v[idx], [x])


@SETTINGS
@given(case=basic_index_case())
def test_set_and_inc_subtensor_basic_indices(case):
    x, idx = case
    value = np.float32(7)

    def ref_inc(v):
        out = v.copy()
        out[idx] += value
        return out

    def ref_set(v):
        out = v.copy()
        out[idx] = value
        return out

    check_against_numpy(lambda v: T.inc_subtensor(v[idx], value), ref_inc, [x])
    check_against_numpy(lambda v: T.set_subtensor(v[idx], value), ref_set, [x])
