"""``alloc_operand_to_scalar``: ``ones_like(z) - z`` computes ``1 - z`` with no filled array,
also inside a loop body and in its vectorized form outside the loop; an Alloc that gives the
result its shape stays."""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.shape import Alloc
from symgraph.rewrite import optimize
from symgraph.rewrite.canonicalize import alloc_operand_to_scalar
from symgraph.scan.op import Scan


def _allocs(outputs):
    _, nodes = optimize([], outputs, "FAST_RUN")
    return [n for n in nodes if isinstance(n.op, Alloc)]


def _agree(inputs, output, values):
    fast = sg.function(inputs, output, mode="FAST_RUN")
    plain = sg.function(inputs, output, mode="FAST_COMPILE")
    np.testing.assert_array_equal(fast(*values), plain(*values))


def test_ones_like_minus_x_needs_no_array():
    z, c = T.matrix("z"), T.matrix("c")
    gate = T.nnet.hard_sigmoid(z)
    expr = (T.ones_like(gate) - gate) * c
    node = (T.ones_like(gate) - gate).owner
    assert alloc_operand_to_scalar(node) is not None
    assert _allocs([expr]) == []
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(2)]
    _agree([z, c], expr, values)


def test_a_lower_rank_alloc_of_trailing_axes_becomes_a_scalar():
    z = T.matrix("z")
    row = T.alloc(np.float32(2), z.shape[1:][0])  # how a vectorized loop body spells it
    assert _allocs([row * z]) == []
    _agree([z], row * z, [np.arange(6, dtype=np.float32).reshape(2, 3)])


def test_an_alloc_that_shapes_the_result_stays():
    x, v = T.matrix("x"), T.vector("v")
    big = T.ones_like(x) + v  # the result is x's shape only because of the Alloc
    assert len(_allocs([big])) == 1
    _agree([x, v], big, [np.zeros((2, 3), np.float32), np.arange(3, dtype=np.float32)])
    other = T.matrix("other")
    mixed = T.ones_like(x) * other  # other's shape is not known to be x's
    assert len(_allocs([mixed])) == 1


def test_the_gru_update_in_a_loop_body_allocates_nothing_per_step():
    W = sg.shared(np.eye(4, dtype=np.float32) * 0.5, name="W")
    xs = T.matrix("xs")

    def step(x_t, s_prev):
        z = T.nnet.hard_sigmoid(x_t + W.dot(s_prev))
        c = T.tanh(x_t - W.dot(s_prev))
        return (T.ones_like(z) - z) * c + z * s_prev

    s, _ = sg.scan(step, sequences=xs, outputs_info=T.zeros(4))
    f = sg.function([xs], s)
    data = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    f(data)
    (scan_node,) = [n for n in f.program.nodes if isinstance(n.op, Scan)]
    progs = [p for c in scan_node.op._compiled.values() for p in c.values()]
    assert progs and all(not any(isinstance(n.op, Alloc) for n in p.nodes) for p in progs)
    ref = sg.function([xs], s, mode="FAST_COMPILE")
    np.testing.assert_allclose(f(data), ref(data), rtol=1e-6)
