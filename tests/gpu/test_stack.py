"""Stacking a loop's products that share an operand (``symgraph/scan/stack.py``): one taller
product per step on a device, the same values, and only for device functions."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import clone_replace, toposort
from symgraph.ops.blas import Dot
from symgraph.scan.op import Scan
from symgraph.scan.stack import stack_shared_operand_products

rng = np.random.default_rng(5)
WEIGHTS = [rng.normal(size=(4, 4)) for _ in range(3)]


@pytest.fixture
def on_the_cpu():
    """The rewrite itself, checked on the CPU (whatever device the suite runs on)."""
    with sg.config.change_flags(device="cpu"):
        yield


def gated_loop(weights=WEIGHTS):
    A, B, C = (sg.shared(w, name=n) for n, w in zip("ABC", weights))
    xs = T.dmatrix("xs")

    def step(x_t, h):
        z = T.nnet.sigmoid(A.dot(h) + x_t)
        r = T.nnet.sigmoid(B.dot(h))
        return z * T.tanh(C.dot(r * h)) + (1 - z) * h

    hs, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros(4, dtype="float64"))
    return xs, hs


def loop_of(v):
    return next(n for n in toposort([v]) if isinstance(n.op, Scan))


def inner_dots(node):
    return [n for n in toposort(node.op.inner_outputs) if isinstance(n.op, Dot)]


def rewritten(v):
    node = loop_of(v)
    new = stack_shared_operand_products(node)
    return clone_replace([v], dict(zip(node.outputs, new)))[0], new[0].owner


def test_products_reading_the_same_state_become_one_with_the_same_values(on_the_cpu):
    xs, hs = gated_loop()
    cost = T.sum(hs**2)
    assert len(inner_dots(loop_of(cost))) == 3
    replaced, new_node = rewritten(cost)
    assert len(inner_dots(new_node)) == 2  # [A; B] . h, then C . (r * h)
    assert stack_shared_operand_products(new_node) is None  # nothing left to stack
    xv = rng.normal(size=(6, 4))
    want = sg.function([xs], cost, device="cpu")(xv)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-13)


def test_weights_of_different_heights_are_cut_at_their_own_rows(on_the_cpu):
    A = sg.shared(rng.normal(size=(4, 4)), name="A")
    B = sg.shared(rng.normal(size=(2, 4)), name="B")
    xs = T.dmatrix("xs")

    def step(x_t, h):
        return T.tanh(A.dot(h) + T.concatenate([B.dot(h), -B.dot(h)]) + x_t)

    hs, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros(4, dtype="float64"))
    replaced, new_node = rewritten(hs)
    assert len(inner_dots(new_node)) == 1
    xv = rng.normal(size=(6, 4))
    want = sg.function([xs], hs, device="cpu")(xv)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-13)


def test_only_device_functions_stack(device):
    with sg.config.change_flags(device="cpu"):
        xs, hs = gated_loop()
        cpu = sg.function([xs], hs)
    xs_d, hs_d = gated_loop()  # the same weights on the emulated device
    gpu = sg.function([xs_d], hs_d)
    for f, n in ((cpu, 3), (gpu, 2)):
        loop = next(node for node in f.program.nodes if isinstance(node.op, Scan))
        assert len(inner_dots(loop)) == n
    xv = rng.normal(size=(6, 4))
    np.testing.assert_allclose(gpu(xv), cpu(xv), rtol=1e-13)
