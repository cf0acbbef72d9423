"""The WildML tutorial RNN written with T and scan, against an independent NumPy implementation:
the forward pass, and the gradients of full BPTT, Theano's ``truncate_gradient`` and the
tutorial's per-term ``bptt_truncate`` (float64, relative error below 1e-8)."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T

C, H, N = 11, 6, 9  # words, hidden units, sentence length


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


@pytest.fixture
def params():
    rng = np.random.default_rng(42)
    return {
        "U": rng.uniform(-0.6, 0.6, (H, C)),
        "V": rng.uniform(-0.6, 0.6, (C, H)),
        "W": rng.uniform(-0.6, 0.6, (H, H)),
        "x": rng.integers(0, C, N).astype(np.int32),
        "y": rng.integers(0, C, N).astype(np.int32),
    }


# -- the NumPy reference (the tutorial's code, with s[-1] as the zero initial state) -------------


def np_forward(p, x):
    s = np.zeros((len(x) + 1, H))
    o = np.zeros((len(x), C))
    for t in range(len(x)):
        s[t] = np.tanh(p["U"][:, x[t]] + p["W"].dot(s[t - 1]))
        z = p["V"].dot(s[t])
        e = np.exp(z - z.max())
        o[t] = e / e.sum()
    return o, s


def np_bptt(p, x, y, bptt_truncate):
    """The tutorial's ``bptt``: every term's delta goes back to ``max(0, t - bptt_truncate)``."""
    n = len(y)
    o, s = np_forward(p, x)
    dU, dV, dW = np.zeros_like(p["U"]), np.zeros_like(p["V"]), np.zeros_like(p["W"])
    delta_o = o.copy()
    delta_o[np.arange(n), y] -= 1.0
    for t in np.arange(n)[::-1]:
        dV += np.outer(delta_o[t], s[t])
        delta_t = p["V"].T.dot(delta_o[t]) * (1 - s[t] ** 2)
        for step in np.arange(max(0, t - bptt_truncate), t + 1)[::-1]:
            dW += np.outer(delta_t, s[step - 1])
            dU[:, x[step]] += delta_t
            delta_t = p["W"].T.dot(delta_t) * (1 - s[step - 1] ** 2)
    return dU, dV, dW


def np_theano_truncated(p, x, y, k):
    """Theano's truncate_gradient=k: one backward sweep over the last k steps only."""
    n = len(y)
    o, s = np_forward(p, x)
    dU, dV, dW = np.zeros_like(p["U"]), np.zeros_like(p["V"]), np.zeros_like(p["W"])
    delta_o = o.copy()
    delta_o[np.arange(n), y] -= 1.0
    carry = np.zeros(H)
    for t in range(max(0, n - k), n)[::-1]:
        dV += np.outer(delta_o[t], s[t])
        dz = (p["V"].T.dot(delta_o[t]) + carry) * (1 - s[t] ** 2)
        dW += np.outer(dz, s[t - 1])
        dU[:, x[t]] += dz
        carry = p["W"].T.dot(dz)
    return dU, dV, dW


# -- the model in symgraph, tutorial style (softmax inside the step) ------------------------------


def build(p, mode=None, **truncation):
    U = sg.shared(p["U"], name="U")
    V = sg.shared(p["V"], name="V")
    W = sg.shared(p["W"], name="W")
    x, y = T.ivector("x"), T.ivector("y")

    def forward_prop_step(x_t, s_t_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + W.dot(s_t_prev))
        o_t = T.nnet.softmax(V.dot(s_t))[0]
        return [o_t, s_t]

    [o, s], updates = sg.scan(
        forward_prop_step,
        sequences=x,
        outputs_info=[None, dict(initial=T.zeros(H))],
        non_sequences=[U, V, W],
        mode=mode,
        **truncation,
    )
    assert len(updates) == 0
    cost = T.sum(T.nnet.categorical_crossentropy(o, y))
    grads = T.grad(cost, [U, V, W])
    return sg.function([x, y], [o, s, cost, *grads])


def rel_err(got, want):
    """Largest error relative to the largest entry (exact zeros must stay exact)."""
    return max(np.abs(g - w).max() / max(np.abs(w).max(), 1e-300) for g, w in zip(got, want))


MODES = [None, "FAST_COMPILE"]  # with the loop rewrites (default) and as written


@pytest.mark.parametrize("mode", MODES)
def test_forward_matches_numpy(params, mode):
    o, s, cost, *_ = build(params, mode)(params["x"], params["y"])
    o_ref, s_ref = np_forward(params, params["x"])
    np.testing.assert_allclose(o, o_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s, s_ref[:N], rtol=1e-12, atol=1e-14)
    want = -np.log(o_ref[np.arange(N), params["y"]]).sum()
    assert cost == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_full_bptt_matches_numpy(params, mode):
    _, _, _, *grads = build(params, mode)(params["x"], params["y"])
    assert rel_err(grads, np_bptt(params, params["x"], params["y"], N)) < 1e-8


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [1, 4, 1000])
def test_theano_truncate_gradient(params, mode, k):
    _, _, _, *grads = build(params, mode, truncate_gradient=k)(params["x"], params["y"])
    assert rel_err(grads, np_theano_truncated(params, params["x"], params["y"], k)) < 1e-8


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [0, 1, 4, 1000])
def test_tutorial_bptt_truncate(params, mode, k):
    _, _, _, *grads = build(params, mode, bptt_truncate=k)(params["x"], params["y"])
    want = np_bptt(params, params["x"], params["y"], k)
    assert rel_err(grads, want) < 1e-8


def test_truncations_really_differ(params):
    """The references are not all the same number (the tests above would then prove little)."""
    x, y = params["x"], params["y"]
    full = np_bptt(params, x, y, N)
    assert rel_err(np_bptt(params, x, y, 1), full) > 1e-3
    assert rel_err(np_theano_truncated(params, x, y, 4), full) > 1e-3
    assert rel_err(np_bptt(params, x, y, 4), np_theano_truncated(params, x, y, 4)) > 1e-3


def test_shorter_and_longer_sentences_reuse_one_function(params):
    f = build(params)
    for n in (1, 3, 14):
        x = np.arange(n, dtype=np.int32) % C
        y = (x + 3) % C
        _, _, _, *grads = f(x, y)
        assert rel_err(grads, np_bptt(params, x, y, n)) < 1e-8
