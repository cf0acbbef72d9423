"""The gradient of a parameter read block by block (``zeros`` and one ``inc_subtensor`` per block)
as one stack of the blocks on a device (``symgraph/rewrite/stack_blocks.py``,
``symgraph/ops/blocks.py``): the same values, broadcast blocks and blocks that leave part of the
array at zero included."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import BACKEND
from symgraph.ops.blocks import StackBlocks
from symgraph.ops.subtensor import IncSubtensor

rng = np.random.default_rng(11)


def _ops(f, kind):
    return [n for n in f.program.nodes if isinstance(n.op, kind)]


def _gradient_of_blocks(blocks):
    """d/dU of sum_k sum(U[k] * a_k) for the given blocks k of a (3, 2, 4) parameter U: a_k
    where block k is read, zeros elsewhere."""
    U = sg.shared(rng.normal(size=(3, 2, 4)), name="U")
    a = T.dmatrix("a")
    cost = sum(T.sum(U[k] * (a * (k + 1))) for k in blocks)
    return a, sg.grad(cost, U)


@pytest.mark.parametrize("blocks", [(2, 0, 1), (1, 2)])
def test_the_gradient_of_a_parameter_read_by_blocks_is_one_stack(device, blocks):
    av = rng.normal(size=(2, 4))
    want = np.zeros((3, 2, 4))
    for k in blocks:
        want[k] = av * (k + 1)
    values = {}
    for dev in ("cpu", "cuda"):
        with sg.config.change_flags(device=dev):
            a, g = _gradient_of_blocks(blocks)
            f = sg.function([a], g)
        values[dev] = f(av)
        stacks = _ops(f, StackBlocks)
        assert len(stacks) == (dev == "cuda"), dev  # devices only
        if dev == "cuda":
            assert not _ops(f, IncSubtensor) and set(stacks[0].op.order) == set(blocks)
        np.testing.assert_allclose(values[dev], want, rtol=1e-12)


def test_stack_blocks_broadcasts_values_and_fills_the_rest_with_zeros():
    shape_vars = [T.lscalar(f"s{i}") for i in range(3)]
    row, block = T.dvector("row"), T.dmatrix("block")
    op = StackBlocks((1, 0), "float64", 3)
    node = op.make_node(*shape_vars, row, block)
    run = op.make_impl(node, BACKEND)
    rv, bv = rng.normal(size=4), rng.normal(size=(2, 4))
    got = run(np.int64(2), np.int64(2), np.int64(4), rv, bv)  # every block: one stack
    np.testing.assert_array_equal(got, np.stack([bv, np.broadcast_to(rv, (2, 4))]))
    got = run(np.int64(3), np.int64(2), np.int64(4), rv, bv)  # block 2 stays zero
    np.testing.assert_array_equal(
        got, np.stack([bv, np.broadcast_to(rv, (2, 4)), np.zeros((2, 4))])
    )
    with pytest.raises(ValueError, match="distinct and non-negative"):
        StackBlocks((0, 0), "float64", 3)
    with pytest.raises(TypeError, match="2 values for 1 blocks"):
        StackBlocks((0,), "float64", 3).make_node(*shape_vars, row, block)
