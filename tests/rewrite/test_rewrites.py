"""Each rewrite: a structural before/after check and a numeric equivalence check."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import toposort
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.nnet import CrossentropyCategorical1Hot, Softmax, SoftmaxGrad
from symgraph.ops.stable import (
    CrossentropySoftmax1Hot,
    CrossentropySoftmax1HotDx,
    SoftmaxAndCrossentropy1Hot,
)
from symgraph.rewrite import optimize
from symgraph.rewrite.engine import RewriteStats


def op_names(outputs, mode="FAST_RUN"):
    outs, nodes = optimize([], outputs if isinstance(outputs, list) else [outputs], mode)
    return [str(n.op) for n in nodes], outs, nodes


def scalar_ops(nodes):
    return [n.op.scalar_op.name for n in nodes if isinstance(n.op, Elemwise)]


def both_modes_agree(inputs, outputs, values, rtol=1e-6):
    fast = sg.function(inputs, outputs, mode="FAST_RUN")
    plain = sg.function(inputs, outputs, mode="FAST_COMPILE")
    a, b = fast(*values), plain(*values)
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7)


def test_cse_merges_identical_subgraphs():
    x = T.dvector("x")
    y = T.tanh(x * 2) + T.tanh(x * 2)
    stats = RewriteStats()
    outs, nodes = optimize([x], [y], "FAST_COMPILE", stats=stats)
    assert sum(1 for n in nodes if str(n.op) == "tanh") == 1
    assert sum(1 for n in nodes if str(n.op) == "mul") == 1
    both_modes_agree([x], y, [np.arange(3.0)])


def test_constant_folding():
    x = T.dvector("x")
    c = T.constant(np.arange(3.0)) * 2 + 1
    names, outs, nodes = op_names(x + T.exp(c))
    assert "exp" not in names and len(nodes) == 1
    both_modes_agree([x], x + T.exp(c), [np.ones(3)])


@pytest.mark.parametrize(
    "build, removed",
    [
        (lambda x: x * 1, "mul"),
        (lambda x: 1 * x, "mul"),
        (lambda x: x + 0, "add"),
        (lambda x: x - 0, "sub"),
        (lambda x: x / 1, "true_div"),
        (lambda x: T.neg(T.neg(x)), "neg"),
    ],
)
def test_algebraic_identities(build, removed):
    x = T.dvector("x")
    y = build(x)
    assert y.owner is not None  # the unoptimised graph does have the op
    _, outs, nodes = op_names(y)
    assert removed not in scalar_ops(nodes)
    assert outs[0] is x
    both_modes_agree([x], T.exp(y), [np.arange(3.0)])


def test_x_minus_x_and_pow2():
    x = T.dvector("x")
    _, _, nodes = op_names(x - x)
    assert "sub" not in scalar_ops(nodes)
    _, _, nodes = op_names(x**2)
    assert "pow" not in scalar_ops(nodes)
    both_modes_agree([x], [x - x, x**2], [np.array([1.0, -2.0, 3.0])])


def test_transpose_of_transpose_is_removed():
    m = T.dmatrix("m")
    _, outs, nodes = op_names(m.T.T)
    assert outs[0] is m and nodes == []
    y = m.dimshuffle(1, 0, "x").dimshuffle(1, 0)
    _, outs, nodes = op_names(y)
    assert outs[0] is m


def test_a_slice_of_everything_is_removed():
    m = T.dmatrix("m")
    for whole in (m[0:], m[:, :], m[0::1], m[:][0:]):
        _, outs, nodes = op_names(whole)
        assert outs[0] is m and nodes == []
    names, outs, _ = op_names(m[0:][::-1] * 2)  # a loop's gradient reads outputs[0:][::-1]
    assert names.count("Subtensor[::-1]") == 1 and len([n for n in names if "Subtensor" in n]) == 1
    mv = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(sg.function([m], m[0:][::-1] * 2)(mv), mv[::-1] * 2)
    for kept in (m[1:], m[:-1], m[::2], m[0:2]):  # a part of m: a view stays
        assert "Subtensor" in " ".join(op_names(kept)[0])


def test_known_shape_is_folded():
    v = T.tensor("float64", (3, 4), name="v")
    names, outs, nodes = op_names(v.shape[1] * 2)
    assert nodes == [] and int(outs[0].data) == 8


def test_log_softmax_rewrite_and_stability():
    x = T.dmatrix("x")
    y = T.log(T.nnet.softmax(x))
    names, _, _ = op_names(y)
    assert "LogSoftmax" in names and "Softmax" not in names
    f = sg.function([x], y)
    big = np.array([[1000.0, 0.0, -1000.0]])
    assert np.all(np.isfinite(f(big)))
    both_modes_agree([x], y, [np.random.default_rng(0).normal(size=(2, 5))])


def test_crossentropy_of_softmax_is_stable_forward_and_backward():
    x = T.dmatrix("x")
    t = T.ivector("t")
    loss = T.sum(T.nnet.categorical_crossentropy(T.nnet.softmax(x), t))
    g = T.grad(loss, x)
    _, _, nodes = op_names([loss, g])
    ops = [type(n.op) for n in nodes]
    # the stable loss (sharing its pass with the softmax the gradient needs) and its gradient
    assert SoftmaxAndCrossentropy1Hot in ops and CrossentropySoftmax1HotDx in ops
    assert CrossentropyCategorical1Hot not in ops and SoftmaxGrad not in ops
    f = sg.function([x, t], [loss, g])
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0]])
    lv, gv = f(logits, np.array([1, 1], dtype="int32"))
    assert np.isfinite(lv) and np.all(np.isfinite(gv))
    assert lv == pytest.approx(2000.0)
    np.testing.assert_allclose(gv, [[1, -1, 0], [0, 0, 0]], atol=1e-12)
    # unoptimised: the same formula overflows to inf, which is what the rewrite prevents
    plain = sg.function([x, t], loss, mode="FAST_COMPILE")
    with np.errstate(all="ignore"):
        assert not np.isfinite(plain(logits, np.array([1, 1], dtype="int32")))
    sane = np.random.default_rng(1).normal(size=(4, 3))
    both_modes_agree([x, t], [loss, g], [sane, np.array([0, 2, 1, 1], dtype="int32")])


def test_log1p_and_log_sigmoid():
    x = T.dvector("x")
    _, _, nodes = op_names(T.log(1 + x))
    assert "log1p" in scalar_ops(nodes) and "log" not in scalar_ops(nodes)
    y = T.log(T.nnet.sigmoid(x))
    f = sg.function([x], y)
    r = f(np.array([-800.0, 0.0, 800.0]))
    assert np.all(np.isfinite(r))
    np.testing.assert_allclose(r, [-800.0, np.log(0.5), 0.0], atol=1e-12)
    z = T.log(1 - T.nnet.sigmoid(x))
    np.testing.assert_allclose(sg.function([x], z)(np.array([800.0]))[0], -800.0)
    both_modes_agree([x], [T.log(1 + x), y, z], [np.array([0.1, 0.5, 2.0])])


def test_softmax_rewrites_keep_plain_softmax_when_not_in_a_pattern():
    x = T.dmatrix("x")
    names, _, _ = op_names(T.nnet.softmax(x) * 2)
    assert any(isinstance(n, str) and n == "Softmax" for n in names)
    assert Softmax  # the op stays available


def test_rewritten_nodes_keep_the_users_line():
    x = T.dmatrix("x")
    t = T.ivector("t")
    loss = T.sum(T.nnet.categorical_crossentropy(T.nnet.softmax(x), t))  # this line
    _, _, nodes = op_names(loss)
    stable = next(n for n in nodes if isinstance(n.op, CrossentropySoftmax1Hot))
    assert stable.trace is not None and stable.trace.filename == __file__
    assert "categorical_crossentropy" in stable.trace.code


def test_compile_modes_and_debug_mode():
    x = T.dvector("x")
    y = T.sum(T.exp(x) * 2 + 1)
    for mode in ("FAST_RUN", "FAST_COMPILE", "DEBUG_MODE"):
        f = sg.function([x], y, mode=mode)
        assert f(np.zeros(3)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="mode"):
        sg.function([x], y, mode="NOPE")


def test_debug_mode_names_the_first_wrong_node(monkeypatch):
    from symgraph.rewrite import canonicalize

    def broken(node):  # a wrong rewrite: exp(x) -> x
        if isinstance(node.op, Elemwise) and node.op.scalar_op.name == "exp":
            return [node.inputs[0]]
        return None

    monkeypatch.setattr(canonicalize, "CANONICALIZE", [broken, *canonicalize.CANONICALIZE])
    import symgraph.rewrite as rw

    monkeypatch.setattr(rw, "CANONICALIZE", [broken, *canonicalize.CANONICALIZE])
    x = T.dvector("x")
    y = T.exp(x) * 3  # the wrong node
    f = sg.function([x], y, mode="DEBUG_MODE")
    with pytest.raises(sg.SymgraphError) as e:
        f(np.ones(2))
    msg = str(e.value)
    assert "exp" in msg and "test_rewrites.py" in msg and "y = T.exp(x) * 3" in msg


def test_nan_guard_names_node_and_line():
    x = T.dvector("x")
    y = T.log(x) * 2  # log of a negative number gives NaN here
    f = sg.function([x], y, nan_guard=True)
    with pytest.raises(sg.NaNDetectedError) as e:
        with np.errstate(all="ignore"):
            f(np.array([1.0, -1.0]))
    assert "test_rewrites.py" in str(e.value) and "NaN" in str(e.value)
    assert np.allclose(f(np.array([1.0, np.e])), [0.0, 2.0])


def test_profile_summary_lists_ops_and_compile_phases():
    x = T.dmatrix("x")
    w = sg.shared(np.ones((3, 2)), name="w")
    f = sg.function([x], T.sum(T.tanh(T.dot(x, w))), profile=True)
    for _ in range(5):
        f(np.ones((4, 3)))
    text = f.profile.summary()
    assert "Dot" in text and "compile" in text and "rewrite" in text
    assert max(f.profile.calls) == 5


def test_compile_time_is_small_for_a_gradient_graph():
    x = T.dmatrix("x")
    ws = [sg.shared(np.ones((8, 8)), name=f"w{k}") for k in range(6)]
    h = x
    for w in ws:
        h = T.tanh(T.dot(h, w))
    cost = T.sum(h)
    f = sg.function([x], cost, updates=[(w, w - 0.1 * g) for w, g in zip(ws, T.grad(cost, ws))])
    assert sum(f.compile_times.values()) < 2.0  # generous: it is ~20 ms here
    toposort(f.program.outputs)


def test_fused_node_errors_name_the_original_ops_and_lines():
    x = T.dvector("x")
    y = T.dvector("y")
    a = T.tanh(x) * 2  # first fused line
    b = T.exp(y) + a  # second fused line
    f = sg.function([x, y], b)
    fused = [n for n in f.program.nodes if getattr(n.op, "scalar_op", None) is not None]
    assert len(fused) == 1 and "fused_from" in fused[0].tag  # one fused node, not three
    with pytest.raises(sg.SymgraphError) as e:
        f(np.ones(3), np.ones(4))
    msg = str(e.value)
    assert "shape (3,)" in msg and "shape (4,)" in msg
    assert "fused from" in msg
    assert "tanh" in msg and "exp" in msg and "test_rewrites.py" in msg


def test_softmax_and_crossentropy_share_one_pass():
    x = T.dmatrix("x")
    t = T.ivector("t")
    loss = T.sum(T.nnet.categorical_crossentropy(T.nnet.softmax(x), t))
    g = T.grad(loss, x)
    f = sg.function([x, t], [loss, g])
    ops = [type(n.op) for n in f.program.nodes]
    assert ops.count(SoftmaxAndCrossentropy1Hot) == 1 and Softmax not in ops
    assert CrossentropySoftmax1Hot not in ops
    xv = np.random.default_rng(3).normal(size=(4, 5))
    tv = np.array([0, 4, 2, 2], dtype="int32")
    both_modes_agree([x, t], [loss, g], [xv, tv])
    sm = np.exp(xv) / np.exp(xv).sum(1, keepdims=True)
    np.testing.assert_allclose(f(xv, tv)[1], sm - np.eye(5)[tv], atol=1e-12)


def test_softmax_and_crossentropy_op_gradient():
    from symgraph.ops.stable import softmax_and_crossentropy_op
    from symgraph.testing import check_grad

    y = np.array([1, 0, 2], dtype="int32")

    def f(x, yy):
        nll, sm = softmax_and_crossentropy_op(x, yy)
        return T.sum(nll) + T.sum(sm * T.arange(3))

    check_grad(f, [np.random.default_rng(0).normal(size=(3, 3))], extra_inputs=[y])


def test_transposed_dot_product_becomes_a_dot_of_transposes():
    from symgraph.ops.blas import Dot
    from symgraph.ops.shape import DimShuffle

    a, b = T.dmatrix("a"), T.dmatrix("b")
    y = T.exp(T.dot(a, b).T)
    _, outs, nodes = op_names(y)
    dot_node = next(n for n in nodes if isinstance(n.op, Dot))
    consumers = [n for n in nodes if dot_node.outputs[0] in n.inputs]
    assert not any(isinstance(n.op, DimShuffle) for n in consumers)  # the result is not transposed
    both_modes_agree([a, b], y, [np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)])
    # a dot product read elsewhere too is kept (no second product)
    d = T.dot(a, b)
    _, _, nodes = op_names([d.T * 2, d])
    assert sum(isinstance(n.op, Dot) for n in nodes) == 1


def test_debug_mode_accepts_a_stability_rewrite_on_overflowing_inputs():
    x = T.dmatrix("x")
    y = T.log(T.nnet.softmax(x))
    f = sg.function([x], y, mode="DEBUG_MODE")
    with np.errstate(all="ignore"):
        out = f(np.array([[1000.0, 0.0]]))  # the original graph gives -inf here
    np.testing.assert_allclose(out, [[0.0, -1000.0]])


def test_sum_of_batched_products_becomes_one_dot():
    from symgraph.ops.blas import BatchedMatMul, Dot

    x = T.dtensor3("x")  # [T, M, K]
    h = T.dtensor3("h")  # [T, N, K]
    y = T.sum(T.matmul(x, h.dimshuffle(0, 2, 1)), axis=0)
    _, _, nodes = op_names(y)
    ops = [type(n.op) for n in nodes]
    assert BatchedMatMul not in ops and Dot in ops
    rng = np.random.default_rng(0)
    xv, hv = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 2, 5))
    both_modes_agree([x, h], y, [xv, hv])
    np.testing.assert_allclose(sg.function([x, h], y)(xv, hv), np.einsum("tmk,tnk->mn", xv, hv))
