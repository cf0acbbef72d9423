"""Stacking a loop's sum of products with invariant left operands
(``symgraph/scan/stack_sums.py``): one wider product per step, the same values (broadcast terms
included), and only where two or more products are summed and read nowhere else; and on a device,
the stacked operands that the loop also stores share one buffer, so the join copies nothing."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import BACKEND
from symgraph.errors import ShapeError
from symgraph.graph import clone_replace, toposort
from symgraph.ops.blas import Dot
from symgraph.ops.gemm import Gemm
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


def products(node):
    """The loop's matrix products: ``dot``, or ``gemm`` (a product added onto other terms)."""
    return len(inner_ops(node, Dot)) + len(inner_ops(node, Gemm))


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
    assert products(new_node) == 1
    # the sum's other term, x_t[:1], is a view of an input and one row: gemm could neither
    # write into it nor keep its shape, so the product is added by a kernel
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
    assert new_node is not None and products(new_node) == 1
    xv = rng.normal(size=(5, 4))
    want = sg.function([xs], hs, device="cpu")(xv)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-12)


def test_two_products_are_stacked_and_a_product_read_elsewhere_is_left_alone(on_the_cpu):
    xs, two = summed_loop(heights=(4, 4))
    replaced, new_node = rewritten(two)
    assert products(new_node) == 1
    want, xv = _values(xs, two)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-12)
    _, read = summed_loop(heights=(4, 4), extra_reader=True)  # one product left: nothing to do
    assert rewritten(read)[0] is None
    xs, read = summed_loop(extra_reader=True)  # the other two are stacked
    replaced, new_node = rewritten(read)
    assert products(new_node) == 2
    want, xv = _values(xs, read)
    np.testing.assert_allclose(sg.function([xs], replaced, device="cpu")(xv), want, rtol=1e-12)


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


def test_on_a_device_stored_operands_are_written_into_the_joined_row(device):
    # the operands of the stacked product are also outputs of the loop (a backward step's gate
    # gradients, which the weights' gradients read): the loop stores them in one buffer whose
    # row is the joined operand, so per step only kernels and products run, no copy
    import emulated_cupy

    weights = [rng.normal(size=(4, 4)) * 0.5 for _ in range(2)]
    slope = {}
    for dev in ("cpu", "cuda"):
        with sg.config.change_flags(device=dev):
            ws = [sg.shared(w, name=f"W{k}") for k, w in enumerate(weights)]
            xs = T.dmatrix("xs")

            def step(x_t, h, ws=ws):
                d = [T.tanh(h * (k + 1)) * x_t for k in range(2)]
                return [T.tanh(ws[0].dot(d[0]) + ws[1].dot(d[1])), d[0], d[1]]

            outs, _ = sg.scan(step, sequences=xs, outputs_info=[T.zeros(4, "float64"), None, None])
            f = sg.function([xs], outs)
        counts = {}
        for n in (4, 8):
            xv = rng.normal(size=(n, 4))
            f(xv)
            emulated_cupy.reset_stats()
            f(xv)
            counts[n] = dict(emulated_cupy.STATS)
        slope[dev] = {k: (counts[8][k] - counts[4][k]) / 4 for k in counts[4]}
        loops = [n for n in f.program.nodes if isinstance(n.op, Scan)]
        assert bool([n for n in loops if inner_ops(n, BroadcastJoin)]) == (dev == "cuda")
    per_step = slope["cuda"]  # two kernels for the operands, the product, the tanh
    assert per_step["launches"] == 3 and per_step["cublas"] == 1, per_step
    assert per_step["kernels"] == 4, per_step  # nothing else: the join copied nothing
    xv = rng.normal(size=(6, 4))
    for got, expect in zip(f(xv), _cpu_values(weights, xv)):  # f: the device's function
        np.testing.assert_allclose(got, expect, rtol=1e-12)


def _cpu_values(weights, xv):
    h, hs, d0s, d1s = np.zeros(4), [], [], []
    for x in xv:
        d = [np.tanh(h * (k + 1)) * x for k in range(2)]
        h = np.tanh(weights[0] @ d[0] + weights[1] @ d[1])
        hs.append(h), d0s.append(d[0]), d1s.append(d[1])
    return np.array(hs), np.array(d0s), np.array(d1s)


def test_the_loop_shares_a_buffer_only_among_outputs_of_one_shape_past_the_joined_axis():
    from symgraph.scan.loop import plan_joints

    class Step:
        joined_outputs = ((1, 2),)

    a, b = np.ones((3, 2)), np.ones((4, 2))
    views, buffers = plan_joints(np, Step, 5, (None, a, b), (1, 2), {1, 2})
    (buffer,) = buffers
    assert buffer.shape == (5, 7, 2)
    assert np.shares_memory(views[1], buffer) and views[1].shape == (5, 3, 2)
    assert views[2].shape == (5, 4, 2) and views[2][0, 0].ctypes.data == buffer[0, 3].ctypes.data
    declined = {
        "a broadcast block": (None, a, np.ones((4, 1))),
        "the same value as an earlier output": (a, a, b),
    }
    for what, rs in declined.items():
        assert plan_joints(np, Step, 5, rs, (0, 1, 2), {1, 2}) == ({}, ()), what
    assert plan_joints(np, Step, 5, (None, a, b), (1, 2), {1}) == ({}, ())  # 2 not written
    assert plan_joints(np, Step, 5, (None, a, b), (1,), {1, 2}) == ({}, ())  # 2 is a state


def _matrix_loop(weights, squash: bool):
    """h <- [tanh](W0 . d0 + W1 . d1 + h * x_t) over (4, 3) states, d_k = tanh(h (k + 1)) * x_t."""
    ws = [sg.shared(w, name=f"W{k}") for k, w in enumerate(weights)]
    xs = T.dtensor3("xs")

    def step(x_t, h):
        d = [T.tanh(h * (k + 1)) * x_t for k in range(2)]
        total = ws[0].dot(d[0]) + ws[1].dot(d[1]) + h * x_t
        return T.tanh(total) if squash else total

    hs, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros((4, 3), dtype="float64"))
    return xs, hs


def test_on_a_device_the_stacked_product_is_added_onto_the_other_terms(device):
    weights = [rng.normal(size=(4, 4)) * 0.5 for _ in range(2)]
    xv = rng.normal(size=(5, 4, 3))
    for squash, accumulates in ((True, True), (False, False)):
        values, loops = {}, {}
        for dev in ("cpu", "cuda"):
            with sg.config.change_flags(device=dev):
                xs, hs = _matrix_loop(weights, squash)
                f = sg.function([xs], hs)
            (loops[dev],) = [n for n in f.program.nodes if isinstance(n.op, Scan)]
            values[dev] = f(xv)
        np.testing.assert_allclose(values["cuda"], values["cpu"], rtol=1e-12)
        gemms = inner_ops(loops["cuda"], Gemm)
        # the sum itself stored at every step (not squashed): a kernel writes it into the
        # loop's buffer, where gemm's result would be copied there
        assert len(gemms) == int(accumulates), squash
        assert len(inner_ops(loops["cuda"], Dot)) == 1 - int(accumulates)
        assert not inner_ops(loops["cpu"], Gemm)
