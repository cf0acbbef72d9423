"""The forward loop stores its per-step matrix products for the backward loop (no recompute)."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.blas import BatchedMatMul, Dot
from symgraph.scan import Scan
from symgraph.testing import check_grad


def _batched_rnn(W, U, xs, h0):
    def step(x_t, h):
        return T.tanh(T.dot(x_t, U) + T.dot(h, W))  # [batch, H] x [H, H] at every step

    hs, _ = sg.scan(step, sequences=xs, outputs_info=h0)
    return hs


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    W = sg.shared(rng.normal(scale=0.4, size=(5, 5)), name="W")
    U = sg.shared(rng.normal(scale=0.4, size=(3, 5)), name="U")
    xs, h0 = T.dtensor3("xs"), T.dmatrix("h0")
    cost = T.sum(_batched_rnn(W, U, xs, h0) ** 2)
    return W, U, xs, h0, cost, rng


def _scans(f):
    return [n for n in f.program.nodes if isinstance(n.op, Scan)]


def test_the_forward_loop_keeps_its_products_and_runs_once():
    W, U, xs, h0, cost, rng = _setup()
    gW, gh0 = T.grad(cost, [W, h0])
    f = sg.function([xs, h0], [cost, gW, gh0])
    scans = _scans(f)
    assert len(scans) == 2  # one forward loop (merged with the one the cost reads), one backward
    forward = next(n for n in scans if not n.op.name.startswith("grad_of"))
    assert any(spec.kind == "seq" for spec in forward.op.outs)  # the stored h W
    # nothing multiplies the stored states by W again outside the loops
    outside = [n for n in f.program.nodes if isinstance(n.op, Dot | BatchedMatMul)]
    assert not any(n.inputs[0].ndim == 3 and n.inputs[1] is W for n in outside)
    plain = sg.function([xs, h0], [cost, gW, gh0], mode="FAST_COMPILE")
    xv, hv = rng.normal(size=(6, 2, 3)), rng.normal(size=(2, 5))
    for a, b in zip(f(xv, hv), plain(xv, hv)):
        np.testing.assert_allclose(a, b, rtol=1e-11)


def test_fast_compile_also_runs_the_forward_loop_once():
    W, U, xs, h0, cost, _ = _setup()
    f = sg.function([xs, h0], [cost, T.grad(cost, W)], mode="FAST_COMPILE")
    names = sorted(n.op.name for n in _scans(f))
    assert len(names) == 2 and sum(name.startswith("grad_of") for name in names) == 1


@pytest.mark.parametrize("truncate", [-1, 2])
def test_gradients_through_stored_products_are_right(truncate):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 2, 3))

    def cost(W, U, h0):
        def step(x_t, h):
            return T.tanh(T.dot(x_t, U) + T.dot(h, W))

        hs, _ = sg.scan(step, sequences=T.constant(x), outputs_info=h0, truncate_gradient=truncate)
        return T.sum(hs[-1] * T.arange(5.0)) + T.sum(hs**2)

    args = [rng.normal(scale=0.4, size=(5, 5)), rng.normal(size=(3, 5)), rng.normal(size=(2, 5))]
    if truncate < 0:
        check_grad(cost, args)
    else:  # Theano's truncation is not the loss's gradient: compare the two builds
        W, U, h0 = (sg.shared(a, name=n) for a, n in zip(args, "WUh"))
        g = T.grad(cost(W, U, h0), [W, U, h0])
        fast = sg.function([], g)
        plain = sg.function([], g, mode="FAST_COMPILE")
        for a, b in zip(fast(), plain()):
            np.testing.assert_allclose(a, b, rtol=1e-11)


def test_matrix_vector_products_are_stored_too():
    # batch 1: recomputing W h for all steps after the loop is a product with a transposed
    # weight, which this BLAS runs slowly; the forward loop stores W h instead
    rng = np.random.default_rng(2)
    W = sg.shared(rng.normal(size=(4, 4)), name="W")
    xs = T.dmatrix("xs")
    h0 = T.zeros(4, dtype="float64")
    hs, _ = sg.scan(lambda x_t, h: T.nnet.sigmoid(x_t + T.dot(W, h)), sequences=xs, outputs_info=h0)
    cost = T.sum(hs**2)
    f = sg.function([xs], [cost, T.grad(cost, W)])
    plain = sg.function([xs], [cost, T.grad(cost, W)], mode="FAST_COMPILE")
    scans = _scans(f)
    forward = [n for n in scans if not n.op.name.startswith("grad_of")]
    assert len(scans) == 2 and len(forward) == 1
    assert any(spec.kind == "seq" for spec in forward[0].op.outs)
    xv = rng.normal(size=(6, 4))
    for a, b in zip(f(xv), plain(xv)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
