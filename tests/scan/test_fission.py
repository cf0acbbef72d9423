"""Loop fission: a stacked recurrence becomes a chain of loops, with the same values and
gradients as the single loop ``mode="FAST_COMPILE"`` builds (which splits nothing)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import toposort
from symgraph.ops.blas import Dot
from symgraph.scan import Scan, scan_nodes_in
from symgraph.testing import check_grad

H, C = 4, 7


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


def weights(seed=0, layers=2):
    rng = np.random.default_rng(seed)
    p = {
        "E": rng.uniform(-0.5, 0.5, (H, C)),
        "U": rng.uniform(-0.5, 0.5, (3 * layers, H, H)),
        "W": rng.uniform(-0.5, 0.5, (3 * layers, H, H)),
        "b": rng.uniform(-0.1, 0.1, (3 * layers, H)),
        "V": rng.uniform(-0.5, 0.5, (C, H)),
    }
    return {k: sg.shared(v, name=k) for k, v in p.items()}


def gru(p, k, x_in, s_prev):
    """The tutorial's GRU layer ``k`` (hard-sigmoid gates)."""
    U, W, b = p["U"], p["W"], p["b"]
    z = T.nnet.hard_sigmoid(U[3 * k].dot(x_in) + W[3 * k].dot(s_prev) + b[3 * k])
    r = T.nnet.hard_sigmoid(U[3 * k + 1].dot(x_in) + W[3 * k + 1].dot(s_prev) + b[3 * k + 1])
    c = T.tanh(U[3 * k + 2].dot(x_in) + W[3 * k + 2].dot(s_prev * r) + b[3 * k + 2])
    return (1 - z) * c + z * s_prev, r


def stacked(p, mode=None, layers=2, **kw):
    """GRUTheano's step: embedding, ``layers`` GRU layers, softmax output inside the step."""
    x = T.ivector("x")

    def step(x_t, *prev):
        inp = p["E"][:, x_t]
        states = []
        for k in range(layers):
            inp, _ = gru(p, k, inp, prev[k])
            states.append(inp)
        return [T.nnet.softmax(p["V"].dot(inp))[0], *states]

    info = [None] + [dict(initial=T.zeros(H)) for _ in range(layers)]
    outs, _ = sg.scan(step, sequences=x, outputs_info=info, mode=mode, **kw)
    return (x,), outs


def loss_and_grads(build, xs, ys, mode, layers=2):
    """Values and gradients of ``build(p, mode) -> (inputs, outputs)`` as numbers."""
    p = weights(layers=layers)
    ins, outs = build(p, mode)
    y = T.ivector("y")
    cost = T.sum(T.nnet.categorical_crossentropy(outs[0], y))
    for o in outs[1:]:
        cost = cost + 0.1 * T.sum(o**2)
    wrt = [p[k] for k in ("E", "U", "W", "b", "V")]
    f = sg.function([*ins, y], [cost, *outs, *T.grad(cost, wrt)])
    return f(*xs, ys)


def assert_same(build, xs, ys, layers=2, reference="FAST_COMPILE"):
    """Split loops against one loop: ``FAST_COMPILE`` (no loop rewrites) or ``"unsplit"`` (the
    default rewrites without fission)."""
    got = loss_and_grads(build, xs, ys, None, layers)
    if reference == "unsplit":
        fission = importlib.import_module("symgraph.scan.fission")
        saved, fission.split_scan = fission.split_scan, no_split
        try:
            want = loss_and_grads(build, xs, ys, None, layers)
        finally:
            fission.split_scan = saved
    else:
        want = loss_and_grads(build, xs, ys, reference, layers)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


XS = (np.array([1, 3, 0, 6, 2, 2], "int32"),)
YS = np.array([2, 2, 5, 1, 0, 4], "int32")


def inner_dots(node):
    return [n for n in toposort(node.op.inner_outputs) if isinstance(n.op, Dot)]


def test_two_layers_become_two_loops_and_the_input_projection_leaves_the_second(monkeypatch):
    p = weights()
    x, (o, s1, s2) = stacked(p)
    first, second = scan_nodes_in([o, s1, s2])
    # one recurrent state per loop; the output layer left the second loop
    assert [spec.kind for spec in first.op.outs] == ["state"]
    assert [spec.kind for spec in second.op.outs] == ["state"]
    # the first loop's states reach the second loop as a sequence...
    assert any(scan_nodes_in([i]) and i.owner is not first for i in second.inputs[1:])
    # ...and only the recurrent products stay in each loop: W[k] . s_prev, W[k+2] . (s_prev * r)
    for node in (first, second):
        dots = inner_dots(node)
        assert len(dots) == 3
        taps = {id(ph) for ph in node.op.inner_taps(node.op.state_outs[0])}
        for d in dots:
            ins = d.inputs[1]
            reads_tap = id(ins) in taps or any(id(i) in taps for i in ins.owner.inputs)
            assert reads_tap, "an input projection stayed inside a loop"
    # unsplit, the layer-2 input projections U[3..5] . s1_t stay in the loop: 9 Dots per step
    monkeypatch.setattr(importlib.import_module("symgraph.scan.fission"), "split_scan", no_split)
    _, (o_ref, *_) = stacked(p)
    (ref,) = scan_nodes_in([o_ref])
    assert len(inner_dots(ref)) == 9


def no_split(node):
    return None


