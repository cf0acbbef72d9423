"""Independent NumPy references for the language-model tests (float64, no symgraph).

``rnn_forward``/``rnn_bptt`` follow the WildML part 2 tutorial's ``RNNNumpy``: each loss term
``t`` back-propagates through steps ``t, t-1, ..., max(0, t - bptt_truncate)`` only.
``lm_forward_loss`` runs any of the three cells on one sentence with the models' parameter layout
(``models.cells.Layout``), written out gate by gate without any shared code.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def rnn_forward(U, V, W, x):
    """States ``s [T + 1, H]`` (row ``-1`` is the zero initial state) and outputs ``o [T, V]``."""
    n, H = len(x), W.shape[0]
    s = np.zeros((n + 1, H))
    o = np.zeros((n, V.shape[0]))
    for t in range(n):
        s[t] = np.tanh(U[:, x[t]] + W @ s[t - 1])
        o[t] = softmax(V @ s[t])
    return o, s


def rnn_loss(U, V, W, x, y) -> float:
    o, _ = rnn_forward(U, V, W, x)
    return float(-np.sum(np.log(o[np.arange(len(y)), y])))


def rnn_bptt(U, V, W, x, y, bptt_truncate: int):
    """Gradients ``(dU, dV, dW)`` of the summed cross-entropy, truncated per loss term."""
    o, s = rnn_forward(U, V, W, x)
    dU, dV, dW = np.zeros_like(U), np.zeros_like(V), np.zeros_like(W)
    d_out = o.copy()
    d_out[np.arange(len(y)), y] -= 1.0  # d loss / d logits
    for t in reversed(range(len(y))):
        dV += np.outer(d_out[t], s[t])
        delta = (V.T @ d_out[t]) * (1.0 - s[t] ** 2)  # d loss_t / d (pre-activation at t)
        for k in range(t, max(0, t - bptt_truncate) - 1, -1):
            dW += np.outer(delta, s[k - 1])  # s[-1] is the zero state
            dU[:, x[k]] += delta
            delta = (W.T @ delta) * (1.0 - s[k - 1] ** 2)
    return dU, dV, dW


def _sig(z, gate):
    if gate == "hard_sigmoid":
        return np.clip(0.2 * z + 0.5, 0.0, 1.0)
    return 1.0 / (1.0 + np.exp(-z))


def _gate_mats(p, name, n):
    a = p[name]
    return [a] if a.ndim == (1 if name == "b" else 2) and n == 1 else list(a)


def lm_forward_loss(p: dict, cell: str, layers: int, gate: str, x, y) -> float:
    """Summed cross-entropy of one sentence under a model with the ``models.cells`` layout."""
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    H = p["W"].shape[-1]
    Wm = _gate_mats(p, "W", G * layers)
    bm = _gate_mats(p, "b", G * layers) if "b" in p else [np.zeros(H)] * (G * layers)
    Um = _gate_mats(p, "U", len(p["U"]) if p["U"].ndim == 3 else 1)
    if "U_up" in p:
        Um = Um + _gate_mats(p, "U_up", G * (layers - 1))
    h = [np.zeros(H) for _ in range(layers)]
    c = [np.zeros(H) for _ in range(layers)]
    total = 0.0
    for t in range(len(x)):
        below = p["E"][:, x[t]] if "E" in p else None
        for layer in range(layers):
            k = layer * G

            def a(g, _k=k, _below=below, _layer=layer, _t=t):
                if _layer == 0 and _below is None:
                    return Um[_k + g][:, x[_t]]
                return Um[_k + g] @ _below

            if cell == "rnn":
                h[layer] = np.tanh(a(0) + Wm[k] @ h[layer] + bm[k])
            elif cell == "gru":
                z = _sig(a(0) + Wm[k] @ h[layer] + bm[k], gate)
                r = _sig(a(1) + Wm[k + 1] @ h[layer] + bm[k + 1], gate)
                cand = np.tanh(a(2) + Wm[k + 2] @ (h[layer] * r) + bm[k + 2])
                h[layer] = (1 - z) * cand + z * h[layer]
            else:
                i = _sig(a(0) + Wm[k] @ h[layer] + bm[k], gate)
                f = _sig(a(1) + Wm[k + 1] @ h[layer] + bm[k + 1], gate)
                o = _sig(a(2) + Wm[k + 2] @ h[layer] + bm[k + 2], gate)
                g_ = np.tanh(a(3) + Wm[k + 3] @ h[layer] + bm[k + 3])
                c[layer] = f * c[layer] + i * g_
                h[layer] = o * np.tanh(c[layer])
            below = h[layer]
        logits = p["V"] @ below + (p["c"] if "c" in p else 0.0)
        total -= np.log(softmax(logits)[y[t]])
    return float(total)
