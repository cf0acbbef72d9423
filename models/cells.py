"""Recurrent cells (RNN, GRU, LSTM) and the parameter layout of the language models.

The layout generalises the tutorials' (WildML parts 2 and 4): gate matrices are stacked along a
leading axis, one entry per (layer, gate), so the tutorial GRU has exactly its ``E [H, V]``,
``U [6, H, H]``, ``W [6, H, H]``, ``V [V, H]``, ``b [6, H]``, ``c [V]`` and the tutorial RNN its
``U [H, V]``, ``W [H, H]``, ``V [V, H]`` (a stack of one matrix is stored as that matrix).

Cells use the tutorials' column convention, ``W.dot(s)``: a state is a vector ``[H]`` (one
sentence) or a matrix ``[H, B]`` (a minibatch, one column per sentence), so the same step code
serves both; only the biases need an explicit column shape in the batched case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import symgraph.tensor as T

#: gates per cell, in storage order
GATES = {"rnn": ("h",), "gru": ("z", "r", "c"), "lstm": ("i", "f", "o", "g")}


@dataclass(frozen=True)
class Layout:
    """Sizes that fix the parameter shapes."""

    cell: str
    vocab_size: int
    hidden_dim: int
    emb_dim: int | None  # None: no embedding, the first layer reads columns U[:, x_t]
    layers: int
    bias: bool

    @property
    def n_gates(self) -> int:
        return len(GATES[self.cell])

    @property
    def input_dim(self) -> int:
        """Width of the first layer's input (the embedding, or the vocabulary)."""
        return self.emb_dim if self.emb_dim else self.vocab_size

    @property
    def n_states(self) -> int:
        """Recurrent state tensors carried by the step (LSTM: h and c per layer)."""
        return self.layers * (2 if self.cell == "lstm" else 1)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in a fixed order (checkpoints and gradients use it)."""
        G, H, L, V = self.n_gates, self.hidden_dim, self.layers, self.vocab_size
        out: dict[str, tuple[int, ...]] = {}
        if self.emb_dim:
            out["E"] = (self.emb_dim, V)
        if self.input_dim == H:
            out["U"] = _stack(G * L, (H, H))
        else:
            out["U"] = _stack(G, (H, self.input_dim))
            if L > 1:
                out["U_up"] = _stack(G * (L - 1), (H, H))
        out["W"] = _stack(G * L, (H, H))
        if self.bias:
            out["b"] = _stack(G * L, (H,))
        out["V"] = (V, H)
        if self.bias:
            out["c"] = (V,)
        return out

    def init_params(self, rng: np.random.Generator, dtype: str) -> dict[str, np.ndarray]:
        """The tutorials' initialisation: uniform in +-1/sqrt(fan-in), biases zero.

        The LSTM's forget-gate bias starts at 1 (the usual choice; a zero forget bias makes the
        cell forget half its memory at every step before it has learned anything).
        """
        out = {}
        for name, shape in self.shapes().items():
            if name in ("b", "c"):
                arr = np.zeros(shape)
                if name == "b" and self.cell == "lstm":
                    stacked = arr.reshape(-1, self.hidden_dim)
                    stacked[1 :: self.n_gates] = 1.0  # gate order i, f, o, g
            else:
                fan_in = {"E": self.vocab_size, "U": self.input_dim}.get(name, self.hidden_dim)
                bound = np.sqrt(1.0 / fan_in)
                arr = rng.uniform(-bound, bound, shape)
            out[name] = arr.astype(dtype)
        return out


def _stack(n: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape if n == 1 else (n, *shape)


class Weights:
    """Per-(layer, gate) views of the parameter tensors, as seen inside a scan step."""

    def __init__(self, layout: Layout, tensors: dict[str, T.Variable], gate: str, batched: bool):
        self.layout = layout
        self.p = tensors
        self.act = {"sigmoid": T.nnet.sigmoid, "hard_sigmoid": T.nnet.hard_sigmoid}[gate]
        self.batched = batched

    def _pick(self, name: str, k: int) -> T.Variable:
        t = self.p[name]
        base = 2 if name in ("U", "U_up", "W") else 1
        return t if t.ndim == base else t[k]

    def u(self, layer: int, g: int) -> T.Variable:
        lay = self.layout
        if layer == 0 or lay.input_dim == lay.hidden_dim:
            return self._pick("U", layer * lay.n_gates + g)
        return self._pick("U_up", (layer - 1) * lay.n_gates + g)

    def w(self, layer: int, g: int) -> T.Variable:
        return self._pick("W", layer * self.layout.n_gates + g)

    def b(self, layer: int, g: int) -> T.Variable | int:
        if "b" not in self.p:
            return 0
        v = self._pick("b", layer * self.layout.n_gates + g)
        # a bias column broadcasts over the batch columns of [H, B]
        return v.dimshuffle(0, "x") if self.batched else v


def layer_inputs(w: Weights, layer: int, x: T.Variable) -> Callable[[int], T.Variable]:
    """``g -> U_g . input`` for one layer; the first layer without embedding selects columns.

    ``x`` is the previous layer's state, or for layer 0 the word ids ``x_t`` (embedded with
    ``E[:, x_t]`` when there is an embedding).
    """
    if layer == 0:
        if "E" in w.p:
            x_e = w.p["E"][:, x]
            return lambda g: w.u(0, g).dot(x_e)
        return lambda g: w.u(0, g)[:, x]
    return lambda g: w.u(layer, g).dot(x)


def rnn_cell(w: Weights, layer: int, inp, s_prev):
    return T.tanh(inp(0) + w.w(layer, 0).dot(s_prev) + w.b(layer, 0))


def gru_cell(w: Weights, layer: int, inp, s_prev):
    """The tutorial's GRU: the reset gate multiplies the state before ``W_c``."""
    z = w.act(inp(0) + w.w(layer, 0).dot(s_prev) + w.b(layer, 0))
    r = w.act(inp(1) + w.w(layer, 1).dot(s_prev) + w.b(layer, 1))
    c = T.tanh(inp(2) + w.w(layer, 2).dot(s_prev * r) + w.b(layer, 2))
    return (1 - z) * c + z * s_prev