def test_the_gradient_is_built_from_the_split_loops():
    p = weights()
    x, (o, s1, s2) = stacked(p)
    cost = T.sum(o) + T.sum(s1)
    g = T.grad(cost, p["W"])
    # two forward loops, two backward loops (the forward loops the gradient extends to store
    # their products merge with the cost's when compiled: see scan/store.py)
    f = sg.function(list(x), g)
    assert sum(isinstance(n.op, Scan) for n in f.program.nodes) == 4


def test_separate_grad_calls_share_the_backward_loops():
    p = weights()
    x, (o, s1, s2) = stacked(p)
    cost = T.sum(o)
    gs = [T.grad(cost, p[k]) for k in ("U", "W", "b", "E")]
    # one backward loop per forward loop for all four calls (and the forward loops extended
    # to store their products for them are built once too: two of each before compiling)
    assert sum(n.op.name.startswith("grad_of") for n in scan_nodes_in(gs)) == 2
    f = sg.function(list(x), gs)
    assert sum(isinstance(n.op, Scan) for n in f.program.nodes) == 4


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"truncate_gradient": 2},
        {"truncate_gradient": 10},
        {"go_backwards": True},
    ],
    ids=["full", "truncate2", "truncate_all", "backwards"],
)
def test_same_values_and_gradients_as_one_loop(kw):
    assert_same(lambda p, mode: stacked(p, mode, **kw), XS, YS)


def test_three_layers_become_three_loops_with_the_same_numbers():
    p = weights(layers=3)
    _, outs = stacked(p, layers=3)
    assert len(scan_nodes_in(outs)) == 3
    assert_same(lambda p, mode: stacked(p, mode, layers=3), XS, YS, layers=3)


def test_n_steps_shorter_than_the_sequence():
    def build(p, mode):
        return stacked(p, mode, n_steps=4)

    _, outs = build(weights(), None)
    assert len(scan_nodes_in(outs)) == 2
    assert_same(build, XS, YS[:4])


def test_second_layer_reading_a_gate_and_a_past_state_of_the_first():
    """Layer 2 reads layer 1's reset gate (a per-step value, stored by the first loop) and its
    state two steps back (taps [-2, -1]); an output needing layer 1 only stays in the first."""

    def build(p, mode):
        x = T.ivector("x")

        def step(x_t, s1_2, s1_1, s2_prev):
            s1, r1 = gru(p, 0, p["E"][:, x_t], s1_1 + 0.5 * s1_2)
            s2, _ = gru(p, 1, s1 * r1 + s1_2, s2_prev)
            return [T.nnet.softmax(p["V"].dot(s2))[0], s1, s2, T.tanh(s1).sum()]

        init1 = T.as_tensor_variable(np.full((2, H), 0.1))
        outs, _ = sg.scan(
            step,
            sequences=x,
            outputs_info=[None, dict(initial=init1, taps=[-2, -1]), T.zeros(H), None],
            mode=mode,
        )
        return (x,), outs

    p = weights()
    _, outs = build(p, None)
    first, second = scan_nodes_in(outs)
    # the first loop stores its state and the gate; T.tanh(s1).sum() is computed after it
    assert sorted(s.kind for s in first.op.outs) == ["seq", "state"]
    assert [s.kind for s in second.op.outs] == ["state"]
    # (FAST_COMPILE's gradient of a loop with two per-step outputs fails on main, apart from
    # fission; the rewritten single loop is the reference here)
    assert_same(build, XS, YS, reference="unsplit")


def test_check_grad_through_split_loops():
    def f(x, u, w):
        def step(x_t, a_prev, b_prev):
            a = T.tanh(x_t + u.dot(a_prev))
            b = T.tanh(w.dot(a) + u.dot(b_prev))
            return a, b

        (a, b), _ = sg.scan(step, sequences=x, outputs_info=[T.zeros(3), T.zeros(3)])
        return T.sum(b**2) + T.sum(a)

    rng = np.random.default_rng(1)
    x, u, w = rng.normal(size=(5, 3)), rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(3, 3))
    check_grad(f, [x, u, w])


def assert_one_loop(build):
    (node,) = scan_nodes_in([build(None)])
    return node


def test_not_split_independent_recurrences():
    x = T.matrix("x")
    w = sg.shared(np.eye(H) * 0.5, name="w")

    def step(x_t, a_prev, b_prev):
        return T.tanh(x_t + w.dot(a_prev)), T.tanh(x_t - w.dot(b_prev))

    (a, b), _ = sg.scan(step, sequences=x, outputs_info=[T.zeros(H), T.zeros(H)])
    assert len(scan_nodes_in([a, b])) == 1


def test_not_split_under_the_tutorials_per_term_truncation():
    p = weights()
    _, outs = stacked(p, bptt_truncate=2)
    assert len(scan_nodes_in(outs)) == 1


def test_not_split_with_random_draws_in_the_step():
    from symgraph.tensor.shared_randomstreams import RandomStreams

    p = weights()
    srng = RandomStreams(seed=3)
    x = T.ivector("x")

    def step(x_t, s1_prev, s2_prev):
        mask = srng.binomial((H,), p=0.5, dtype="float64")
        s1, _ = gru(p, 0, p["E"][:, x_t] * mask, s1_prev)
        s2, _ = gru(p, 1, s1 * mask, s2_prev)
        return s1, s2

    outs, _ = sg.scan(step, sequences=x, outputs_info=[T.zeros(H), T.zeros(H)])
    assert len(scan_nodes_in(outs)) == 1
