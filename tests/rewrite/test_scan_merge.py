"""Separate T.grad calls (the tutorial's style) build separate backward loops; they are merged."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.rewrite.scan_merge import merge_equal_scans
from symgraph.scan.op import Scan

C, H = 12, 5


def tutorial_rnn(**scan_kwargs):
    rng = np.random.default_rng(0)
    U, V, W = (
        sg.shared(rng.uniform(-0.3, 0.3, shape), name=n)
        for n, shape in (("U", (H, C)), ("V", (C, H)), ("W", (H, H)))
    )
    x, y = T.ivector("x"), T.ivector("y")

    def step(x_t, s_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + W.dot(s_prev))
        return [T.nnet.softmax(V.dot(s_t))[0], s_t]

    [o, _], _ = sg.scan(
        step,
        sequences=x,
        outputs_info=[None, dict(initial=T.zeros(H, dtype="float64"))],
        non_sequences=[U, V, W],
        **scan_kwargs,
    )
    cost = T.sum(T.nnet.categorical_crossentropy(o, y))
    return x, y, cost, (U, V, W)


@pytest.mark.parametrize("kwargs", [{}, {"truncate_gradient": 3}, {"bptt_truncate": 2}])
def test_separate_grad_calls_share_one_backward_loop(kwargs):
    x, y, cost, (U, V, W) = tutorial_rnn(**kwargs)
    separate = [T.grad(cost, U), T.grad(cost, V), T.grad(cost, W)]
    together = T.grad(cost, [U, V, W])
    assert len({id(g.owner) for g in separate}) == 3  # three graphs were built
    f = sg.function([x, y], [cost, *separate])
    scans = [n for n in f.program.nodes if isinstance(n.op, Scan)]
    assert len(scans) == 2  # the forward loop and one backward loop
    g = sg.function([x, y], [cost, *together])
    xv = np.array([1, 5, 2, 7, 3], "int32")
    yv = np.array([5, 2, 7, 3, 0], "int32")
    for a, b in zip(f(xv, yv), g(xv, yv)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_different_loops_are_not_merged():
    x, y, cost, (U, V, W) = tutorial_rnn()
    _, _, cost2, _ = tutorial_rnn(truncate_gradient=2)  # other weights, other settings
    outs = merge_equal_scans([cost, cost2])
    from symgraph.graph import toposort

    assert sum(isinstance(n.op, Scan) for n in toposort(outs)) == 2
