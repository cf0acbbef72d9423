"""Sparse gradients stay sparse: the SGD update of an embedding touches only looked-up columns."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.shape import Alloc
from symgraph.ops.subtensor import IncSubtensor


def _embedding_step(column_lookup: bool, extra_use: bool = False):
    rng = np.random.default_rng(0)
    shape = (5, 11) if column_lookup else (11, 5)
    E = sg.shared(rng.normal(size=shape), name="E")
    x = T.ivector("x")
    lr = T.dscalar("lr")
    looked = E[:, x].T if column_lookup else E[x]  # [n, 5] either way
    cost = T.sum(T.tanh(looked) * T.arange(5.0))
    gE = T.grad(cost, E)
    outs = [cost, gE] if extra_use else cost
    return sg.function([x, lr], outs, updates=[(E, E - lr * gE)]), E


def _nodes(f):
    return f.program.nodes


@pytest.mark.cpu_strategy
@pytest.mark.parametrize("column_lookup", [True, False])
def test_sgd_update_of_an_embedding_scatters_into_the_parameter(column_lookup):
    f, E = _embedding_step(column_lookup)
    incs = [n for n in _nodes(f) if isinstance(n.op, IncSubtensor)]
    assert len(incs) == 1 and incs[0].inputs[0] is E  # no dense gradient, no zeros
    assert not any(isinstance(n.op, Alloc) for n in _nodes(f))
    assert "_inplace(" in f.source  # written into E's own array
    before = E.get_value()
    x = np.array([3, 7, 3, 0], "int32")  # a repeated index accumulates
    f(x, 0.5)
    after = E.get_value()
    rows = before.T if column_lookup else before
    g = np.zeros_like(rows)
    np.add.at(g, x, (1 - np.tanh(rows[x]) ** 2) * np.arange(5.0))
    expected = rows - 0.5 * g
    np.testing.assert_allclose(after.T if column_lookup else after, expected, rtol=1e-13)
    untouched = [i for i in range(11) if i not in x]
    np.testing.assert_array_equal((after.T if column_lookup else after)[untouched], rows[untouched])


def _rnn_like_step(mode):
    rng = np.random.default_rng(0)
    E = sg.shared(rng.normal(size=(5, 11)), name="E")
    x = T.ivector("x")
    lr = T.dscalar("lr")
    cost = T.sum(T.tanh(E[:, x].T) * T.arange(5.0))
    gE = T.grad(cost, E)
    return sg.function([x, lr], cost, updates=[(E, E - lr * gE)], mode=mode), E


def test_the_same_step_without_rewrites_agrees():
    (fast, E1), (plain, E2) = _rnn_like_step("FAST_RUN"), _rnn_like_step("FAST_COMPILE")
    assert any(isinstance(n.op, Alloc) for n in _nodes(plain))  # the dense gradient
    for x in ([1, 1, 9], [0, 10, 4, 4, 4]):
        x = np.array(x, "int32")
        np.testing.assert_allclose(fast(x, 0.1), plain(x, 0.1), rtol=1e-13)
        np.testing.assert_allclose(E1.get_value(), E2.get_value(), rtol=1e-13)


def test_a_gradient_that_is_also_returned_is_still_correct():
    f, E = _embedding_step(False, extra_use=True)
    before = E.get_value()
    x = np.array([2, 2], "int32")
    cost, g = f(x, 1.0)
    np.testing.assert_allclose(E.get_value(), before - g, rtol=1e-13)
    assert np.count_nonzero(np.abs(g).sum(axis=1)) == 1


def test_set_subtensor_of_zeros_is_not_moved():
    # X + set(zeros[idx], v) adds v once per distinct index: not an inc into X
    X = T.dvector("X")
    i = T.ivector("i")
    v = T.dvector("v")
    y = X + T.set_subtensor(T.zeros_like(X)[i], v)
    f = sg.function([X, i, v], y)
    got = f(np.zeros(3), np.array([1, 1], "int32"), np.array([2.0, 5.0]))
    np.testing.assert_array_equal(got, [0, 5, 0])


def test_a_scale_that_is_not_a_scalar_is_not_moved():
    X = T.dmatrix("X")
    c = T.dmatrix("c")  # a full matrix: c * inc(...) is not inc(c * v)
    i = T.ivector("i")
    v = T.dvector("v")
    g = T.inc_subtensor(T.zeros_like(X)[i], v)
    f = sg.function([X, c, i, v], X - c * g)
    xv = np.ones((3, 2))
    cv = np.arange(6.0).reshape(3, 2)
    got = f(xv, cv, np.array([0, 2], "int32"), np.array([1.0, 2.0]))
    ref = np.zeros((3, 2))
    ref[[0, 2]] += [1.0, 2.0]
    np.testing.assert_allclose(got, xv - cv * ref)


def test_a_zeros_of_another_shape_is_not_moved():
    # zeros of shape (1, 2) broadcast against X (3, 2): the sum has X's shape but the inc's
    # region is a different one
    X = T.dmatrix("X")
    i = T.ivector("i")
    z = T.alloc(0.0, 1, 2)
    y = X + T.inc_subtensor(z[i], T.ones((1, 2)))
    f = sg.function([X, i], y)
    np.testing.assert_allclose(f(np.zeros((3, 2)), np.array([0], "int32")), np.ones((3, 2)))


@pytest.mark.cpu_strategy
def test_gradients_of_several_slices_fill_one_zeros_array_in_place():
    # W[0], W[1], W[2] used separately (GRUTheano's gates): the gradient of W is one zeros
    # array incremented slice by slice, not a sum of three W-sized arrays
    rng = np.random.default_rng(3)
    W = sg.shared(rng.normal(size=(3, 4, 4)), name="W")
    h = T.dvector("h")
    cost = sum(T.sum(T.tanh(W[k].dot(h)) * (k + 1)) for k in range(3))
    gW = T.grad(cost, W)
    fast = sg.function([h], gW)
    plain = sg.function([h], gW, mode="FAST_COMPILE")
    nodes = _nodes(fast)
    assert sum(isinstance(n.op, Alloc) for n in nodes) == 1
    incs = [n for n in nodes if isinstance(n.op, IncSubtensor)]
    assert len(incs) == 3 and not any(str(n.op) == "add" for n in nodes)
    assert fast.source.count("_inplace(") == 3  # into the fresh zeros, then each result
    hv = rng.normal(size=4)
    np.testing.assert_allclose(fast(hv), plain(hv), rtol=1e-13)
