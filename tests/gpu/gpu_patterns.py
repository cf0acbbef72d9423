"""Fused programs of the kind the RNN/GRU/LSTM training graphs produce, built as ``Composite``
objects directly, each with an independent NumPy reference and its scalar-constant inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgraph.ops.composite import Composite
from symgraph.ops.scalar import SCALAR_OPS


class Program:
    """Tiny builder: ``p = Program('float32', 'float32'); v = p('add', 0, 1); p.build(v)``."""

    def __init__(self, *dtypes: str):
        self.dtypes = list(dtypes)
        self.steps: list[tuple[Any, tuple[int, ...]]] = []

    def __call__(self, op: str, *args: int) -> int:
        self.steps.append((SCALAR_OPS[op], tuple(args)))
        return len(self.dtypes) + len(self.steps) - 1

    def build(self, output: int) -> Composite:
        return Composite(self.dtypes, self.steps, output)


@dataclass
class Pattern:
    name: str
    composite: Composite
    reference: Callable[..., np.ndarray]  # NumPy formula, written independently of the table
    shapes: list[tuple[int, ...]]  # input shapes (broadcasting ones included)
    constants: dict[int, Any] = field(default_factory=dict)  # scalar constant inputs
    positive: tuple[int, ...] = ()  # inputs that must be > 0 (e.g. RMSProp caches)


def _f(x: float) -> np.float32:
    return np.float32(x)


def _sig(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def _hsig(x):
    return np.clip(x * _f(0.2) + _f(0.5), 0, 1)


def patterns() -> list[Pattern]:
    f32 = "float32"
    out = []

    p = Program(f32, f32)  # RNN step: tanh(U[:, x_t] + W.dot(s)), bias broadcast over rows
    out.append(
        Pattern(
            "tanh_add",
            p.build(p("tanh", p("add", 0, 1))),
            lambda a, b: np.tanh(a + b),
            [(6, 10), (10,)],
        )
    )

    p = Program(f32, f32, f32)  # its gradient: (1 - h*h) * g
    v = p("mul", p("sub", 2, p("mul", 0, 0)), 1)
    out.append(
        Pattern(
            "tanh_grad",
            p.build(v),
            lambda h, g, one: (one - h * h) * g,
            [(6, 10), (6, 10), ()],
            {2: 1.0},
        )
    )

    p = Program(f32, f32, f32, f32, f32)  # GRU update: z = hard_sigmoid(a + b); (1-z)*c + z*s
    z = p("hard_sigmoid", p("add", 0, 1))
    v = p("add", p("mul", p("sub", 4, z), 2), p("mul", z, 3))
    out.append(
        Pattern(
            "gru_update",
            p.build(v),
            lambda a, b, c, s, one: (one - _hsig(a + b)) * c + _hsig(a + b) * s,
            [(5, 8), (8,), (5, 8), (5, 8), ()],
            {4: 1.0},
        )
    )

    p = Program(f32, f32, f32)  # GRU reset gate applied: sigmoid(a + b) * s
    v = p("mul", p("sigmoid", p("add", 0, 1)), 2)
    out.append(
        Pattern("gru_reset", p.build(v), lambda a, b, s: _sig(a + b) * s, [(5, 8), (5, 1), (5, 8)])
    )

    p = Program(f32, f32, f32, f32)  # LSTM cell: sigmoid(f)*c_prev + sigmoid(i)*tanh(g)
    v = p("add", p("mul", p("sigmoid", 0), 3), p("mul", p("sigmoid", 1), p("tanh", 2)))
    out.append(
        Pattern(
            "lstm_cell",
            p.build(v),
            lambda f, i, g, c: _sig(f) * c + _sig(i) * np.tanh(g),
            [(4, 9), (4, 9), (4, 9), (4, 9)],
        )
    )

    p = Program(f32, f32)  # LSTM output: sigmoid(o) * tanh(c)
    v = p("mul", p("sigmoid", 0), p("tanh", 1))
    out.append(
        Pattern("lstm_hidden", p.build(v), lambda o, c: _sig(o) * np.tanh(c), [(4, 9), (4, 9)])
    )

    p = Program(f32, f32, f32, f32)  # RMSProp cache: 0.9*cache + 0.1*g*g
    v = p("add", p("mul", 2, 0), p("mul", p("mul", 3, 1), 1))
    out.append(
        Pattern(
            "rmsprop_cache",
            p.build(v),
            lambda c, g, a, b: a * c + b * g * g,
            [(7, 11), (7, 11), (), ()],
            {2: 0.9, 3: 0.1},
            positive=(0,),
        )
    )

    p = Program(f32, f32, f32, f32, f32)  # RMSProp step: p - lr * g / sqrt(cache + 1e-6)
    v = p("sub", 0, p("true_div", p("mul", 1, 2), p("sqrt", p("add", 3, 4))))
    out.append(
        Pattern(
            "rmsprop_param",
            p.build(v),
            lambda w, lr, g, c, eps: w - lr * g / np.sqrt(c + eps),
            [(7, 11), (), (7, 11), (7, 11), ()],
            {4: 1e-6},
            positive=(1, 3),
        )
    )

    p = Program(f32, f32, f32)  # SGD: p - lr * g
    v = p("sub", 0, p("mul", 1, 2))
    out.append(
        Pattern("sgd", p.build(v), lambda w, lr, g: w - lr * g, [(8, 3), (), (8, 3)], positive=(1,))
    )

    p = Program(f32, f32, f32)  # gradient clipping with constant bounds
    v = p("clip", 0, 1, 2)
    out.append(
        Pattern(
            "clip",
            p.build(v),
            lambda g, lo, hi: np.minimum(np.maximum(g, lo), hi),
            [(9, 4), (), ()],
            {1: -0.5, 2: 0.5},
        )
    )

    p = Program(f32, f32)  # softmax numerator: exp(x - max) with the max as a column
    v = p("exp", p("sub", 0, 1))
    out.append(Pattern("exp_sub", p.build(v), lambda x, m: np.exp(x - m), [(6, 13), (6, 1)]))

    p = Program(f32, f32, f32)  # sigmoid gradient: g * o * (1 - o)
    v = p("mul", p("mul", 0, 1), p("sub", 2, 1))
    out.append(
        Pattern(
            "sigmoid_grad",
            p.build(v),
            lambda g, o, one: g * o * (one - o),
            [(5, 6), (5, 6), ()],
            {2: 1.0},
        )
    )

    p = Program(f32, f32, f32)  # leaky relu: switch(x > 0, x, 0.1 * x); a bool intermediate
    v = p("switch", p("gt", 0, 2), 0, p("mul", 1, 0))
    out.append(
        Pattern(
            "leaky_relu",
            p.build(v),
            lambda x, a, zero: np.where(x > zero, x, a * x),
            [(3, 4, 5), (), ()],
            {1: 0.1, 2: 0.0},
        )
    )
    return out


def random_inputs(pat: Pattern, rng: np.random.Generator) -> list[Any]:
    """Fresh inputs; constants as 0-d arrays; ``positive`` inputs kept away from 0."""
    arrays = []
    for k, (shape, dtype) in enumerate(zip(pat.shapes, pat.composite.input_dtypes)):
        if k in pat.constants:
            arrays.append(np.array(pat.constants[k], dtype=dtype))
        elif k in pat.positive:
            arrays.append(rng.uniform(0.01, 2.0, shape).astype(dtype))
        else:
            arrays.append((rng.standard_normal(shape) * 2).astype(dtype))
    return arrays


def non_contiguous(a: np.ndarray, rng: np.random.Generator, how: str) -> np.ndarray:
    """The same values held by a strided view: transposed, sliced with steps, or reversed."""
    if a.ndim == 0:
        return a
    if how == "transposed":
        return np.ascontiguousarray(a.T).T
    if how == "sliced":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if how == "reversed":
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    raise ValueError(how)
