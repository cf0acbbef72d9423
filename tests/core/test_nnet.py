"""``T.nnet`` against NumPy: activations, softmax (Theano's vector quirk), cross-entropies."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_against_numpy


def _np_softmax(x):
    x = x[None] if x.ndim == 1 else x  # Theano: a vector gives a 1 x n row
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_log_softmax(x):
    x = x[None] if x.ndim == 1 else x
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _logits(shape, dtype, scale=3.0):
    return (np.random.default_rng(0).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_and_log_softmax(shape, dtype):
    x = _logits(shape, dtype)
    check_against_numpy(T.nnet.softmax, _np_softmax, [x])
    check_against_numpy(T.nnet.log_softmax, _np_log_softmax, [x])
    check_against_numpy(T.nnet.logsoftmax, _np_log_softmax, [x])


def test_softmax_of_vector_is_a_row_and_indexing_it_works():
    v = T.vector("v")
    sm = T.nnet.softmax(v)
    assert sm.ndim == 2 and sm.type.shape[0] == 1
    got = sg.function([v], sm[0])(np.array([1, 2, 3], "float32"))
    np.testing.assert_allclose(got, _np_softmax(np.array([1, 2, 3], "float32"))[0], rtol=1e-6)


def test_softmax_and_log_softmax_are_stable_for_huge_logits():
    x = T.matrix("x")
    f = sg.function([x], [T.nnet.softmax(x), T.nnet.log_softmax(x)])
    big = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]], "float32")
    sm, lsm = f(big)
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lsm))
    np.testing.assert_allclose(sm.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(lsm[0], [0, -1000, -2000], rtol=1e-6)


def test_softmax_refuses_integers_and_other_axes():
    with pytest.raises(TypeError, match="softmax"):
        T.nnet.softmax(T.imatrix())
    with pytest.raises(ValueError, match="last axis"):
        T.nnet.softmax(T.matrix(), axis=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations(dtype):
    x = _logits((4, 5), dtype)
    check_against_numpy(
        T.nnet.sigmoid, lambda v: (1 / (1 + np.exp(-v))).astype(dtype), [x], rtol=1e-6
    )
    check_against_numpy(T.nnet.ultra_fast_sigmoid, lambda v: 1 / (1 + np.exp(-v)), [x], rtol=1e-6)
    check_against_numpy(
        T.nnet.hard_sigmoid, lambda v: np.clip(v * v.dtype.type(0.2) + v.dtype.type(0.5), 0, 1), [x]
    )
    check_against_numpy(T.nnet.softplus, lambda v: np.logaddexp(v.dtype.type(0), v), [x])
    check_against_numpy(T.nnet.relu, lambda v: np.maximum(v, 0), [x])
    check_against_numpy(
        lambda v: T.nnet.relu(v, alpha=0.1),
        lambda v: np.where(v > 0, v, v * v.dtype.type(0.1)),
        [x],
    )
    check_against_numpy(T.relu, lambda v: np.maximum(v, 0), [x])


def test_sigmoid_and_softplus_do_not_overflow(recwarn):
    x = T.vector("x")
    f = sg.function([x], [T.nnet.sigmoid(x), T.nnet.softplus(x)])
    sig, sp = f(np.array([-1000, -30, 0, 1000], "float32"))
    np.testing.assert_allclose(sig, [0, 9.357623e-14, 0.5, 1], rtol=1e-6)  # no underflow to 0
    np.testing.assert_allclose(sp, [0, 9.357623e-14, np.log(2), 1000], rtol=1e-6)
    assert not recwarn.list


@pytest.mark.parametrize("target_dtype", ["int32", "int64", "uint8"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_categorical_crossentropy_int_targets(dtype, target_dtype):
    p = _np_softmax(_logits((4, 6), dtype))
    y = np.array([0, 5, 2, 2], target_dtype)
    check_against_numpy(
        T.nnet.categorical_crossentropy,
        lambda p_, y_: -np.log(p_[np.arange(4), y_]),
        [p, y],
        rtol=1e-6,
    )


def test_categorical_crossentropy_one_hot_and_soft_targets():
    p = _np_softmax(_logits((4, 6), "float64"))
    t = np.eye(6)[[0, 5, 2, 2]]
    soft = _np_softmax(_logits((4, 6), "float64", 1.0))
    for target in (t, soft):
        check_against_numpy(
            T.nnet.categorical_crossentropy, lambda p_, t_: -(t_ * np.log(p_)).sum(-1), [p, target]
        )


def test_categorical_crossentropy_errors():
    with pytest.raises(TypeError, match="categorical_crossentropy"):
        T.nnet.categorical_crossentropy(T.matrix(), T.tensor3())
    p = T.tensor("float32", (4, 6))
    with pytest.raises(sg.ShapeError, match="4 distributions but 3 targets"):
        T.nnet.categorical_crossentropy(p, T.tensor("int32", (3,)))
    f = sg.function([p, y := T.ivector("y")], T.nnet.categorical_crossentropy(p, y))
    with pytest.raises(sg.SymgraphError, match="(?s)Crossentropy.*index 6.*test_nnet.py"):
        f(np.full((4, 6), 1 / 6, "float32"), np.array([0, 1, 2, 6], "int32"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy(dtype):
    rng = np.random.default_rng(1)
    out = rng.uniform(0.05, 0.95, (3, 4)).astype(dtype)
    tgt = (rng.random((3, 4)) > 0.5).astype(dtype)
    check_against_numpy(
        T.nnet.binary_crossentropy,
        lambda o, t: -(t * np.log(o) + (1 - t) * np.log(1 - o)),
        [out, tgt],
        rtol=1e-5,
    )
    logits = _logits((3, 4), dtype)
    check_against_numpy(
        T.nnet.sigmoid_binary_crossentropy,
        lambda z, t: (
            -(t * np.log(1 / (1 + np.exp(-z))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z))))
        ),
        [logits, tgt],
        rtol=1e-4,
    )


@pytest.mark.parametrize("dtype", [None, "int32", "float64"])
def test_one_hot(dtype):
    y = np.array([2, 0, 3, 3], "int32")
    want_dtype = dtype or sg.config.floatX
    check_against_numpy(
        lambda v: T.nnet.one_hot(v, 5, dtype), lambda v: np.eye(5, dtype=want_dtype)[v], [y]
    )
    check_against_numpy(
        lambda v: T.one_hot(v, 4, dtype), lambda v: np.eye(4, dtype=want_dtype)[v], [y]
    )


def test_the_gradient_of_log_softmax_reuses_its_forward_result():
    # softmax is exp(log_softmax): the gradient is one fused elementwise pass over the logits,
    # not a second softmax (max, subtract, exp, sum, divide)
    from symgraph.ops.nnet import Softmax

    x = T.fmatrix("x")
    y = T.ivector("y")
    logp = T.nnet.log_softmax(x)
    cost = -T.mean(logp[T.arange(y.shape[0]), y])
    f = sg.function([x, y], [cost, T.grad(cost, x)], device="cpu")
    assert not any(isinstance(n.op, Softmax) for n in f.program.nodes)
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(5, 7)).astype("float32") * 4
    yv = rng.integers(0, 7, 5).astype("int32")
    _, g = f(xv, yv)
    sm = np.exp(xv - xv.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    sm[np.arange(5), yv] -= 1
    np.testing.assert_allclose(g, sm / 5, rtol=2e-5, atol=1e-7)
