"""The reference: each benchmark model written by hand in NumPy, forward and backward.

Written the way a careful person writes them: the recurrence is a Python loop over time steps,
everything that does not depend on the previous step (embedding lookup, input projections,
output layer, weight gradients) is one matrix product over all steps, gradients are dense arrays
and the updates are applied in place, as in the tutorial's ``sgd_step``. ``finite_difference_check``
validates each one against the loss itself, so the reference does not depend on symgraph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from suite_configs import Config


def _softmax_rows(a: np.ndarray) -> np.ndarray:
    a -= a.max(axis=1, keepdims=True)
    np.exp(a, out=a)
    a /= a.sum(axis=1, keepdims=True)
    return a


def _hard_sigmoid(a: np.ndarray) -> np.ndarray:
    return np.clip(a * 0.2 + 0.5, 0.0, 1.0)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


class NumpyModel:
    """Common part: parameters in a dict, ``loss_and_grads`` per model, the optimizer here."""

    label = "hand NumPy"

    def __init__(self, cfg: Config, params: dict[str, np.ndarray]):
        self.cfg = cfg
        self.p = {k: v.copy() for k, v in params.items()}
        self.names = [k for k in params if not (k.startswith("m") and k[1:] in params)]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        raise NotImplementedError

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, g = self.loss_and_grads(x, y)
        lr, p = self.cfg.lr, self.p
        if self.cfg.optimizer == "sgd":
            for k in self.names:
                p[k] -= lr * g[k]
        else:  # RMSProp exactly as GRUTheano: the new cache is used, eps inside the sqrt
            d = self.cfg.decay
            for k in self.names:
                m, gk = p["m" + k], g[k]
                m *= d
                m += (1 - d) * gk * gk
                p[k] -= lr * gk / np.sqrt(m + 1e-6)
        return loss

    def params(self) -> dict[str, np.ndarray]:
        return self.p


class NumpyRNN(NumpyModel):
    """WildML's RNN: s_t = tanh(U[:, x_t] + W s_{t-1}), o_t = softmax(V s_t), summed CE.

    With ``cfg.truncate = k > 0`` the backward pass covers only the last k steps (Theano's
    ``truncate_gradient``): earlier outputs contribute nothing, and s_{n-k-1} is a constant.
    """

    def loss_and_grads(self, x, y):
        U, V, W = self.p["U"], self.p["V"], self.p["W"]
        n, H = len(x), W.shape[0]
        S = np.zeros((n + 1, H), U.dtype)  # S[t + 1] = s_t, S[0] the initial state
        Ux = U[:, x].T  # all the embedding columns in one gather
        for t in range(n):
            S[t + 1] = np.tanh(Ux[t] + W @ S[t])
        o = _softmax_rows(S[1:] @ V.T)
        rows = np.arange(n)
        loss = float(-np.log(o[rows, y]).sum())
        lo = n - self.cfg.truncate if 0 < self.cfg.truncate < n else 0
        d = o[lo:]
        d[rows[: n - lo], y[lo:]] -= 1  # d loss / d logits
        dV = d.T @ S[lo + 1 :]
        dS = d @ V
        dZ = np.empty((n - lo, H), U.dtype)
        carry = np.zeros(H, U.dtype)
        WT = W.T
        for t in range(n - 1, lo - 1, -1):
            dz = (dS[t - lo] + carry) * (1 - S[t + 1] ** 2)
            dZ[t - lo] = dz
            carry = WT @ dz
        dW = dZ.T @ S[lo:n]
        dU = np.zeros_like(U)
        np.add.at(dU.T, x[lo:], dZ)  # dU.T is a view: columns x_t of dU receive dz_t
        return loss, {"U": dU, "V": dV, "W": dW}


def _gru_layer_fwd(X, U3, W3, b3, gate, H):
    """One tutorial GRU layer over a sequence X [n, in]; returns states [n + 1, H] and a cache."""
    n = X.shape[0]
    A = X @ U3.reshape(3 * H, -1).T + b3.reshape(-1)  # input part of all pre-activations
    Wzr, Wc = W3[:2].reshape(2 * H, H), W3[2]
    S = np.zeros((n + 1, H), X.dtype)
    ZR = np.empty((n, 2 * H), X.dtype)
    C = np.empty((n, H), X.dtype)
    HR = np.empty((n, H), X.dtype)
    for t in range(n):
        h = S[t]
        zr = gate(A[t, : 2 * H] + Wzr @ h)
        hr = h * zr[H:]
        c = np.tanh(A[t, 2 * H :] + Wc @ hr)
        z = zr[:H]
        S[t + 1] = (1 - z) * c + z * h
        ZR[t], C[t], HR[t] = zr, c, hr
    return S, (ZR, C, HR)


def _gru_layer_bwd(dS_out, X, S, cache, U3, W3, gate_grad, H):
    """Backward of ``_gru_layer_fwd``: grads of X, U3, W3, b3 given dLoss/dS[1:]."""
    ZR, C, HR = cache
    n = X.shape[0]
    Wzr, Wc = W3[:2].reshape(2 * H, H), W3[2]
    WzrT, WcT = Wzr.T, Wc.T
    DA = np.empty((n, 3 * H), X.dtype)
    carry = np.zeros(H, X.dtype)
    for t in range(n - 1, -1, -1):
        ds = dS_out[t] + carry
        h, zr, c = S[t], ZR[t], C[t]
        z, r = zr[:H], zr[H:]
        dac = ds * (1 - z) * (1 - c * c)
        dhr = WcT @ dac
        DA[t, :H] = ds * (h - c)
        DA[t, H : 2 * H] = dhr * h
        DA[t, : 2 * H] *= gate_grad(zr)
        DA[t, 2 * H :] = dac
        carry = ds * z + dhr * r + WzrT @ DA[t, : 2 * H]
    dW3 = np.empty_like(W3)
    dW3[:2] = (DA[:, : 2 * H].T @ S[:n]).reshape(2, H, H)
    dW3[2] = DA[:, 2 * H :].T @ HR
    dU3 = (DA.T @ X).reshape(3, H, -1)
    db3 = DA.sum(axis=0).reshape(3, H)
    dX = DA @ U3.reshape(3 * H, -1)
    return dX, dU3, dW3, db3


def _hard_sigmoid_grad(g: np.ndarray) -> np.ndarray:
    return np.where((g > 0) & (g < 1), 0.2, 0.0).astype(g.dtype)


class NumpyGRU2(NumpyModel):
    """WildML's GRUTheano: embedding E[:, x_t], two hard-sigmoid GRU layers, softmax(V s2 + c)."""

    def loss_and_grads(self, x, y):
        p = self.p
        E, U, W, b, V, c = p["E"], p["U"], p["W"], p["b"], p["V"], p["c"]
        n, H = len(x), E.shape[0]
        Xe = E[:, x].T
        S1, c1 = _gru_layer_fwd(Xe, U[0:3], W[0:3], b[0:3], _hard_sigmoid, H)
        S2, c2 = _gru_layer_fwd(S1[1:], U[3:6], W[3:6], b[3:6], _hard_sigmoid, H)
        o = _softmax_rows(S2[1:] @ V.T + c)
        rows = np.arange(n)
        loss = float(-np.log(o[rows, y]).sum())
        d = o
        d[rows, y] -= 1
        g = {"V": d.T @ S2[1:], "c": d.sum(axis=0)}
        dU, dW, db = np.empty_like(U), np.empty_like(W), np.empty_like(b)
        dS1, dU[3:6], dW[3:6], db[3:6] = _gru_layer_bwd(
            d @ V, S1[1:], S2, c2, U[3:6], W[3:6], _hard_sigmoid_grad, H
        )
        dXe, dU[0:3], dW[0:3], db[0:3] = _gru_layer_bwd(
            dS1, Xe, S1, c1, U[0:3], W[0:3], _hard_sigmoid_grad, H
        )
        dE = np.zeros_like(E)
        np.add.at(dE.T, x, dXe)
        g.update(E=dE, U=dU, W=dW, b=db)
        return loss, g


