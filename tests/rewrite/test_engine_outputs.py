"""The rewrite engine and multi-output nodes: a rewrite that replaces a node by ONE output of a
multi-output node (``x ** 1`` -> ``x``, with ``x`` output 2 of a loop) must keep that output; CSE
of the multi-output node must not hand back its output 0 instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import Apply, Op, TensorType, Variable, toposort
from symgraph.rewrite.canonicalize import algebra
from symgraph.rewrite.engine import rewrite_graph


class Split3(Op):
    """x -> (2x, 3x rows summed, 5x): three outputs of different shapes."""

    def make_node(self, x: Variable) -> Apply:
        return Apply(self, [x], [x.type, TensorType(x.dtype, x.type.shape[1:]), x.type])

    def perform(self, node: Apply, inputs: Sequence[Any], xp: Any) -> Sequence[Any]:
        (x,) = inputs
        return 2 * x, (3 * x).sum(axis=0), 5 * x


def test_a_rewrite_returning_a_later_output_of_a_multi_output_node_keeps_it():
    x = T.matrix("x")
    a, b, c = Split3()(x)
    outs = [b**1, c**1, a**1]
    new = rewrite_graph(outs, [algebra])
    (node,) = [n for n in toposort(new) if isinstance(n.op, Split3)]
    # each ``y ** 1`` became ``y`` itself: the same output of the same node
    assert [v.owner is node for v in new] == [True, True, True]
    assert [node.outputs.index(v) for v in new] == [1, 2, 0]


def test_a_later_output_of_a_multi_output_node_computes_the_same_after_rewrites():
    x = T.matrix("x")
    a, b, c = Split3()(x)
    outs = [T.sum(c**1) * b, a * 1]
    xv = np.arange(6.0).reshape(2, 3).astype(x.dtype)
    got = [sg.function([x], outs, mode=m)(xv) for m in ("FAST_RUN", "FAST_COMPILE")]
    want = [np.sum(5 * xv) * (3 * xv).sum(axis=0), 2 * xv]
    for g in got:
        for gv, wv in zip(g, want):
            np.testing.assert_allclose(gv, wv, rtol=1e-6)
