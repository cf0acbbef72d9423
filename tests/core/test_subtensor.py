"""Indexing against NumPy: basic slices and integers (constant and symbolic), integer-array
indexing (``E[:, x_t]``, ``W[idx]``, mixed), and set_subtensor / inc_subtensor."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy

A = np.arange(60, dtype="float32").reshape(3, 4, 5)

BASIC = [
    np.s_[1],
    np.s_[-1],
    np.s_[1:],
    np.s_[:, 2],
    np.s_[::-1],
    np.s_[::-2, 1:3],
    np.s_[-2:, :, ::2],
    np.s_[..., 1],
    np.s_[1, ..., 2:],
    np.s_[:, None, 1],
    np.s_[None],
    np.s_[5:],  # empty
    np.s_[0, 0, 0],
    np.s_[:, -1:0:-1, 3],
    np.s_[:],
]


@pytest.mark.parametrize("idx", BASIC, ids=str)
def test_basic_constant_index(idx):
    check_against_numpy(lambda x: x[idx], lambda x: x[idx], [A])


@pytest.mark.parametrize("dtype", ["int32", "bool", "float64"])
def test_basic_index_keeps_dtype(dtype):
    check_against_numpy(lambda x: x[1:, -1], lambda x: x[1:, -1], [A.astype(dtype)])


def test_symbolic_slice_bounds_and_ints():
    x = T.tensor3("x")
    i, j, s = T.iscalar("i"), T.lscalar("j"), T.iscalar("s")
    outs = [x[i], x[i:j], x[:, j], x[::s], x[i:, :j, s], x[-i], x[i : i + 2]]
    f = sg.function([x, i, j, s], outs)
    for iv, jv, sv in [(1, 3, 1), (0, 2, 2), (2, -1, -1), (1, 1, 3)]:
        want = [A[iv], A[iv:jv], A[:, jv], A[::sv], A[iv:, :jv, sv], A[-iv], A[iv : iv + 2]]
        for o, g, w in zip(outs, f(A, iv, jv, sv), want):
            assert g.dtype == w.dtype == o.dtype and g.shape == w.shape and o.ndim == w.ndim
            np.testing.assert_array_equal(g, w)


def test_embedding_column_lookup_with_symbolic_scalar():
    # the tutorial's E[:, x_t]: a column chosen by an int scalar
    E = sg.shared(np.arange(12, dtype="float32").reshape(3, 4), name="E")
    x_t = T.iscalar("x_t")
    col = E[:, x_t]
    f = sg.function([x_t], col)
    assert col.ndim == 1
    for k in range(4):
        np.testing.assert_array_equal(f(k), E.get_value()[:, k])


@pytest.mark.parametrize(
    "idx_values",
    [np.array([2, 0, 2]), np.array([[0, 1], [1, 0]]), np.array([], dtype="int64")],
    ids=["repeat", "2d", "empty"],
)
@pytest.mark.parametrize("dtype", ["int32", "int64", "int8"])
def test_row_lookup_with_int_vector(idx_values, dtype):
    idx = idx_values.astype(dtype)
    check_against_numpy(lambda w, i: w[i], lambda w, i: w[i], [A, idx])


@pytest.mark.parametrize(
    "build",
    [
        lambda x, i: x[i, 2:],
        lambda x, i: x[:, i],
        lambda x, i: x[i, :, i],
        lambda x, i: x[1:, i, ::-1],
        lambda x, i: x[:, i, 1],
        lambda x, i: x[i, -1],
        lambda x, i: x[..., i],
    ],
)
def test_mixed_advanced_and_basic(build):
    idx = np.array([2, 0, 1], "int32")
    check_against_numpy(build, build, [A, idx])


def test_two_index_arrays_pick_elements():
    m = np.arange(12, dtype="float64").reshape(3, 4)
    rows = np.array([0, 2, 2], "int64")
    cols = np.array([3, 0, 1], "int32")
    check_against_numpy(lambda x, r, c: x[r, c], lambda x, r, c: x[r, c], [m, rows, cols])
    # the classic probabilities-of-the-targets idiom: p[arange(n), y]
    check_against_numpy(
        lambda x, c: x[T.arange(c.shape[0]), c], lambda x, c: x[np.arange(3), c], [m, cols]
    )


def test_constant_list_index_and_errors():
    check_against_numpy(lambda x: x[[2, 0]], lambda x: x[[2, 0]], [A])
    x = T.matrix("x")
    with pytest.raises(TypeError, match="too many indices"):
        x[1, 2, 3]
    with pytest.raises(TypeError, match="integers"):
        x[T.vector("f")]
    with pytest.raises(TypeError, match="boolean mask"):
        x[T.gt(x, 0)]


def test_index_out_of_range_at_run_time_names_op_and_line():
    x = T.matrix("x")
    i = T.lscalar("i")
    y = x[i]
    f = sg.function([x, i], y)
    with pytest.raises(sg.SymgraphError, match=r"(?s)IndexError.*Subtensor.*test_subtensor\.py"):
        f(np.ones((2, 3), "float32"), 5)


SET_INC_CASES = [
    (np.s_[1:], np.float32(7)),
    (np.s_[:, 2], np.arange(5, dtype="float32")),
    (np.s_[::-1, 0, 1:3], np.ones((3, 2), "float32")),
    (np.s_[-1], np.ones(5, "float32")),
]


@pytest.mark.parametrize("idx, value", SET_INC_CASES, ids=range(len(SET_INC_CASES)))
def test_set_and_inc_subtensor_basic(idx, value):
    def ref_set(x, y):
        out = x.copy()
        out[idx] = y
        return out

    def ref_inc(x, y):
        out = x.copy()
        out[idx] += y
        return out

    check_against_numpy(lambda x, y: T.set_subtensor(x[idx], y), ref_set, [A, value])
    check_against_numpy(lambda x, y: T.inc_subtensor(x[idx], y), ref_inc, [A, value])


def test_inc_subtensor_duplicate_indices_accumulate():
    idx = np.array([1, 1, 0, 1], "int32")
    vals = np.arange(20, dtype="float32").reshape(4, 5)

    def ref_inc(w, i, v):
        out = w.copy()
        np.add.at(out, i, v)
        return out

    def ref_set(w, i, v):
        out = w.copy()
        out[i] = v
        return out

    w = A[0]
    check_against_numpy(lambda a, i, v: T.inc_subtensor(a[i], v), ref_inc, [w, idx, vals])
    check_against_numpy(lambda a, i, v: T.set_subtensor(a[i], v), ref_set, [w, idx, vals])
    # mixed index: columns of selected rows
    check_against_numpy(
        lambda a, i: T.inc_subtensor(a[i, 1:3], 1.0),
        lambda a, i: _add_at(a, (i, slice(1, 3)), 1.0),
        [w, idx],
    )


def _add_at(a, idx, v):
    out = a.copy()
    np.add.at(out, idx, v)
    return out


def test_set_subtensor_symbolic_bounds_and_casting():
    x = T.ivector("x")
    i = T.iscalar("i")
    y = T.set_subtensor(x[i:], 2.9)  # the value is cast to x's dtype, like NumPy assignment
    got = sg.function([x, i], y)(np.zeros(4, "int32"), 1)
    assert y.dtype == got.dtype == "int32"
    np.testing.assert_array_equal(got, [0, 2, 2, 2])


def test_set_subtensor_leaves_the_input_alone():
    s = sg.shared(np.zeros(3, "float32"), name="s")
    f = sg.function([], T.set_subtensor(s[1], 5.0))
    np.testing.assert_array_equal(f(), [0, 5, 0])
    np.testing.assert_array_equal(s.get_value(), [0, 0, 0])


def test_set_subtensor_needs_an_indexed_variable():
    x = T.vector("x")
    with pytest.raises(TypeError, match="indexed variable"):
        T.set_subtensor(x, 1.0)
    with pytest.raises(TypeError, match="value has 2 dims"):
        T.set_subtensor(x[1:], T.matrix())


def test_constant_index_out_of_static_range_raises_while_building():
    x = T.tensor("float32", (3, None), name="x")
    with pytest.raises(IndexError, match=r"(?s)index 3 .*axis 0.*'x'.*test_subtensor\.py"):
        x[3]
    with pytest.raises(IndexError, match="index -4"):
        x[-4, 1]
    assert x[-3].ndim == 1 and x[:, 100].ndim == 1  # axis 1 has no static length


def test_full_slice_is_a_view_node_usable_by_set_subtensor():
    x = T.vector("x")
    y = T.set_subtensor(x[:], 3.0)
    z = T.inc_subtensor(x[...], 1.0)
    got_y, got_z = sg.function([x], [y, z])(np.array([1, 2], "float32"))
    np.testing.assert_array_equal(got_y, [3, 3])
    np.testing.assert_array_equal(got_z, [2, 3])


@pytest.mark.parametrize(
    "out_shape, make_index, values_shape",
    [
        ((50, 90), lambda r: (r.integers(-50, 50, 120),), (120, 90)),  # rows, negative indices
        ((50, 90), lambda r: r.integers(0, 50, 120), (120, 90)),  # bare array index
        ((90, 50), lambda r: (slice(None), r.integers(0, 50, 120)), (90, 120)),  # columns
        ((8, 40, 30), lambda r: (r.integers(0, 8, 20),), (20, 40, 30)),  # 3-d rows
        ((50, 90), lambda r: (r.integers(0, 50, 3),), (3, 90)),  # few values: np.add.at
    ],
)
def test_cpu_scatter_add_matches_add_at_for_long_rows(out_shape, make_index, values_shape):
    from symgraph.backends.numpy import BACKEND

    rng = np.random.default_rng(0)
    idx = make_index(rng)
    out = rng.normal(size=out_shape)
    values = rng.normal(size=values_shape)
    expected = out.copy()
    np.add.at(expected, idx, values)
    BACKEND.scatter_add(out, idx, values)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_cpu_scatter_add_out_of_range_raises_like_numpy():
    from symgraph.backends.numpy import BACKEND

    out = np.zeros((10, 500))
    with pytest.raises(IndexError):
        BACKEND.scatter_add(out, (np.array([1, 10]),), np.ones((2, 500)))
