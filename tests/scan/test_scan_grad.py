"""Numeric gradient checks (float64, ``check_grad``) of scans of every shape, with the loop
rewrites (default) and without them (``mode='FAST_COMPILE'``)."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_grad

MODES = [None, "FAST_COMPILE"]
rng = np.random.default_rng(7)


def rand(*shape):
    return rng.uniform(-0.8, 0.8, shape)


@pytest.mark.parametrize("mode", MODES)
def test_several_outputs(mode):
    def fn(x, s0, W):
        def step(x_t, s, W):
            s_new = T.tanh(W.dot(s) + x_t)
            return [s_new, (s_new**2) * x_t, T.sum(s_new * s)]

        (s, sq, dots), _ = sg.scan(
            step, sequences=x, outputs_info=[s0, None, None], non_sequences=W, mode=mode
        )
        return T.sum(s) + T.sum(sq * 0.5) + T.sum(dots * 2)

    check_grad(fn, [rand(5, 3), rand(3), rand(3, 3)])


@pytest.mark.parametrize("mode", MODES)
def test_taps_minus_two_minus_one(mode):
    def fn(x, f0, a):
        def step(x_t, f_tm2, f_tm1, a):
            return x_t + a * f_tm2 + T.tanh(f_tm1) * 0.7

        f, _ = sg.scan(
            step,
            sequences=x,
            outputs_info=dict(initial=f0, taps=[-2, -1]),
            non_sequences=a,
            mode=mode,
        )
        return f

    check_grad(fn, [rand(6, 2), rand(2, 2), rand(2)])


@pytest.mark.parametrize("mode", MODES)
def test_sequence_taps(mode):
    def fn(x, b):
        out, _ = sg.scan(
            lambda prev, cur, nxt, b: prev * cur + T.sin(nxt) * b,
            sequences=dict(input=x, taps=[-1, 0, 2]),
            non_sequences=b,
            mode=mode,
        )
        return out

    check_grad(fn, [rand(7, 3), rand(3)])


@pytest.mark.parametrize("mode", MODES)
def test_go_backwards(mode):
    def fn(x, s0, W):
        s, _ = sg.scan(
            lambda x_t, s, W: T.tanh(W.dot(s) * x_t),
            sequences=x,
            outputs_info=s0,
            non_sequences=W,
            go_backwards=True,
            mode=mode,
        )
        return s * T.arange(5).dimshuffle(0, "x")

    check_grad(fn, [rand(5, 3), rand(3), rand(3, 3)])


@pytest.mark.parametrize("mode", MODES)
def test_non_sequence_matrix_and_bias(mode):
    def fn(x, s0, W, b):
        s, _ = sg.scan(
            lambda x_t, s, W, b: T.tanh(W.dot(s) + x_t + b),
            sequences=x,
            outputs_info=s0,
            non_sequences=[W, b],
            mode=mode,
        )
        return s

    check_grad(fn, [rand(4, 3), rand(3), rand(3, 3), rand(3)])


@pytest.mark.parametrize("mode", MODES)
def test_symbolic_n_steps(mode):
    def fn(x, s0, n):
        s, _ = sg.scan(
            lambda x_t, s: s * T.cos(x_t) + x_t,
            sequences=x,
            outputs_info=s0,
            n_steps=n,
            mode=mode,
        )
        return s

    check_grad(fn, [rand(6, 2), rand(2)], extra_inputs=[np.int64(4)])


@pytest.mark.parametrize("mode", MODES)
def test_scan_inside_a_loss_with_other_ops(mode):
    def fn(x, W, V, target):
        h0 = T.zeros_like(W[0])
        h, _ = sg.scan(
            lambda x_t, h, W: T.nnet.sigmoid(W.dot(h) + x_t.dot(W)),
            sequences=x,
            outputs_info=h0,
            non_sequences=W,
            mode=mode,
        )
        pred = T.nnet.softmax(h.dot(V))
        return T.sum((pred - target) ** 2) + 0.1 * T.sum(W**2) + T.mean(h[-1])

    check_grad(fn, [rand(5, 4), rand(4, 4), rand(4, 3), rand(5, 3)])


@pytest.mark.parametrize("mode", MODES)
def test_embedding_lookup_and_output_layer(mode):
    """The tutorial's shape: an integer sequence indexing a weight matrix inside the step."""

    def fn(U, W, V, x):
        def step(x_t, s, U, W, V):
            s_t = T.tanh(U[:, x_t] + W.dot(s))
            return [T.nnet.softmax(V.dot(s_t))[0], s_t]

        (o, _), _ = sg.scan(
            step,
            sequences=x,
            outputs_info=[None, T.zeros(3, dtype="float64")],
            non_sequences=[U, W, V],
            mode=mode,
        )
        return T.log(o)

    x = np.array([1, 4, 1, 0, 2], dtype=np.int32)
    check_grad(fn, [rand(3, 5), rand(3, 3), rand(5, 3)], extra_inputs=[x])