class NumpyBatchedGRU(NumpyModel):
    """Minibatched GRU over x [n, B]: z, r = sigmoid(x_e U + h W + b), c = tanh(x_e U_c +
    (r * h) W_c + b_c), h' = (1 - z) c + z h; softmax(h V + c) and the mean cross-entropy."""

    def loss_and_grads(self, x, y):
        p = self.p
        Emb, U, W, b, V, cb = p["Emb"], p["U"], p["W"], p["b"], p["V"], p["c"]
        n, B = x.shape
        Em, H = U.shape[1], U.shape[2]
        nB = n * B
        dt = U.dtype
        Ucat = U.transpose(1, 0, 2).reshape(Em, 3 * H)
        Wzr = np.concatenate([W[0], W[1]], axis=1)
        Wc = W[2]
        Xe = Emb[x.ravel()]  # [nB, Em]
        A = (Xe @ Ucat + b.reshape(-1)).reshape(n, B, 3 * H)
        S = np.zeros((n + 1, B, H), dt)
        ZR = np.empty((n, B, 2 * H), dt)
        C = np.empty((n, B, H), dt)
        HR = np.empty((n, B, H), dt)
        for t in range(n):
            h = S[t]
            zr = _sigmoid(A[t, :, : 2 * H] + h @ Wzr)
            hr = h * zr[:, H:]
            cc = np.tanh(A[t, :, 2 * H :] + hr @ Wc)
            z = zr[:, :H]
            S[t + 1] = (1 - z) * cc + z * h
            ZR[t], C[t], HR[t] = zr, cc, hr
        Hout = S[1:].reshape(nB, H)
        o = _softmax_rows(Hout @ V + cb)
        rows = np.arange(nB)
        yf = y.ravel()
        loss = float(-np.log(o[rows, yf]).mean())
        d = o
        d[rows, yf] -= 1
        d /= nB
        g = {"V": Hout.T @ d, "c": d.sum(axis=0)}
        dS = (d @ V.T).reshape(n, B, H)
        DA = np.empty((n, B, 3 * H), dt)
        carry = np.zeros((B, H), dt)
        WzrT, WcT = Wzr.T, Wc.T
        for t in range(n - 1, -1, -1):
            ds = dS[t] + carry
            h, zr, cc = S[t], ZR[t], C[t]
            z, r = zr[:, :H], zr[:, H:]
            dac = ds * (1 - z) * (1 - cc * cc)
            dhr = dac @ WcT
            DA[t, :, :H] = ds * (h - cc)
            DA[t, :, H : 2 * H] = dhr * h
            DA[t, :, : 2 * H] *= zr * (1 - zr)
            DA[t, :, 2 * H :] = dac
            carry = ds * z + dhr * r + DA[t, :, : 2 * H] @ WzrT
        DAf = DA.reshape(nB, 3 * H)
        dWzr = S[:n].reshape(nB, H).T @ DAf[:, : 2 * H]
        dW = np.empty_like(W)
        dW[0], dW[1] = dWzr[:, :H], dWzr[:, H:]
        dW[2] = HR.reshape(nB, H).T @ DAf[:, 2 * H :]
        dU = (Xe.T @ DAf).reshape(Em, 3, H).transpose(1, 0, 2)
        dEmb = np.zeros_like(Emb)
        np.add.at(dEmb, x.ravel(), DAf @ Ucat.T)
        g.update(Emb=dEmb, U=dU, W=dW, b=DAf.sum(axis=0).reshape(3, H))
        return loss, g


