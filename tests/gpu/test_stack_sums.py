"""Stacking a loop's sum of products with invariant left operands
(``symgraph/scan/stack_sums.py``): one wider product per step, the same values (broadcast terms
included), and only where three or more products are summed and read nowhere else."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import BACKEND
from symgraph.errors import ShapeError
from symgraph.graph import clone_replace, toposort
from symgraph.ops.blas import Dot
from symgraph.scan.op import Scan
from symgraph.scan.stack_sums import BroadcastJoin, stack_summed_products

rng = np.random.default_rng(7)


@pytest.fixture
def on_the_cpu():
    """The rewrite itself, checked on the CPU (whatever device the suite runs on)."""
    with sg.config.change_flags(device="cpu"):
        yield


def summed_loop(heights=(4, 4, 4), extra_reader=False, weights=None):
    """h <- tanh(sum_k W_k . (g_k(h) * x_t)) with invariant W_k of the given heights."""
    if weights is None:
        weights = [rng.normal(size=(n, 4)) * 0.5 for n in heights]
    ws = [sg.shared(w, name=f"W{k}") for k, w in enumerate(weights)]
    xs = T.dmatrix("xs")

    def step(x_t, h):
        products = [w.dot(T.tanh(h * (k + 1)) * x_t) for k, w in enumerate(ws)]
        total = products[0]
        for p in products[1:]:
            total = total + p
        out = T.tanh(total + x_t[:1])
        return out + products[1] if extra_reader else out

    hs, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros(4, dtype="float64"))
    return xs, hs


def loop_of(v):
    return next(n for n in toposort([v]) if isinstance(n.op, Scan))


def inner_ops(node, kind):
    return [n for n in toposort(node.op.inner_outputs) if isinstance(n.op, kind)]


def rewritten(v):
    node = loop_of(v)
    new = stack_summed_products(node)
    if new is None:
        return None, None
    return clone_replace([v], dict(zip(node.outputs, new)))[0], new[0].owner


def _values(xs, v):
    xv = rng.normal(size=(5, 4))
    return sg.function([xs], v, device="cpu")(xv), xv


def test_a_sum_of_three_products_becomes_one_product_with_the_same_values(on_the_cpu):
    xs, hs = summed_loop()
    cost = T.sum(hs**2)
    replaced, new_node = rewritten(cost)
    assert len(inner_ops(new_node, Dot)) == 1
    assert len(inner_ops(new_node, BroadcastJoin)) == 1
    assert stack_summed_products(new_node) is None  # nothing left to stack
    xv = rng.normal(size=(5, 4))
    want = sg.function([xs], cost, device="cpu")(xv)
    got = sg.function([xs], replaced, device="cpu")(xv)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_one_row_product_broadcasts_as_it_did_in_the_sum(on_the_cpu):
    xs, hs = summed_loop(heights=(4, 1, 4))  # W1 . v is one row, added to every row
    replaced, new_node = rewritten(hs)
    assert new_node is not None and len(inner_ops(new_node, Dot)) == 1
    xv = rng.normal(size=(5, 4))
    want = sg.function([xs], hs, device="cpu")(xv)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-12)


def test_two_products_or_a_product_read_elsewhere_are_left_alone(on_the_cpu):
    _, two = summed_loop(heights=(4, 4))
    assert rewritten(two)[0] is None
    _, read = summed_loop(extra_reader=True)  # only two of the three can go: not worth it
    assert rewritten(read)[0] is None


def test_broadcast_join_broadcasts_the_other_axis_and_refuses_a_mismatch():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    node = BroadcastJoin(1).make_node(a, b)
    join = BroadcastJoin(1).make_impl(node, BACKEND)
    x, row = rng.normal(size=(3, 2)), rng.normal(size=(1, 4))
    got = join(x, row)
    np.testing.assert_array_equal(got, np.concatenate([x, np.repeat(row, 3, axis=0)], axis=1))
    with pytest.raises(ShapeError, match="do not broadcast"):
        join(x, rng.normal(size=(2, 4)))


def test_on_a_device_the_loop_runs_the_stacked_product(device):
    weights = [rng.normal(size=(4, 4)) * 0.5 for _ in range(3)]
    xv = rng.normal(size=(5, 4))
    values = {}
    for dev in ("cpu", "cuda"):
        with sg.config.change_flags(device=dev):
            # forward only: a gradient would store the products (an LSTM's backward step, where
            # the sum is the state's gradient, is checked in test_models_on_device.py)
            xs, hs = summed_loop(weights=weights)
            f = sg.function([xs], [hs, T.sum(hs**2)])
        loops = [n for n in f.program.nodes if isinstance(n.op, Scan)]
        stacked = [n for n in loops if inner_ops(n, BroadcastJoin)]
        assert bool(stacked) == (dev == "cuda"), dev  # devices only
        values[dev] = f(xv)
    for got, want in zip(values["cuda"], values["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-12)
