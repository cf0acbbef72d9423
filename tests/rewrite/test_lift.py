"""The zero-padded-head rewrites (symgraph/rewrite/lift.py): structure before/after, and the same
numbers as the unrewritten graph (FAST_COMPILE) and as NumPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.blas import Dot
from symgraph.ops.nnet import (
    CrossentropyCategorical1HotGrad,
    SoftmaxGrad,
    crossentropy_1hot_grad_op,
    softmax_grad,
)
from symgraph.ops.reduce import BroadcastLike
from symgraph.ops.shape import DimShuffle, Join
from symgraph.ops.stable import CrossentropySoftmax1HotDx, crossentropy_softmax_dx_op
from symgraph.ops.subtensor import Subtensor
from symgraph.rewrite import optimize
from symgraph.rewrite.lift import (
    drop_gradient_only_identity,
    row_slice_through_broadcast_like,
    zero_head_parts,
    zero_head_row_slice,
    zero_head_through_dot,
    zero_head_through_rowwise,
    zero_padded_head,
)
from symgraph.rewrite.stabilize import crossentropy_softmax_grad
from symgraph.scan.truncation import KeepLastRowsGrad, keep_last_rows_grad

RNG = np.random.default_rng(0)


def padded(t: np.ndarray, d: int) -> np.ndarray:
    return np.concatenate([np.zeros((d,) + t.shape[1:], t.dtype), t])


def optimized_nodes(inputs, outputs):
    return optimize(inputs, outputs, "FAST_RUN")[1]


def reads_zero_head(node) -> bool:
    """A node other than a Join-building one reading a zero-padded head (or its transpose)."""
    for v in node.inputs:
        if zero_head_parts(v) is not None:
            return True
        if v.owner is not None and isinstance(v.owner.op, DimShuffle):
            if zero_head_parts(v.owner.inputs[0]) is not None:
                return True
    return False


def agree(inputs, outputs, values, rtol=1e-12):
    """FAST_RUN (with the rewrites) and FAST_COMPILE (without) give the same numbers."""
    fast = sg.function(inputs, outputs, mode="FAST_RUN", on_unused_input="ignore")
    plain = sg.function(inputs, outputs, mode="FAST_COMPILE", on_unused_input="ignore")
    a, b = fast(*values), plain(*values)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)
    return a


def test_zero_padded_head_is_zeros_then_the_tail():
    t, d = T.dmatrix("t"), T.lscalar("d")
    v = zero_padded_head(t, d)
    assert zero_head_parts(v) == (d, t)
    assert zero_head_parts(T.concatenate([T.ones((d, 3)), t])) is None
    assert zero_head_parts(T.concatenate([T.zeros((3, d)), t], axis=1)) is None
    tv = RNG.normal(size=(2, 3))
    f = sg.function([t, d], v, mode="FAST_COMPILE")
    for dv in (0, 3):
        np.testing.assert_array_equal(f(tv, dv), padded(tv, dv))


# --- drop_gradient_only_identity -------------------------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: keep_last_rows_grad(x, 2),
        sg.gradient.zero_grad,
        lambda x: sg.gradient.grad_clip(x, -1, 1),
    ],
)
def test_gradient_only_identities_are_dropped_after_grad(wrap):
    x = T.dmatrix("x")
    y = wrap(x)
    assert drop_gradient_only_identity(y.owner) == [x]
    w = np.arange(12.0).reshape(4, 3)
    cost = T.sum(T.tanh(y) * w)
    g = T.grad(cost, x)
    nodes = optimized_nodes([x], [cost, g])
    assert not [n for n in nodes if n.op is y.owner.op or n.op == y.owner.op]
    agree([x], [cost, g], [RNG.normal(size=(4, 3)) * 3])


# --- the truncation gradient, exactly as before -----------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("mode", ["FAST_RUN", "FAST_COMPILE"])
def test_keep_last_rows_grad_passes_only_the_last_k_rows(n, mode):
    x = T.dtensor3("x")
    w = RNG.normal(size=(n, 2, 3))
    y = keep_last_rows_grad(x, 3)
    (g,) = sg.function([x], [T.grad(T.sum(y * w), x)], mode=mode)(np.ones((n, 2, 3)))
    expect = w.copy()
    expect[: max(n - 3, 0)] = 0
    np.testing.assert_array_equal(g, expect)
    assert isinstance(y.owner.op, KeepLastRowsGrad)


# --- zero_head_through_rowwise -----------------------------------------------------------------


def test_softmax_grad_of_a_zero_head_works_on_the_tail():
    t, x, d = T.dmatrix("t"), T.dmatrix("x"), T.lscalar("d")
    sm = T.nnet.softmax(x)
    out = softmax_grad(zero_padded_head(t, d), sm)
    (new,) = zero_head_through_rowwise(out.owner)
    dd, tail = zero_head_parts(new)
    assert dd is d and isinstance(tail.owner.op, SoftmaxGrad) and tail.owner.inputs[0] is t
    assert not [n for n in optimized_nodes([t, x, d], [out]) if reads_zero_head(n)]
    for dv, m in [(0, 4), (2, 2), (4, 0)]:
        agree([t, x, d], [out], [RNG.normal(size=(m, 5)), RNG.normal(size=(4, 5)), dv])


def test_softmax_grad_reference_numbers():
    t, x, d = T.dmatrix("t"), T.dmatrix("x"), T.lscalar("d")
    out = softmax_grad(zero_padded_head(t, d), T.nnet.softmax(x))
    tv, xv = RNG.normal(size=(2, 5)), RNG.normal(size=(4, 5))
    (r,) = agree([t, x, d], [out], [tv, xv, 2])
    sm = np.exp(xv) / np.exp(xv).sum(1, keepdims=True)
    g = padded(tv, 2)
    np.testing.assert_allclose(r, (g - (g * sm).sum(1, keepdims=True)) * sm, rtol=1e-12)


@pytest.mark.parametrize("op", [crossentropy_1hot_grad_op, crossentropy_softmax_dx_op])
def test_crossentropy_gradients_of_a_zero_head_work_on_the_tail(op):
    t, p, y, d = T.dvector("t"), T.dmatrix("p"), T.ivector("y"), T.lscalar("d")
    out = op(zero_padded_head(t, d), p, y)
    (new,) = zero_head_through_rowwise(out.owner)
    _, tail = zero_head_parts(new)
    assert tail.owner.op == op and tail.owner.inputs[0] is t
    pv = RNG.uniform(0.1, 1, size=(5, 4))
    yv = np.array([0, 3, 1, 2, 3], dtype="int32")
    for dv in (0, 3, 5):
        agree([t, p, y, d], [out], [RNG.normal(size=5 - dv), pv, yv, dv])


def test_products_by_row_broadcast_operands_keep_the_zero_head():
    t, d, v, s = T.dmatrix("t"), T.lscalar("d"), T.dvector("v"), T.dscalar("s")
    for out in (zero_padded_head(t, d) * v, s * zero_padded_head(t, d), -zero_padded_head(t, d)):
        (new,) = zero_head_through_rowwise(out.owner)
        assert zero_head_parts(new) is not None
        agree([t, d, v, s], [out], [RNG.normal(size=(2, 3)), 3, RNG.normal(size=3), 1.5])
    # an operand with rows of its own is left alone: its rows would have to be sliced too
    m = T.dmatrix("m")
    assert zero_head_through_rowwise((zero_padded_head(t, d) * m).owner) is None


# --- zero_head_through_dot -------------------------------------------------------------------


def test_products_with_a_zero_head_read_only_the_tail_rows():
    t, d, b, a = T.dmatrix("t"), T.lscalar("d"), T.dmatrix("b"), T.dmatrix("a")
    zh = zero_padded_head(t, d)
    left, left_t, right = T.dot(zh, b), T.dot(zh.T, b), T.dot(a, zh)
    (r,) = zero_head_through_dot(left.owner)
    assert isinstance(zero_head_parts(r)[1].owner.op, Dot)
    for out in (left_t, right):
        (r,) = zero_head_through_dot(out.owner)
        assert isinstance(r.owner.op, Dot) and not reads_zero_head(r.owner)
    outs = [left, left_t, right]
    assert not [n for n in optimized_nodes([t, d, b, a], outs) if reads_zero_head(n)]
    tv = RNG.normal(size=(2, 3))
    for dv in (0, 3):
        n = dv + 2
        bv_l, bv_t, av = RNG.normal(size=(3, 4)), RNG.normal(size=(n, 4)), RNG.normal(size=(4, n))
        r_left, r_t, r_right = agree([t, d, b, a], [left], [tv, dv, bv_l, av]) + agree(
            [t, d, b, a], [left_t, right], [tv, dv, bv_t, av]
        )
        np.testing.assert_allclose(r_left, padded(tv, dv) @ bv_l, rtol=1e-12)
        np.testing.assert_allclose(r_t, padded(tv, dv).T @ bv_t, rtol=1e-12)
        np.testing.assert_allclose(r_right, av @ padded(tv, dv), rtol=1e-12)


# --- zero_head_row_slice ---------------------------------------------------------------------

BOUNDS = [None, -9, -4, -1, 0, 1, 2, 3, 6, 9]


@pytest.mark.parametrize("symbolic", [False, True])
def test_slices_of_a_zero_head_are_padded_slices_of_the_tail(symbolic):
    t, d = T.dmatrix("t"), T.lscalar("d")
    s, e = T.lscalar("s"), T.lscalar("e")
    zh = zero_padded_head(t, d)
    if symbolic:  # one function for every pair of bounds
        out = zh[s:e]
        (new,) = zero_head_row_slice(out.owner)
        assert zero_head_parts(new) is not None
        fast = sg.function([t, d, s, e], out)
    for d_val, m in [(0, 3), (2, 3), (4, 0), (1, 5)]:
        tv = RNG.normal(size=(m, 2))
        for start, stop in itertools.product(BOUNDS, BOUNDS):
            expect = padded(tv, d_val)[start:stop]
            if symbolic:
                if start is None or stop is None:
                    continue
                got = fast(tv, d_val, start, stop)
            else:
                out = zh[start:stop]
                if zero_head_row_slice(out.owner) is None:
                    continue
                got = sg.function([t, d], out)(tv, d_val)
            np.testing.assert_array_equal(got, expect, err_msg=f"[{start}:{stop}] d={d_val}")


def test_a_zero_head_of_no_rows_is_its_tail():
    t = T.dmatrix("t")
    out = zero_padded_head(t, 0)
    assert zero_head_row_slice(out.owner) == [t]


# --- row_slice_through_broadcast_like ---------------------------------------------------------


def test_a_row_slice_of_a_broadcast_zero_head_reaches_the_tail():
    t, d, x = T.dmatrix("t"), T.lscalar("d"), T.dmatrix("x")
    s, e = T.lscalar("s"), T.lscalar("e")
    out = T.broadcast_like(zero_padded_head(t, d), x)[s:e]
    (new,) = row_slice_through_broadcast_like(out.owner)
    assert isinstance(new.owner.op, BroadcastLike)
    assert zero_head_parts(new.owner.inputs[0])[1].owner.inputs[0] is t  # a slice of the tail
    nodes = optimized_nodes([t, d, x, s, e], [out])
    # nothing slices the padded value or its broadcast any more
    sliced = [n.inputs[0].owner for n in nodes if isinstance(n.op, Subtensor)]
    assert not [o for o in sliced if o is not None and isinstance(o.op, BroadcastLike | Join)]
    fast = sg.function([t, d, x, s, e], out)
    plain = sg.function([t, d, x, s, e], out, mode="FAST_COMPILE")
    # the same rows, and one row broadcast over all of x's rows
    for d_val, m, rows in [(3, 2, 5), (0, 5, 5), (1, 0, 4), (0, 1, 4)]:
        tv, xv = RNG.normal(size=(m, 3)), np.zeros((rows, 3))
        for start, stop in [(2, 5), (-2, 9), (0, 1), (3, 3), (-9, -1)]:
            expect = np.broadcast_to(padded(tv, d_val), xv.shape)[start:stop]
            np.testing.assert_array_equal(fast(tv, d_val, xv, start, stop), expect)
            np.testing.assert_array_equal(plain(tv, d_val, xv, start, stop), expect)


# --- stabilize: the softmax cross-entropy gradient on some rows --------------------------------


def test_crossentropy_softmax_grad_is_fused_on_a_row_slice():
    x, y, gz, a = T.dmatrix("x"), T.ivector("y"), T.dvector("gz"), T.lscalar("a")
    sm = T.nnet.softmax(x)
    out = softmax_grad(crossentropy_1hot_grad_op(gz, sm, y)[a:], sm[a:])
    (new,) = crossentropy_softmax_grad(out.owner)
    assert isinstance(new.owner.op, CrossentropySoftmax1HotDx)
    nodes = optimized_nodes([x, y, gz, a], [out])
    assert not [n for n in nodes if isinstance(n.op, SoftmaxGrad | CrossentropyCategorical1HotGrad)]
    # different rows on the two sides: not the same computation, left alone
    other = softmax_grad(crossentropy_1hot_grad_op(gz, sm, y)[a:], sm[1:])
    assert crossentropy_softmax_grad(other.owner) is None
    xv, yv = RNG.normal(size=(5, 4)), np.array([0, 3, 1, 2, 3], dtype="int32")
    for av in (0, 2, 5):
        agree([x, y, gz, a], [out], [xv, yv, RNG.normal(size=5), av], rtol=1e-10)


# --- end to end: WildML's RNN with truncate_gradient ------------------------------------------


def _rnn_grads(k: int):
    rng = np.random.default_rng(1)
    vocab, hidden = 7, 4
    U = sg.shared(rng.normal(size=(hidden, vocab)), name="U")
    V = sg.shared(rng.normal(size=(vocab, hidden)), name="V")
    W = sg.shared(rng.normal(size=(hidden, hidden)) * 0.5, name="W")
    x, y = T.ivector("x"), T.ivector("y")

    def step(x_t, s_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + W.dot(s_prev))
        return [T.nnet.softmax(V.dot(s_t))[0], s_t]

    [o, _], _ = sg.scan(
        step,
        sequences=x,
        outputs_info=[None, dict(initial=T.zeros(hidden, dtype="float64"))],
        non_sequences=[U, V, W],
        truncate_gradient=k,
    )
    cost = T.sum(T.nnet.categorical_crossentropy(o, y))
    return [x, y], [cost, *T.grad(cost, [U, V, W])]


def test_truncated_rnn_backward_works_on_the_last_k_rows_only():
    inputs, outputs = _rnn_grads(3)
    nodes = optimized_nodes(inputs, outputs)
    names = {type(n.op).__name__ for n in nodes}
    assert "KeepLastRowsGrad" not in names
    assert not names & {"SoftmaxGrad", "CrossentropyCategorical1HotGrad"}
    assert "CrossentropySoftmax1HotDx" in names
    assert not [n for n in nodes if isinstance(n.op, Dot) and reads_zero_head(n)]
    for n in (1, 3, 6):
        xv = np.arange(n, dtype="int32") % 7
        yv = (np.arange(n, dtype="int32") * 3 + 1) % 7
        agree(inputs, outputs, [xv, yv], rtol=1e-10)