def lstm_cell(w: Weights, layer: int, inp, h_prev, c_prev):
    i = w.act(inp(0) + w.w(layer, 0).dot(h_prev) + w.b(layer, 0))
    f = w.act(inp(1) + w.w(layer, 1).dot(h_prev) + w.b(layer, 1))
    o = w.act(inp(2) + w.w(layer, 2).dot(h_prev) + w.b(layer, 2))
    g = T.tanh(inp(3) + w.w(layer, 3).dot(h_prev) + w.b(layer, 3))
    c = f * c_prev + i * g
    return o * T.tanh(c), c


def stack_step(w: Weights, x_t: T.Variable, states: list, mask_t: T.Variable | None = None):
    """One time step of every layer: ``(new_states, top_state)``.

    ``states`` holds one state per layer (LSTM: h and c per layer, interleaved). With ``mask_t``
    (``[B]``, 1 for a real word, 0 for padding) a padded position keeps the previous state:
    ``s_t = m_t * new + (1 - m_t) * s_prev``, so padding changes neither state nor loss.
    """
    cell = w.layout.cell
    out, below = [], x_t
    per = 2 if cell == "lstm" else 1
    for layer in range(w.layout.layers):
        inp = layer_inputs(w, layer, below)
        prev = states[per * layer : per * (layer + 1)]
        if cell == "rnn":
            new = [rnn_cell(w, layer, inp, *prev)]
        elif cell == "gru":
            new = [gru_cell(w, layer, inp, *prev)]
        else:
            new = list(lstm_cell(w, layer, inp, *prev))
        if mask_t is not None:
            new = [mask_t * n + (1 - mask_t) * p for n, p in zip(new, prev)]
        out.extend(new)
        below = new[0]
    return out, below
