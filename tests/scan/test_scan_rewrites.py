"""The loop rewrites: what moves out of the loop, what stays, and that values do not change."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import toposort
from symgraph.ops.blas import Dot
from symgraph.ops.nnet import Softmax
from symgraph.ops.shape import DimShuffle
from symgraph.ops.subtensor import IncSubtensor, Subtensor
from symgraph.scan import OutSpec, Scan, scan_nodes_in
from symgraph.scan.rewrites import (
    hoist_invariants,
    optimize_scan,
    push_out_outputs,
    push_out_sequence_work,
)

H, C, D = 4, 7, 3


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


def weights(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "U": sg.shared(rng.uniform(-0.5, 0.5, (H, C)), name="U"),
        "W_in": sg.shared(rng.uniform(-0.5, 0.5, (H, D)), name="W_in"),
        "W": sg.shared(rng.uniform(-0.5, 0.5, (H, H)), name="W"),
        "V": sg.shared(rng.uniform(-0.5, 0.5, (C, H)), name="V"),
    }


def rnn(p, mode=None, words=True, **kw):
    """A tutorial-style RNN over word ids (``U[:, x_t]``) or feature rows (``W_in.dot(x_t)``)."""
    x = T.ivector("x") if words else T.dmatrix("x")

    def step(x_t, s_prev, U, W_in, W, V):
        inp = U[:, x_t] if words else W_in.dot(x_t)
        s_t = T.tanh(inp + W.T.T.dot(s_prev) * 2)  # W.T.T * 2: loop-invariant work
        return [T.nnet.softmax(V.dot(s_t))[0], s_t]

    (o, s), _ = sg.scan(
        step,
        sequences=x,
        outputs_info=[None, T.zeros(H)],
        non_sequences=[p["U"], p["W_in"], p["W"], p["V"]],
        mode=mode,
        **kw,
    )
    return x, o, s


def inner_nodes(node):
    return toposort(node.op.inner_outputs)


def kinds_of_inner_inputs(node):
    op: Scan = node.op
    kind = {id(v): "seq" for v in op.inner_seqs}
    kind.update({id(v): "nonseq" for v in op.inner_nonseqs})
    return kind


def test_input_projection_leaves_the_loop():
    p = weights()
    x, o, s = rnn(p, words=False)
    (node,) = scan_nodes_in([o, s])
    kind = kinds_of_inner_inputs(node)
    for n in inner_nodes(node):
        if isinstance(n.op, Dot):
            ins = {kind.get(id(v)) for v in n.inputs}
            assert ins != {"seq", "nonseq"}, f"a per-step input projection is still inside: {n}"
    # ... it is one matrix product over the whole sequence before the loop
    seq_inputs = node.inputs[1 : 1 + node.op.n_seqs]
    assert any(
        isinstance(n.op, Dot) and any(v is x for v in n.inputs) for n in toposort(seq_inputs)
    )


def test_embedding_lookup_leaves_the_loop_as_one_gather():
    p = weights()
    x, o, s = rnn(p)
    (node,) = scan_nodes_in([o, s])
    assert not any(isinstance(n.op, Subtensor) for n in inner_nodes(node))
    gathers = [n for n in toposort(node.inputs) if isinstance(n.op, Subtensor)]
    assert any(n.inputs[0] is p["U"] and any(v is x for v in n.inputs) for n in gathers)


def test_output_layer_runs_after_the_loop():
    p = weights()
    x, o, s = rnn(p)
    (node,) = scan_nodes_in([o, s])
    assert [spec.kind for spec in node.op.outs] == ["state"]
    assert not any(isinstance(n.op, Softmax) for n in inner_nodes(node))
    after = toposort([o])
    assert any(isinstance(n.op, Softmax) and n.outputs[0].ndim == 2 for n in after)


def test_invariant_work_is_hoisted():
    p = weights()
    x, o, s = rnn(p)
    (node,) = scan_nodes_in([o, s])
    nonseq = {id(v) for v in node.op.inner_nonseqs}
    for n in inner_nodes(node):
        assert not all(id(v) in nonseq or isinstance(v, sg.Constant) for v in n.inputs), n


def test_debugprint_before_and_after():
    p = weights()
    x, o, s = rnn(p, mode="FAST_COMPILE", words=False)
    (node,) = scan_nodes_in([o, s])
    before = sg.debugprint([o, s], file="str")
    inner_before = before.split("Inner graph of")[1]
    assert "Dot" in inner_before and "W_in" in inner_before and "Softmax" in inner_before
    new_outputs = optimize_scan(node)
    after = sg.debugprint(new_outputs, file="str")
    outer_after, inner_after = after.split("Inner graph of")[0], after.split("Inner graph of")[1]
    assert "W_in" not in inner_after and "Softmax" not in inner_after
    assert "shared W_in" in outer_after and "Softmax" in outer_after


def test_rewrites_keep_values():
    p = weights(3)
    xv = np.array([3, 1, 6, 6, 0], dtype=np.int32)
    outs = []
    for mode in (None, "FAST_COMPILE"):
        x, o, s = rnn(p, mode=mode)
        cost = T.sum(T.log(o)) + T.sum(s**2)
        grads = T.grad(cost, [p["U"], p["W"], p["V"]])
        outs.append(sg.function([x], [o, s, *grads])(xv))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_rewrites_are_idempotent_and_pure():
    p = weights()
    x, o, s = rnn(p, mode="FAST_COMPILE")
    (node,) = scan_nodes_in([o, s])
    n_inner = len(inner_nodes(node))
    for rewrite in (hoist_invariants, push_out_sequence_work, push_out_outputs):
        reps = rewrite(node)
        assert reps is not None and len(reps) == len(node.outputs)
        (new_node,) = scan_nodes_in(reps)
        assert rewrite(new_node) is None  # nothing left for a second pass
    assert len(inner_nodes(node)) == n_inner  # the original node is untouched


def test_backward_loop_is_lean():
    """The gradient of the rewritten loop gathers once and scatters once; no [H, C] zeros, no
    softmax and no weight-gradient accumulation run per step."""
    p = weights()
    x, o, s = rnn(p)
    cost = T.sum(T.log(o))
    grads = T.grad(cost, [p["U"], p["W"], p["V"]])
    nodes = scan_nodes_in(grads)
    (bwd,) = [n for n in nodes if n.op.name.startswith("grad_of")]
    inner = inner_nodes(bwd)
    assert not any(isinstance(n.op, IncSubtensor | Softmax) for n in inner)
    assert all(spec.kind != "sum" for spec in bwd.op.outs)
    # dW is one matrix product over the emitted per-step deltas
    dots_after = [n for n in toposort(grads) if isinstance(n.op, Dot)]
    assert any(any(_view_of(v) is bwd for v in n.inputs) for n in dots_after)


def _view_of(v):
    """The node behind a chain of views (transposes, slices) of ``v``."""
    while v.owner is not None and isinstance(v.owner.op, DimShuffle | Subtensor):
        v = v.owner.inputs[0]
    return v.owner


def test_outer_products_summed_over_steps_become_one_product():
    from symgraph.scan.rewrites import sum_over_batch

    A, B = T.dmatrix("A"), T.dmatrix("B")
    batched = A.dimshuffle(0, 1, "x") * B.dimshuffle(0, "x", 1)
    total = sum_over_batch(batched)
    assert isinstance(total.owner.op, Dot)
    a, b = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_allclose(sg.function([A, B], total)(a, b), np.einsum("ti,tj->ij", a, b))


def test_sum_outputs_are_pushed_out_or_accumulated():
    """A hand-built loop with a 'sum' output: the rewrite turns it into one reduction after the
    loop, and the unrewritten loop accumulates it; both agree."""
    from symgraph.scan.parts import Out, ScanParts

    x = T.dmatrix("x")
    row = T.dvector("row")
    parts = ScanParts(
        T.constant(np.int64(-1)),
        True,
        [(x, row)],
        [Out(OutSpec("sum"), T.exp(row), like=None)],
        [],
        name="sum_loop",
    )
    node = parts.build()
    (pushed,) = push_out_outputs(node)
    assert not scan_nodes_in([pushed])
    xv = np.random.default_rng(0).standard_normal((4, 3))
    want = np.exp(xv).sum(0)
    np.testing.assert_allclose(sg.function([x], node.outputs[0])(xv), want)
    np.testing.assert_allclose(sg.function([x], pushed)(xv), want)
    np.testing.assert_allclose(sg.function([x], node.outputs[0])(xv[:0]), np.zeros(0))


def test_outputs_leave_the_loop_under_theano_truncation_with_the_same_gradients():
    """With truncate_gradient=k, the output layer moves out of the loop too; a gradient mask
    keeps Theano's meaning (only the last k steps' outputs pass gradients)."""
    p = weights()
    x, o, s = rnn(p, truncate_gradient=2)
    (node,) = scan_nodes_in([o, s])
    assert push_out_outputs(node) is None  # scan() already moved it: no per-step output left
    assert not any(isinstance(n.op, Softmax) for n in toposort(node.op.inner_outputs))
    xv = np.array([1, 5, 2, 6, 3, 0], "int32")
    y = T.ivector("y")
    yv = np.array([5, 2, 6, 3, 0, 4], "int32")
    results = []
    for mode in ("FAST_COMPILE", None):  # as written (output in the loop) / rewritten
        x, o, s = rnn(p, mode=mode, truncate_gradient=2)
        cost = T.sum(T.nnet.categorical_crossentropy(o, y))
        grads = T.grad(cost, [p["U"], p["W"], p["V"]])
        f = sg.function([x, y], grads)
        results.append(f(xv, yv))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert np.abs(results[1][2]).sum() > 0  # V gets a gradient (from the last 2 steps only)


def test_keep_last_rows_grad_is_the_identity_with_a_masked_gradient():
    from symgraph.scan.truncation import keep_last_rows_grad

    x = T.dmatrix("x")
    w = np.arange(12.0).reshape(4, 3)
    y = keep_last_rows_grad(x, 2)
    f = sg.function([x], [y, T.grad(T.sum(y * w), x)])
    xv = np.ones((4, 3))
    value, g = f(xv)
    np.testing.assert_array_equal(value, xv)
    np.testing.assert_array_equal(g, np.vstack([np.zeros((2, 3)), w[2:]]))
    _, g_short = sg.function([x], [y, T.grad(T.sum(y), x)])(np.ones((1, 3)))
    np.testing.assert_array_equal(g_short, np.ones((1, 3)))  # fewer rows than k: all pass


def test_a_transposed_weight_multiplied_by_a_matrix_each_step_is_copied_once_in_c_order():
    from symgraph.ops.blas import Contiguous

    rng = np.random.default_rng(5)
    W = sg.shared(rng.normal(size=(H, H)), name="W")
    hs = T.dtensor3("hs")  # [steps, batch, H]

    def step(h_t, acc):
        return T.tanh(T.dot(acc, W.T) + h_t)  # batch x H times a transposed weight

    out, _ = sg.scan(step, sequences=hs, outputs_info=T.zeros_like(hs[0]))
    (node,) = scan_nodes_in([out])
    outer = [i for i in node.inputs if i.owner is not None and isinstance(i.owner.op, Contiguous)]
    assert len(outer) == 1 and isinstance(outer[0].owner.inputs[0].owner.op, DimShuffle)
    f = sg.function([hs], out[-1])
    hv = rng.normal(size=(5, 3, H))
    expected = np.zeros((3, H))
    for t in range(5):
        expected = np.tanh(expected @ W.get_value().T + hv[t])
    np.testing.assert_allclose(f(hv), expected, rtol=1e-12)
    # a matrix times a vector is as fast on the transposed layout: no copy there
    v, _ = sg.scan(lambda h_t, s: T.dot(W.T, s) + h_t, sequences=hs[0], outputs_info=hs[0, 0])
    (vnode,) = scan_nodes_in([v])
    assert not any(i.owner is not None and isinstance(i.owner.op, Contiguous) for i in vnode.inputs)
