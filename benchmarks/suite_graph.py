"""The benchmark models as a Theano user writes them, for symgraph and for PyTensor.

One builder per model, written once against a ``(th, T)`` pair of modules: ``(symgraph,
symgraph.tensor)`` or ``(pytensor, <pytensor.tensor plus Theano's T.nnet names>)``. The tutorial
models follow WildML's ``RNNTheano`` and ``GRUTheano`` line for line: the softmax is taken inside
the scan step (``T.nnet.softmax(V.dot(s_t))[0]``), each gradient is its own ``T.grad`` call, and
the training step is one ``function`` with an ``updates`` list. Making that natural code fast is
the compiler's job, so nothing here is hand-optimised.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from suite_configs import Config


class GraphModel:
    """A compiled training step and its shared variables."""

    def __init__(self, label: str, fn: Any, shared: dict, args: tuple, times: dict):
        self.label = label
        self.fn = fn
        self.shared = shared
        self.args = args
        self.build_s = times["build"]
        self.compile_s = times["compile"]

    def step(self, x: np.ndarray, y: np.ndarray) -> Any:
        return self.fn(x, y, *self.args)

    def params(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v.get_value()) for k, v in self.shared.items()}


def tutorial_rnn(th, T, cfg: Config, params: dict, fn_kwargs: dict) -> tuple:
    """WildML part 3, ``RNNTheano.__theano_build`` with ``truncate_gradient=cfg.truncate``."""
    t0 = time.perf_counter()
    hidden_dim = cfg.hidden
    U = th.shared(name="U", value=params["U"])
    V = th.shared(name="V", value=params["V"])
    W = th.shared(name="W", value=params["W"])
    x = T.ivector("x")
    y = T.ivector("y")

    def forward_prop_step(x_t, s_t_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + W.dot(s_t_prev))
        o_t = T.nnet.softmax(V.dot(s_t))
        return [o_t[0], s_t]

    [o, s], updates = th.scan(
        forward_prop_step,
        sequences=x,
        outputs_info=[None, dict(initial=T.zeros(hidden_dim))],
        non_sequences=[U, V, W],
        truncate_gradient=cfg.truncate,
    )
    o_error = T.sum(T.nnet.categorical_crossentropy(o, y))
    dU = T.grad(o_error, U)
    dV = T.grad(o_error, V)
    dW = T.grad(o_error, W)
    learning_rate = T.scalar("learning_rate")
    t1 = time.perf_counter()
    sgd_step = th.function(
        [x, y, learning_rate],
        o_error,
        updates=[
            (U, U - learning_rate * dU),
            (V, V - learning_rate * dV),
            (W, W - learning_rate * dW),
        ],
        **fn_kwargs,
    )
    t2 = time.perf_counter()
    lr = np.asarray(cfg.lr, dtype=th.config.floatX)
    return sgd_step, {"U": U, "V": V, "W": W}, (lr,), {"build": t1 - t0, "compile": t2 - t1}


def tutorial_gru(th, T, cfg: Config, params: dict, fn_kwargs: dict) -> tuple:
    """WildML part 4, ``GRUTheano.__theano_build``: two GRU layers, RMSProp."""
    t0 = time.perf_counter()
    hidden_dim = cfg.hidden
    sh = {k: th.shared(name=k, value=v) for k, v in params.items()}
    E, V, U, W, b, c = sh["E"], sh["V"], sh["U"], sh["W"], sh["b"], sh["c"]
    x = T.ivector("x")
    y = T.ivector("y")

    def forward_prop_step(x_t, s_t1_prev, s_t2_prev):
        # Word embedding layer
        x_e = E[:, x_t]
        # GRU Layer 1
        z_t1 = T.nnet.hard_sigmoid(U[0].dot(x_e) + W[0].dot(s_t1_prev) + b[0])
        r_t1 = T.nnet.hard_sigmoid(U[1].dot(x_e) + W[1].dot(s_t1_prev) + b[1])
        c_t1 = T.tanh(U[2].dot(x_e) + W[2].dot(s_t1_prev * r_t1) + b[2])
        s_t1 = (T.ones_like(z_t1) - z_t1) * c_t1 + z_t1 * s_t1_prev
        # GRU Layer 2
        z_t2 = T.nnet.hard_sigmoid(U[3].dot(s_t1) + W[3].dot(s_t2_prev) + b[3])
        r_t2 = T.nnet.hard_sigmoid(U[4].dot(s_t1) + W[4].dot(s_t2_prev) + b[4])
        c_t2 = T.tanh(U[5].dot(s_t1) + W[5].dot(s_t2_prev * r_t2) + b[5])
        s_t2 = (T.ones_like(z_t2) - z_t2) * c_t2 + z_t2 * s_t2_prev
        # Final output calculation; softmax returns a one-row matrix, we only need the row
        o_t = T.nnet.softmax(V.dot(s_t2) + c)[0]
        return [o_t, s_t1, s_t2]

    [o, s, s2], updates = th.scan(
        forward_prop_step,
        sequences=x,
        truncate_gradient=cfg.truncate,
        outputs_info=[
            None,
            dict(initial=T.zeros(hidden_dim)),
            dict(initial=T.zeros(hidden_dim)),
        ],
    )
    o_error = T.sum(T.nnet.categorical_crossentropy(o, y))
    cost = o_error
    dE = T.grad(cost, E)
    dU = T.grad(cost, U)
    dW = T.grad(cost, W)
    db = T.grad(cost, b)
    dV = T.grad(cost, V)
    dc = T.grad(cost, c)
    learning_rate = T.scalar("learning_rate")
    decay = T.scalar("decay")
    # rmsprop cache updates
    mE = decay * sh["mE"] + (1 - decay) * dE**2
    mU = decay * sh["mU"] + (1 - decay) * dU**2
    mW = decay * sh["mW"] + (1 - decay) * dW**2
    mV = decay * sh["mV"] + (1 - decay) * dV**2
    mb = decay * sh["mb"] + (1 - decay) * db**2
    mc = decay * sh["mc"] + (1 - decay) * dc**2
    try:
        decay_in = th.In(decay, value=cfg.decay)
    except ValueError:  # PyTensor refuses defaults ("deprecated"); the value is passed anyway
        decay_in = decay
    t1 = time.perf_counter()
    sgd_step = th.function(
        [x, y, learning_rate, decay_in],
        cost,
        updates=[
            (E, E - learning_rate * dE / T.sqrt(mE + 1e-6)),
            (U, U - learning_rate * dU / T.sqrt(mU + 1e-6)),
            (W, W - learning_rate * dW / T.sqrt(mW + 1e-6)),
            (V, V - learning_rate * dV / T.sqrt(mV + 1e-6)),
            (b, b - learning_rate * db / T.sqrt(mb + 1e-6)),
            (c, c - learning_rate * dc / T.sqrt(mc + 1e-6)),
            (sh["mE"], mE),
            (sh["mU"], mU),
            (sh["mW"], mW),
            (sh["mV"], mV),
            (sh["mb"], mb),
            (sh["mc"], mc),
        ],
        **fn_kwargs,
    )
    t2 = time.perf_counter()
    fx = th.config.floatX
    args = (np.asarray(cfg.lr, dtype=fx), np.asarray(cfg.decay, dtype=fx))
    return sgd_step, sh, args, {"build": t1 - t0, "compile": t2 - t1}


def batched_gru(th, T, cfg: Config, params: dict, fn_kwargs: dict) -> tuple:
    """A minibatched GRU language model: x, y are [steps, batch] word ids."""
    t0 = time.perf_counter()
    H = cfg.hidden
    sh = {k: th.shared(name=k, value=v) for k, v in params.items()}
    Emb, U, W, b, V, c = (sh[k] for k in ("Emb", "U", "W", "b", "V", "c"))
    x = T.imatrix("x")
    y = T.imatrix("y")
    x_e = Emb[x]  # [steps, batch, emb]

    def step(x_t, h_prev):
        z = T.nnet.sigmoid(T.dot(x_t, U[0]) + T.dot(h_prev, W[0]) + b[0])
        r = T.nnet.sigmoid(T.dot(x_t, U[1]) + T.dot(h_prev, W[1]) + b[1])
        h_tilde = T.tanh(T.dot(x_t, U[2]) + T.dot(r * h_prev, W[2]) + b[2])
        return (1 - z) * h_tilde + z * h_prev

    h, _ = th.scan(step, sequences=x_e, outputs_info=T.zeros((x.shape[1], H)))
    logits = T.dot(h.reshape((h.shape[0] * h.shape[1], H)), V) + c
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y.flatten()))
    wrt = [Emb, U, W, b, V, c]
    grads = T.grad(cost, wrt)
    lr = T.scalar("lr")
    t1 = time.perf_counter()
    train = th.function(
        [x, y, lr], cost, updates=[(p, p - lr * g) for p, g in zip(wrt, grads)], **fn_kwargs
    )
    t2 = time.perf_counter()
    return (
        train,
        sh,
        (np.asarray(cfg.lr, dtype=th.config.floatX),),
        {
            "build": t1 - t0,
            "compile": t2 - t1,
        },
    )


BUILDERS = {"rnn": tutorial_rnn, "gru2": tutorial_gru, "bgru": batched_gru}


def build(th, T, label: str, cfg: Config, params: dict, fn_kwargs: dict | None = None):
    """Build ``cfg``'s training step with the framework ``(th, T)``, in the params' dtype."""
    dtype = str(next(iter(params.values())).dtype)
    with th.config.change_flags(floatX=dtype):
        fn, sh, args, times = BUILDERS[cfg.kind](th, T, cfg, params, dict(fn_kwargs or {}))
    return GraphModel(label, fn, sh, args, times)


def symgraph_modules():
    import symgraph
    import symgraph.tensor

    return symgraph, symgraph.tensor


class _PyTensorT:
    """``pytensor.tensor`` plus the ``T.nnet`` names Theano code uses (PyTensor dropped nnet)."""

    def __init__(self) -> None:
        import pytensor.tensor as pt
        from pytensor.tensor.special import softmax

        self._pt = pt

        def theano_softmax(v):  # Theano: a vector gives a one-row matrix
            return softmax(v.dimshuffle("x", 0) if v.ndim == 1 else v, axis=-1)

        def categorical_crossentropy(p, t):
            return -pt.log(p[pt.arange(t.shape[0]), t])

        self.nnet = SimpleNamespace(
            softmax=theano_softmax,
            sigmoid=pt.sigmoid,
            hard_sigmoid=lambda a: pt.clip(a * 0.2 + 0.5, 0, 1),  # Theano's definition
            categorical_crossentropy=categorical_crossentropy,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pt, name)


def pytensor_modules():
    import pytensor

    return pytensor, _PyTensorT()