MODELS: dict[str, type[NumpyModel]] = {
    "rnn": NumpyRNN,
    "gru2": NumpyGRU2,
    "bgru": NumpyBatchedGRU,
}


def make(cfg: Config, params: dict[str, np.ndarray]) -> NumpyModel:
    return MODELS[cfg.kind](cfg, params)


def finite_difference_check(
    cfg: Config, params: dict, x: np.ndarray, y: np.ndarray, n_dirs: int = 3, seed: int = 0
) -> float:
    """Largest relative error between the hand gradient and central differences of the loss
    along random directions (float64 parameters). Truncated BPTT is not a gradient of the loss,
    so for it the untruncated model is checked; truncation is checked against other frameworks.
    """
    from dataclasses import replace

    full = replace(cfg, truncate=-1)
    model = make(full, params)
    _, grads = model.loss_and_grads(x, y)
    rng = np.random.default_rng(seed)
    worst = 0.0
    eps = 1e-6
    for _ in range(n_dirs):
        dirs = {k: rng.standard_normal(params[k].shape) for k in model.names}
        analytic = sum(float((grads[k] * dirs[k]).sum()) for k in model.names)

        def loss_at(sign: float, _d=dirs) -> float:
            shifted = dict(params)
            for k in model.names:
                shifted[k] = params[k] + sign * eps * _d[k]
            return make(full, shifted).loss_and_grads(x, y)[0]

        numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
        worst = max(worst, abs(analytic - numeric) / max(1e-8, abs(numeric)))
    return worst


def step_delta(impl_step: Callable, impl_params: Callable, x, y) -> tuple[float, dict]:
    """Run one step; return its loss and how much each parameter moved."""
    before = {k: np.array(v, dtype=np.float64, copy=True) for k, v in impl_params().items()}
    loss = impl_step(x, y)
    after = impl_params()
    return float(loss), {k: np.asarray(after[k], dtype=np.float64) - before[k] for k in before}
