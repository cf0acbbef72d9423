"""GRU and LSTM steps (several states, gates sliced from one product, an embedding) through scan:
numeric gradient checks, and the tutorial's per-term truncation against an independent
reference: the recurrence unrolled in Python, each cost term differentiated with the state
``k + 1`` steps before it held constant."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import check_grad

MODES = [None, "FAST_COMPILE"]
V_, E_, H_ = 6, 3, 4  # vocabulary, embedding, hidden
rng = np.random.default_rng(11)
X = np.array([1, 5, 2, 2, 0, 3, 4], dtype=np.int32)
Y = np.array([5, 2, 2, 0, 3, 4, 1], dtype=np.int32)


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


def gru_step(x_t, s, E, U, W, b):
    e = E[:, x_t]
    z = T.nnet.sigmoid(U[0].dot(e) + W[0].dot(s) + b[0])
    r = T.nnet.sigmoid(U[1].dot(e) + W[1].dot(s) + b[1])
    c = T.tanh(U[2].dot(e) + W[2].dot(s * r) + b[2])
    return (1 - z) * c + z * s


def lstm_step(x_t, h, c, E, U, W, b):
    gates = U.dot(E[:, x_t]) + W.dot(h) + b  # one product, sliced into four gates
    i = T.nnet.sigmoid(gates[0:H_])
    f = T.nnet.sigmoid(gates[H_ : 2 * H_])
    o = T.nnet.sigmoid(gates[2 * H_ : 3 * H_])
    g = T.tanh(gates[3 * H_ :])
    c_new = f * c + i * g
    return [o * T.tanh(c_new), c_new]


def gru_params():
    return [rng.uniform(-0.7, 0.7, s) for s in ((E_, V_), (3, H_, E_), (3, H_, H_), (3, H_))]


def lstm_params():
    shapes = ((E_, V_), (4 * H_, E_), (4 * H_, H_), (4 * H_,))
    return [rng.uniform(-0.7, 0.7, s) for s in shapes]


def output_layer(h, Vout):
    return T.nnet.softmax(h.dot(Vout.T))


@pytest.mark.parametrize("mode", MODES)
def test_gru_gradients(mode):
    def cost(E, U, W, b, Vout, x, y):
        s, _ = sg.scan(
            gru_step,
            sequences=x,
            outputs_info=T.zeros(H_),
            non_sequences=[E, U, W, b],
            mode=mode,
        )
        return T.sum(T.nnet.categorical_crossentropy(output_layer(s, Vout), y))

    check_grad(cost, [*gru_params(), rng.uniform(-0.7, 0.7, (V_, H_))], extra_inputs=[X, Y])


@pytest.mark.parametrize("mode", MODES)
def test_lstm_gradients(mode):
    def cost(E, U, W, b, Vout, h0, x, y):
        (h, c), _ = sg.scan(
            lstm_step,
            sequences=x,
            outputs_info=[h0, T.zeros(H_)],
            non_sequences=[E, U, W, b],
            mode=mode,
        )
        return T.sum(T.nnet.categorical_crossentropy(output_layer(h, Vout), y)) + T.sum(c**2)

    params = [*lstm_params(), rng.uniform(-0.7, 0.7, (V_, H_)), rng.uniform(-0.5, 0.5, H_)]
    check_grad(cost, params, extra_inputs=[X, Y])


def _per_term_reference(step, n_states, params, h0s, k):
    """Unrolled recurrence; term t is differentiated with the states before step t - k constant."""
    syms = [T.tensor("float64", (None,) * p.ndim) for p in params]
    inits = [T.tensor("float64", (None,)) for _ in h0s]
    x, y = T.ivector("x"), T.ivector("y")
    E, U, W, b, Vout = syms
    states = [list(inits)]  # states[t + 1] = states after step t
    for t in range(len(X)):
        out = step(x[t], *states[-1], E, U, W, b)
        states.append(list(out) if isinstance(out, list) else [out])
    terms = []
    for t in range(len(X)):
        h_t = states[t + 1][0]
        p = T.nnet.softmax(h_t.dot(Vout.T))[0]
        term = -T.log(p[y[t]])
        cut = t - k  # term t back-propagates through steps t .. max(0, t - k)
        const = states[cut] if cut >= 1 else []
        terms.append(
            T.grad(term, syms + inits, consider_constant=const, disconnected_inputs="ignore")
        )
    total = [sum(g[i] for g in terms) for i in range(len(syms) + len(inits))]
    f = sg.function([*syms, *inits, x, y], total, on_unused_input="ignore")
    return f(*params, *h0s, X, Y)


def _scan_per_term(step, n_states, params, h0s, k, mode):
    syms = [T.tensor("float64", (None,) * p.ndim) for p in params]
    inits = [T.tensor("float64", (None,)) for _ in h0s]
    x, y = T.ivector("x"), T.ivector("y")
    E, U, W, b, Vout = syms
    outs, _ = sg.scan(
        step,
        sequences=x,
        outputs_info=inits,
        non_sequences=[E, U, W, b],
        bptt_truncate=k,
        mode=mode,
    )
    h = outs[0] if n_states > 1 else outs
    cost = T.sum(T.nnet.categorical_crossentropy(output_layer(h, Vout), y))
    grads = T.grad(cost, syms + inits)
    return sg.function([*syms, *inits, x, y], grads)(*params, *h0s, X, Y)


@functools.cache
def _case(cell: str, k: int):
    """Fixed weights per cell, and the reference gradients (computed once for both modes)."""
    r = np.random.default_rng(5)
    if cell == "gru":
        step, n_states, shapes = gru_step, 1, ((E_, V_), (3, H_, E_), (3, H_, H_), (3, H_))
    else:
        shapes = ((E_, V_), (4 * H_, E_), (4 * H_, H_), (4 * H_,))
        step, n_states = lstm_step, 2
    params = [r.uniform(-0.7, 0.7, s) for s in (*shapes, (V_, H_))]
    h0s = [r.uniform(-0.5, 0.5, H_) for _ in range(n_states)]
    return step, n_states, params, h0s, _per_term_reference(step, n_states, params, h0s, k)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "cell, k, mode",
    [
        ("gru", 0, None),
        ("gru", 2, None),
        ("gru", 2, "FAST_COMPILE"),
        ("lstm", 0, "FAST_COMPILE"),
        ("lstm", 2, None),
        ("lstm", 2, "FAST_COMPILE"),
        pytest.param("gru", 100, None, marks=SLOW),
        pytest.param("lstm", 100, "FAST_COMPILE", marks=SLOW),
    ],
)
def test_per_term_truncation_of_gated_cells(cell, k, mode):
    step, n_states, params, h0s, want = _case(cell, k)
    got = _scan_per_term(step, n_states, params, h0s, k, mode)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
