"""Gradients of loops built with ``mode="FAST_COMPILE"`` (no loop rewrites) against the default
rewrites, and against numeric gradients.

A loop left as written keeps its per-step outputs (``outputs_info`` None) as outputs 0, 2, ... of
the Scan node; the gradient of ``y ** 2`` reads ``y`` back as ``y ** 1``, which the function's
rewrites simplify to ``y``. The rewrite engine used to mistake that single output for the Scan
node and hand back output 0 in its place: a shape mismatch at run time, e.g. (6,) against (6, 7).
With the default loop rewrites the per-step outputs are computed after the loop, which hid it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.scan import scan_nodes_in
from symgraph.testing import check_grad

H, C, N = 4, 7, 6


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


def loop(x, init, W, V, taps, n_none=2, scan_mode=None, **kw):
    """A recurrent state with ``taps`` between per-step outputs: ``[V s, s, sum(tanh(s))]``
    (the last one only when ``n_none == 2``); returns the cost over all of them."""

    def step(x_t, *prev):
        s = T.tanh(x_t + W.dot(prev[-1]) + (0.5 * prev[0] if len(prev) > 1 else 0))
        outs = [V.dot(s), s, T.tanh(s).sum()]
        return outs[: 2 + (n_none == 2)]

    info = [None, dict(initial=init, taps=list(taps))] + [None] * (n_none == 2)
    outs, _ = sg.scan(step, sequences=x, outputs_info=info, mode=scan_mode, **kw)
    cost = T.sum(outs[0] ** 2) + 0.1 * T.sum(outs[1] ** 2)
    if n_none == 2:
        cost = cost + T.sum(outs[2] ** 2)
    return cost


def data(taps, seed=0):
    rng = np.random.default_rng(seed)
    init = rng.uniform(-0.5, 0.5, (2, H) if len(taps) > 1 else (H,))
    return (
        rng.uniform(-1, 1, (N, H)),
        init,
        rng.uniform(-0.5, 0.5, (H, H)),
        rng.uniform(-0.5, 0.5, (C, H)),
    )


def values(taps, scan_mode, fn_mode, **kw):
    """The cost and its gradients w.r.t. the shared weights, the initial state and the input."""
    xv, iv, Wv, Vv = data(taps)
    x, init = T.matrix("x"), T.tensor("float64", (None,) * iv.ndim, name="init")
    W, V = sg.shared(Wv, name="W"), sg.shared(Vv, name="V")
    cost = loop(x, init, W, V, taps, scan_mode=scan_mode, **kw)
    f = sg.function([x, init], [cost, *T.grad(cost, [W, V, init, x])], mode=fn_mode)
    return f(xv, iv)


def test_two_per_step_outputs_and_taps_minus_two_minus_one():
    """The reported case: FAST_COMPILE's loop, the function compiled with the default rewrites."""
    got = values((-2, -1), "FAST_COMPILE", None)
    want = values((-2, -1), None, None)
    assert [np.shape(g) for g in got] == [(), (H, H), (C, H), (2, H), (N, H)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_the_loop_keeps_its_per_step_outputs_under_fast_compile():
    """What the bug needed: the per-step outputs stay outputs of the one loop."""
    xv, iv, Wv, Vv = data((-2, -1))
    x, init = T.matrix("x"), T.matrix("init")
    W, V = sg.shared(Wv), sg.shared(Vv)
    cost = loop(x, init, W, V, (-2, -1), scan_mode="FAST_COMPILE")
    (node,) = scan_nodes_in([cost])
    assert [s.kind for s in node.op.outs] == ["seq", "state", "seq"]


MODES = [("FAST_COMPILE", None), ("FAST_COMPILE", "FAST_COMPILE"), (None, "FAST_COMPILE")]
CASES = list(itertools.product([1, 2], [(-1,), (-2, -1)], [-1, 3, 10], [False, True]))


def case_id(c):
    n_none, taps, k, back = c
    return f"none{n_none}-taps{len(taps)}-trunc{k}" + ("-back" if back else "")


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fast_compile_and_fast_run_gradients_agree(case):
    n_none, taps, k, back = case
    kw = dict(n_none=n_none, truncate_gradient=k, go_backwards=back)
    want = values(taps, None, None, **kw)
    for scan_mode, fn_mode in MODES:
        got = values(taps, scan_mode, fn_mode, **kw)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# a truncation covering fewer steps than the loop has is not the gradient of the cost
FULL = [c for c in CASES if c[2] != 3]


@pytest.mark.parametrize("case", FULL, ids=[case_id(c) for c in FULL])
def test_fast_compile_gradients_are_the_numeric_ones(case):
    n_none, taps, k, back = case

    def fn(x, init, W, V):
        return loop(
            x, init, W, V, taps, n_none, "FAST_COMPILE", truncate_gradient=k, go_backwards=back
        )

    check_grad(fn, list(data(taps)))
