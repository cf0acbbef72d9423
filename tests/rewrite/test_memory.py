"""Late rewrites that let large intermediates die early (and be reused in place)."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.reduce import SumToShape, SumToShapeOf
from symgraph.ops.shape import Shape


def _bias_layer(mode: str):
    rng = np.random.default_rng(0)
    V = sg.shared(rng.normal(size=(4, 6)), name="V")
    c = sg.shared(rng.normal(size=6), name="c")
    h = T.dmatrix("h")
    y = T.ivector("y")
    logits = T.dot(h, V) + c
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y))
    gV, gc = T.grad(cost, [V, c])
    return sg.function([h, y], [cost, gV, gc], mode=mode)


@pytest.mark.cpu_strategy
def test_the_bias_gradient_reads_only_the_shape_of_the_logits():
    f = _bias_layer("FAST_RUN")
    nodes = f.program.nodes
    assert any(isinstance(n.op, SumToShapeOf) for n in nodes)
    k_dot = next(k for k, n in enumerate(nodes) if str(n.op) == "Dot")
    product = nodes[k_dot].outputs[0]
    # (a SumToShape to the shape of the shared bias itself stays: c lives anyway)
    assert not any(isinstance(n.op, SumToShape) and n.inputs[1] is product for n in nodes)
    readers = [k for k, n in enumerate(nodes) if any(i is product for i in n.inputs)]
    # the shape is taken right away; the bias add is then the product's last use, in place
    assert isinstance(nodes[k_dot + 1].op, Shape) and nodes[k_dot + 1].inputs[0] is product
    k_add = max(readers)
    assert f"f{k_add}(" in f.source and "out=" in f.source.split(f"f{k_add}(")[1].split("\n")[0]


def test_the_bias_layer_agrees_with_the_unrewritten_graph():
    rng = np.random.default_rng(1)
    h, y = rng.normal(size=(5, 4)), np.array([0, 5, 3, 3, 1], "int32")
    for a, b in zip(_bias_layer("FAST_RUN")(h, y), _bias_layer("FAST_COMPILE")(h, y)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_sum_to_shape_of_reduces_broadcast_axes_like_sum_to_shape():
    g = T.dtensor3("g")
    x = T.dmatrix("x")
    f = sg.function([g, x], SumToShapeOf((None, None))(g, T.shape(x)))
    gv = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_allclose(f(gv, np.zeros((3, 4))), gv.sum(axis=0))
    np.testing.assert_allclose(f(gv, np.zeros((1, 4))), gv.sum(axis=(0, 1))[None])
    np.testing.assert_allclose(f(gv, np.zeros((3, 1))), gv.sum(axis=(0, 2))[:, None])
