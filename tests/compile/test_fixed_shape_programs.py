"""Fused programs in a graph whose shapes are all known (a loop step compiled for its per-step
shapes) are called through a fixed-shape entry, and their in-place lines carry no run-time shape
comparisons; results are those of the unfused graph."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.composite import Composite
from symgraph.ops.scalar import SCALAR_OPS
from symgraph.scan.op import Scan

# fixed-shape entries belong to the NumPy backend's fused programs
pytestmark = pytest.mark.cpu_strategy


def _step_programs(f):
    nodes = [n for n in f.program.nodes if isinstance(n.op, Scan)]
    return [
        p
        for node in nodes
        for cache in node.op._compiled.values()
        for s, p in cache.items()
        if s is not None
    ]


def test_a_gru_step_calls_fixed_entries_without_shape_guards():
    W = sg.shared(np.eye(6, dtype=np.float32) * 0.3, name="W")
    xs = T.matrix("xs")

    def step(x_t, s_prev):
        z = T.nnet.hard_sigmoid(x_t + W.dot(s_prev))
        c = T.tanh(x_t - W.dot(s_prev * z))
        return (1 - z) * c + z * s_prev

    s, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros(6))
    cost = T.sum(s**2)
    f = sg.function([xs], [s, T.grad(cost, W)])
    ref = sg.function([xs], [s, T.grad(cost, W)], mode="FAST_COMPILE")
    data = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    for got, want in zip(f(data), ref(data)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    progs = _step_programs(f)
    assert progs
    src = "".join(p.source for p in progs)
    assert "out=" in src and ".shape" not in src  # in place, guarded by the type only
    fused = [
        p.fn.__globals__[f"f{k}"]
        for p in progs
        for k, n in enumerate(p.nodes)
        if isinstance(getattr(n.op, "scalar_op", None), Composite)
    ]
    assert fused and all(fn.__name__.startswith("fixed_") for fn in fused)


def test_fixed_entry_takes_each_kind_of_call():
    p = Composite(
        ["float32", "float32"],
        [(SCALAR_OPS["add"], (0, 1)), (SCALAR_OPS["tanh"], (2,))],
        3,
    )
    prog = p.numpy(np).program
    fixed = prog.fixed(((3, 4), (4,)), alias=0)
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    b = np.linspace(-1, 1, 4, dtype=np.float32)
    want = np.tanh(a + b)
    np.testing.assert_array_equal(fixed(a, b), want)
    other = np.empty((3, 4), np.float32)
    assert fixed(a, b, out=other) is other  # a buffer that is no input: the general entry
    np.testing.assert_array_equal(other, want)
    a2 = a.copy()
    assert fixed(a2, b, out=a2) is a2
    np.testing.assert_array_equal(a2, want)


def test_a_broadcast_target_is_never_written_in_place():
    # the dying product is the smaller operand: the result cannot live in it
    a, big = T.tensor("float32", (1, 3)), T.tensor("float32", (4, 3))
    B = T.tensor("float32", (3, 5))
    y = T.tensor("float32", (4, 5))
    small = sg.function([a, B, y], T.tanh(T.dot(a, B) + y))
    same = sg.function([big, B, y], T.tanh(T.dot(big, B) + y))
    assert ".shape" not in small.program.source and ".shape" not in same.program.source
    assert "out=" not in small.program.source and "out=" in same.program.source
    rng = np.random.default_rng(2)
    av, bigv, Bv, yv = (
        rng.standard_normal(s).astype(np.float32) for s in [(1, 3), (4, 3), (3, 5), (4, 5)]
    )
    np.testing.assert_allclose(small(av, Bv, yv), np.tanh(av @ Bv + yv), rtol=1e-5)
    np.testing.assert_allclose(same(bigv, Bv, yv), np.tanh(bigv @ Bv + yv), rtol=1e-5)