def test_sequences_of_different_lengths():
    def fn(a, b):
        out, _ = sg.scan(lambda x, y: T.tanh(x * y), sequences=[a, b])
        return out

    check_grad(fn, [rand(6, 2), rand(4, 2)])


def test_gradient_of_the_last_state_only():
    def fn(x, s0, W):
        s, _ = sg.scan(
            lambda x_t, s, W: T.tanh(W.dot(s) + x_t), sequences=x, outputs_info=s0, non_sequences=W
        )
        return s[-1]

    check_grad(fn, [rand(5, 3), rand(3), rand(3, 3)])


def test_state_passed_through_and_constant_output():
    def fn(x, s0):
        (s, c, y), _ = sg.scan(
            lambda x_t, s: [s, T.constant(2.0, dtype="float64"), x_t * s],
            sequences=x,
            outputs_info=[s0, None, None],
        )
        return T.sum(y) + T.sum(s) + T.sum(c)

    check_grad(fn, [rand(4, 2), rand(2)])


def test_nested_scan():
    """The inner loop reads W, so W's per-step gradient comes from a loop (no batch rule): the
    backward loop accumulates it step by step instead of summing after the loop."""

    def fn(x, W):
        def outer_step(row, acc, W):
            inner, _ = sg.scan(
                lambda v, a, W: T.tanh(a * v * W[0, 1] + 0.1),
                sequences=row,
                outputs_info=acc,
                non_sequences=W,
            )
            return inner[-1] + W.sum()

        out, _ = sg.scan(outer_step, sequences=x, outputs_info=T.constant(0.3), non_sequences=W)
        return out

    check_grad(fn, [rand(3, 4), rand(2, 2)])


def test_per_term_window_without_batch_rules(monkeypatch):
    """Without batch rules nothing leaves a loop: the per-term window is propagated row by row
    by an inner loop and gradient sums accumulate step by step, with the same results."""
    from symgraph.scan import grad as scan_grad_module
    from symgraph.scan import rewrites as rewrites_module

    x, s0, W = T.dmatrix("x"), T.dvector("s0"), T.dmatrix("W")

    def gradients():
        s, _ = sg.scan(
            lambda x_t, s, W: T.tanh(W.dot(s) + x_t),
            sequences=x,
            outputs_info=s0,
            non_sequences=W,
            bptt_truncate=2,
        )
        return sg.function([x, s0, W], T.grad(T.sum(s**2), [x, s0, W]))

    vals = [rand(6, 3), rand(3), rand(3, 3)]
    want = gradients()(*vals)
    for module in (scan_grad_module, rewrites_module):
        monkeypatch.setattr(module, "vectorize", lambda outs, *a: [None] * len(outs))
    f = gradients()
    nodes = _scan_nodes(f)
    assert any(n.op.name == "bptt_window" for n in nodes)
    assert any(spec.kind == "sum" for n in nodes for spec in n.op.outs)
    for g, w in zip(f(*vals), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def _scan_nodes(f):
    """Every Scan node of a compiled function, inner graphs included."""
    from symgraph.graph import toposort
    from symgraph.scan import Scan

    found, todo = [], [n for n in f.program.nodes]
    while todo:
        n = todo.pop()
        if isinstance(n.op, Scan):
            found.append(n)
            todo += toposort(n.op.inner_outputs)
    return found


def test_theano_truncation_drops_early_steps():
    """With truncate_gradient=k the early steps get no gradient at all (Theano's meaning)."""
    x, s0 = T.dmatrix("x"), T.dvector("s0")
    s, _ = sg.scan(
        lambda x_t, s: T.tanh(s + x_t), sequences=x, outputs_info=s0, truncate_gradient=2
    )
    gx, gs0 = T.grad(T.sum(s), [x, s0])
    f = sg.function([x, s0], [gx, gs0])
    gxv, gs0v = f(rand(5, 3), rand(3))
    assert np.all(gxv[:3] == 0) and np.all(np.abs(gxv[3:]) > 0)
    assert np.all(gs0v == 0)
    gxv, gs0v = f(rand(2, 3), rand(3))  # two steps: the window covers everything
    assert np.all(np.abs(gs0v) > 0)
