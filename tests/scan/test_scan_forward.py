"""scan's forward semantics (Theano's): sequences and taps, outputs_info kinds, non-sequences,
shared variables, n_steps, go_backwards, generator loops, several outputs."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.scan import scan_nodes_in

MODES = [None, "FAST_COMPILE"]


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


@pytest.mark.parametrize("mode", MODES)
def test_recurrence_with_sequence(mode):
    x = T.dvector("x")
    s, updates = sg.scan(
        lambda x_t, s: 0.5 * s + x_t, sequences=x, outputs_info=T.constant(1.0), mode=mode
    )
    assert isinstance(s, sg.Variable) and isinstance(updates, OrderedDict) and not updates
    xv = np.array([1.0, -2.0, 3.0, 0.5])
    want, acc = [], 1.0
    for v in xv:
        acc = 0.5 * acc + v
        want.append(acc)
    np.testing.assert_allclose(sg.function([x], s)(xv), want)


@pytest.mark.parametrize("mode", MODES)
def test_map_and_several_outputs(mode):
    x = T.dmatrix("x")

    def step(row):
        return [row.sum(), row * 2, T.max(row)]

    outs, _ = sg.scan(step, sequences=x, mode=mode)
    assert isinstance(outs, list) and len(outs) == 3
    xv = np.arange(12.0).reshape(4, 3)
    got = sg.function([x], outs)(xv)
    np.testing.assert_allclose(got[0], xv.sum(1))
    np.testing.assert_allclose(got[1], xv * 2)
    np.testing.assert_allclose(got[2], xv.max(1))


@pytest.mark.parametrize("mode", MODES)
def test_sequence_taps_follow_theano_cutting(mode):
    x = T.dvector("x")
    out, _ = sg.scan(
        lambda a, b, c: a + 10 * b + 100 * c,
        sequences=dict(input=x, taps=[-1, 0, 1]),
        mode=mode,
    )
    xv = np.arange(6.0)
    want = [xv[t - 1] + 10 * xv[t] + 100 * xv[t + 1] for t in range(1, 5)]
    np.testing.assert_allclose(sg.function([x], out)(xv), want)


@pytest.mark.parametrize("mode", MODES)
def test_output_taps_minus_two_minus_one(mode):
    f0 = T.dvector("f0")
    fib, _ = sg.scan(
        lambda a, b: a + b, outputs_info=dict(initial=f0, taps=[-2, -1]), n_steps=8, mode=mode
    )
    want = [0.0, 1.0]
    for _ in range(8):
        want.append(want[-2] + want[-1])
    np.testing.assert_allclose(sg.function([f0], fib)(np.array([0.0, 1.0])), want[2:])


def test_taps_are_passed_in_the_order_given():
    f0 = T.dvector("f0")
    out, _ = sg.scan(
        lambda older, newer: newer - older,
        outputs_info=dict(initial=f0, taps=[-2, -1]),
        n_steps=3,
    )
    a, b = 1.0, 5.0
    want = []
    for _ in range(3):
        a, b = b, b - a
        want.append(b)
    np.testing.assert_allclose(sg.function([f0], out)(np.array([1.0, 5.0])), want)


@pytest.mark.parametrize("mode", MODES)
def test_go_backwards(mode):
    x = T.dvector("x")
    s, _ = sg.scan(
        lambda x_t, s: s * 10 + x_t,
        sequences=x,
        outputs_info=T.constant(0.0),
        go_backwards=True,
        mode=mode,
    )
    np.testing.assert_allclose(sg.function([x], s)(np.array([1.0, 2.0, 3.0])), [3, 32, 321])


@pytest.mark.parametrize("mode", MODES)
def test_symbolic_n_steps_shorter_than_sequence(mode):
    x, n = T.dvector("x"), T.iscalar("n")
    s, _ = sg.scan(
        lambda x_t, s: s + x_t, sequences=x, outputs_info=T.constant(0.0), n_steps=n, mode=mode
    )
    f = sg.function([x, n], s)
    np.testing.assert_allclose(f(np.arange(1.0, 6.0), 3), [1, 3, 6])
    assert f(np.arange(1.0, 6.0), 0).shape == (0,)


def test_go_backwards_with_n_steps_reads_the_end_like_theano():
    x = T.dvector("x")
    out, _ = sg.scan(lambda x_t: x_t * 1, sequences=x, n_steps=2, go_backwards=True)
    np.testing.assert_allclose(sg.function([x], out)(np.arange(5.0)), [4.0, 3.0])


def test_sequences_of_different_lengths_use_the_shortest():
    a, b = T.dvector("a"), T.dvector("b")
    out, _ = sg.scan(lambda x, y: x * y, sequences=[a, b])
    np.testing.assert_allclose(sg.function([a, b], out)(np.arange(5.0), np.ones(3)), [0, 1, 2])


@pytest.mark.parametrize("mode", MODES)
def test_generator_loop_without_sequences(mode):
    """Sampling-style loop: an integer state fed back, a float state, n_steps symbolic."""
    table = sg.shared(np.array([2, 0, 3, 1], dtype=np.int64), name="table")
    n = T.iscalar("n")

    def step(w, acc):
        nxt = table[w]
        return [nxt, acc * 2 + T.cast(nxt, "float64")]

    (words, acc), _ = sg.scan(
        step,
        outputs_info=[T.constant(np.int64(1)), T.constant(0.0)],
        n_steps=n,
        mode=mode,
    )
    ws, accs = sg.function([n], [words, acc])(5)
    want_w, w, a, want_a = [], 1, 0.0, []
    for _ in range(5):
        w = [2, 0, 3, 1][w]
        a = a * 2 + w
        want_w.append(w)
        want_a.append(a)
    np.testing.assert_array_equal(ws, want_w)
    np.testing.assert_allclose(accs, want_a)


@pytest.mark.parametrize("mode", MODES)
def test_shared_variables_work_with_or_without_non_sequences(mode):
    W = sg.shared(np.array([[0.5, -1.0], [2.0, 0.25]]), name="W")
    x = T.dmatrix("x")

    def explicit(x_t, s, W):
        return T.tanh(W.dot(s) + x_t)

    def implicit(x_t, s):
        return T.tanh(W.dot(s) + x_t)

    a, _ = sg.scan(explicit, sequences=x, outputs_info=T.zeros(2), non_sequences=W, mode=mode)
    b, _ = sg.scan(implicit, sequences=x, outputs_info=T.zeros(2), mode=mode)
    f = sg.function([x], [a, b])
    xv = np.random.default_rng(0).standard_normal((4, 2))
    got_a, got_b = f(xv)
    s, want = np.zeros(2), []
    for row in xv:
        s = np.tanh(W.get_value().dot(s) + row)
        want.append(s)
    np.testing.assert_allclose(got_a, want)
    np.testing.assert_allclose(got_b, want)
    W.set_value(np.eye(2))  # the compiled function reads the shared value at call time
    assert not np.allclose(f(xv)[0], got_a)


def test_outer_symbolic_variable_used_implicitly():
    x, scale = T.dvector("x"), T.dscalar("scale")
    out, _ = sg.scan(lambda x_t: x_t * scale, sequences=x)
    np.testing.assert_allclose(sg.function([x, scale], out)(np.arange(3.0), 2.0), [0, 2, 4])


def test_outer_computed_variable_stays_outside_the_loop():
    W = sg.shared(np.eye(2) * 3, name="W")
    W2 = W * 2  # computed outside: the loop must read it, not recompute it
    x = T.dmatrix("x")
    out, _ = sg.scan(lambda x_t: W2.dot(x_t), sequences=x, mode="FAST_COMPILE")
    (node,) = scan_nodes_in([out])
    assert any(v is W2 for v in node.inputs)
    np.testing.assert_allclose(sg.function([x], out)(np.ones((2, 2))), np.full((2, 2), 6.0))


def test_scan_over_matrix_rows_with_state_matrix():
    x = T.dtensor3("x")
    s, _ = sg.scan(lambda x_t, s: s.dot(x_t), sequences=x, outputs_info=T.eye(3, "float64"))
    xv = np.random.default_rng(1).standard_normal((4, 3, 3))
    want, acc = [], np.eye(3)
    for m in xv:
        acc = acc.dot(m)
        want.append(acc)
    np.testing.assert_allclose(sg.function([x], s)(xv), want)


def test_float32_model():
    with sg.config.change_flags(floatX="float32"):
        x = T.fvector("x")
        s, _ = sg.scan(lambda x_t, s: s * 0.5 + x_t, sequences=x, outputs_info=T.zeros(()))
        out = sg.function([x], s)(np.ones(3, dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [1.0, 1.5, 1.75])


def test_debugprint_shows_the_inner_graph():
    x = T.dvector("x")
    s, _ = sg.scan(lambda x_t, s: T.tanh(s + x_t), sequences=x, outputs_info=T.constant(0.0))
    text = sg.debugprint(s, file="str")
    assert "Scan{<lambda>}" in text or "Scan{scan_fn}" in text
    assert "Inner graph of Scan" in text and "tanh" in text.split("Inner graph")[1]
