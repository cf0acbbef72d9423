"""Buffer reuse in the linker: results overwrite inputs only when nothing can see the difference."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T

# in-place writes and kept buffers are the NumPy backend's (a device writes nothing in place yet)
pytestmark = pytest.mark.cpu_strategy


def test_elementwise_chain_reuses_dying_intermediates():
    x = T.dvector("x")
    y = T.tanh(T.exp(x * 2) + 1) / 3
    f = sg.function([x], y, mode="FAST_COMPILE")  # unfused: one node per op
    assert f.source.count("out=") >= 3
    v = np.array([0.1, -0.3, 0.7])
    np.testing.assert_allclose(f(v), np.tanh(np.exp(v * 2) + 1) / 3)
    np.testing.assert_array_equal(v, [0.1, -0.3, 0.7])  # inputs are never written


def test_runtime_broadcast_falls_back_to_a_fresh_array():
    x = T.dmatrix("x")
    b = T.dmatrix("b")
    y = T.exp(x) + b  # exp(x) may be (1, n) while b is (m, n): the guard sees it at run time
    f = sg.function([x, b], y, mode="FAST_COMPILE")
    assert "out=" in f.source
    xv, bv = np.zeros((1, 3)), np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(f(xv, bv), 1 + bv)


def test_a_live_view_blocks_reuse():
    x = T.dmatrix("x")
    e = T.exp(x)
    view = e[0]  # a view of e that is an output: e must not be overwritten afterwards
    f = sg.function([x], [view, T.tanh(e)], mode="FAST_COMPILE")
    xv = np.array([[0.0, 1.0], [2.0, 3.0]])
    v, t = f(xv)
    np.testing.assert_allclose(v, np.exp(xv[0]))
    np.testing.assert_allclose(t, np.tanh(np.exp(xv)))


def test_shared_update_writes_into_the_shared_array():
    w = sg.shared(np.ones(4), name="w")
    g = T.dvector("g")
    step = sg.function([g], [], updates=[(w, w - 0.5 * g)])
    before = w.get_value(borrow=True)
    step(np.arange(4.0))
    assert w.get_value(borrow=True) is before
    np.testing.assert_allclose(w.get_value(), 1 - 0.5 * np.arange(4.0))


def test_shared_update_is_not_in_place_when_the_old_value_is_returned():
    w = sg.shared(np.ones(3), name="w")
    g = T.dvector("g")
    step = sg.function([g], w * 1.0 + 0.0, updates=[(w, w - g)])  # output reads old w
    out = step(np.full(3, 2.0))
    np.testing.assert_allclose(out, [1, 1, 1])
    np.testing.assert_allclose(w.get_value(), [-1, -1, -1])
    old = sg.function([g], w, updates=[(w, w - g)])(np.ones(3))
    np.testing.assert_allclose(old, [-1, -1, -1])
    np.testing.assert_allclose(w.get_value(), [-2, -2, -2])


def test_updates_see_old_values_when_one_reads_another():
    a = sg.shared(np.ones(2), name="a")
    b = sg.shared(np.full(2, 10.0), name="b")
    swap = sg.function([], [], updates=[(a, b + 0.0), (b, a * 1.0 + 0.0)])
    swap()
    np.testing.assert_allclose(a.get_value(), [10, 10])
    np.testing.assert_allclose(b.get_value(), [1, 1])


def test_inc_subtensor_skips_its_copy_of_a_dying_input():
    x = T.dvector("x")
    i = T.ivector("i")
    z = T.inc_subtensor(T.zeros_like(x)[i], 1.0)
    f = sg.function([x, i], z * 2)
    assert "_inplace(" in f.source
    np.testing.assert_allclose(f(np.zeros(4), np.array([1, 1, 3], "int32")), [0, 4, 0, 2])


@pytest.mark.parametrize("alias", [0, 1, None])
def test_fused_program_writing_into_one_of_its_inputs(alias):
    # (x * 2 + y) * x - exp(y): x is read at the first and the last step; y in the middle
    x = T.dmatrix("x")
    y = T.dmatrix("y")
    f = sg.function([x, y], (x * 2 + y) * x - T.exp(y))
    (node,) = f.program.nodes
    impl = node.op.make_impl(node, f.backend)
    assert getattr(impl, "accepts_out", False)
    rng = np.random.default_rng(0)
    for _ in range(3):  # plans are cached: run each more than once
        xv, yv = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        expected = (xv * 2 + yv) * xv - np.exp(yv)
        values = {x: xv.copy(), y: yv.copy()}
        args = [values.get(v, getattr(v, "data", None)) for v in node.inputs]
        out = values[(x, y)[alias]] if alias is not None else np.empty((3, 4))
        result = impl(*args, out=out)
        assert result is out
        np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_fused_programs_share_scratch_buffers_without_mixing_values():
    a = T.dvector("a")
    b = T.dvector("b")
    e1 = T.exp(a) * 2 + T.sin(b) * 3  # two fused programs with same-shaped intermediates
    e2 = T.cos(a) * 5 - T.tanh(b) * 7
    f = sg.function([a, b], [e1, e2 * e1])
    av, bv = np.linspace(0, 1, 7), np.linspace(-1, 2, 7)
    r1 = np.exp(av) * 2 + np.sin(bv) * 3
    r2 = (np.cos(av) * 5 - np.tanh(bv) * 7) * r1
    for _ in range(2):
        o1, o2 = f(av, bv)
        np.testing.assert_allclose(o1, r1, rtol=1e-12)
        np.testing.assert_allclose(o2, r2, rtol=1e-12)


def _softmax_xent_step(keep_logits: bool):
    h = T.dmatrix("h")
    y = T.ivector("y")
    W = sg.shared(np.random.default_rng(1).normal(size=(4, 6)), name="W")
    logits = T.dot(h, W)
    loss = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y))
    outs = [loss, logits] if keep_logits else [loss]
    return sg.function([h, y], outs, updates=[(W, W - 0.1 * T.grad(loss, W))]), W


@pytest.mark.parametrize("keep_logits", [False, True])
def test_softmax_crossentropy_and_its_gradient_work_in_the_dying_logits(keep_logits):
    # the logits die at the fused softmax + crossentropy, whose softmax dies at its gradient:
    # both may compute in place, unless the logits are also an output
    f, W = _softmax_xent_step(keep_logits)
    index = {type(n.op).__name__: k for k, n in enumerate(f.program.nodes)}
    fused, dx = index["SoftmaxAndCrossentropy1Hot"], index["CrossentropySoftmax1HotDx"]
    assert (f"f{fused}_inplace(" in f.source) is not keep_logits, f.source
    assert f"f{dx}_inplace(" in f.source
    rng = np.random.default_rng(0)
    hv, yv = rng.normal(size=(5, 4)) * 30, np.array([0, 5, 2, 2, 1], "int32")
    w0 = W.get_value()
    z = hv @ w0
    e = np.exp(z - z.max(axis=1, keepdims=True))
    sm = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(sm[np.arange(5), yv]).mean()
    d = sm.copy()
    d[np.arange(5), yv] -= 1
    out = f(hv, yv)
    np.testing.assert_allclose(out[0], loss, rtol=1e-12)
    if keep_logits:
        np.testing.assert_allclose(out[1], z, rtol=1e-12)  # not overwritten by the softmax
    np.testing.assert_allclose(W.get_value(), w0 - 0.1 * hv.T @ d / 5, rtol=1e-12)


def test_a_bias_row_broadcast_against_a_dying_batch_is_added_in_place():
    h = T.dmatrix("h")
    W = T.dmatrix("W")
    b = T.dvector("b")
    f = sg.function([h, W, b], T.dot(h, W) + b.dimshuffle("x", 0), mode="FAST_COMPILE")
    assert "out=" in f.source and ".shape[1] ==" in f.source  # only the bias's long axis
    hv, wv, bv = np.ones((4, 3)), np.ones((3, 5)), np.arange(5.0)
    np.testing.assert_allclose(f(hv, wv, bv), hv @ wv + bv)


@pytest.mark.parametrize("target_shape", [(4, 1), (1, 5), (4, 5)])
def test_an_operand_with_fewer_axes_never_writes_a_result_of_another_shape(target_shape):
    # exp(x) dies at the add; it may take the result only when the sum has its shape
    x = T.dmatrix("x")
    v = T.dvector("v")
    f = sg.function([x, v], T.exp(x) + v, mode="FAST_COMPILE")
    assert "out=" in f.source
    xv, vv = np.zeros(target_shape), np.arange(5.0)
    np.testing.assert_allclose(f(xv, vv), np.exp(xv) + vv)


def _big(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize(
    "build",
    [
        lambda a, b: T.dot(a, b),  # the product is the output
        lambda a, b: T.dot(a, b)[1:],  # a view of it is
        lambda a, b: T.dot(a, b) + 1.0,  # a result written into it is
        lambda a, b: T.dot(a, b).T,
    ],
)
def test_a_product_whose_memory_leaves_the_call_is_never_reused(build):
    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = sg.function([a, b], build(a, b))
    av, bv = _big((100, 50), 0), _big((50, 120), 1)  # 96 KB of results: above the kept size
    first = f(av, bv)
    kept = first.copy()
    f(av * 2, bv)
    np.testing.assert_array_equal(first, kept)


def test_a_product_that_dies_in_the_call_reuses_one_buffer_across_calls_and_shapes():
    from symgraph.compile.inplace import plan_kept_buffers

    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = sg.function([a, b], [T.sum(T.tanh(T.dot(a, b)), axis=0)])
    assert plan_kept_buffers(f.program.nodes, f.program.outputs, {}, f.backend)
    for rows in (200, 120, 300):  # growing, shrinking, growing the buffer
        av, bv = _big((rows, 50), rows), _big((50, 60), 1)
        np.testing.assert_allclose(f(av, bv)[0], np.tanh(av @ bv).sum(axis=0), rtol=1e-12)


def test_an_update_computed_from_a_kept_product_is_not_the_kept_buffer():
    W = sg.shared(np.zeros((100, 120)), name="W")
    a, b = T.dmatrix("a"), T.dmatrix("b")
    step = sg.function([a, b], [], updates=[(W, T.tanh(T.dot(a, b)))])
    av, bv = _big((100, 50), 3), _big((50, 120), 4)
    step(av, bv)
    first = W.get_value(borrow=True)
    step(av * 2, bv)
    np.testing.assert_allclose(first, np.tanh(av @ bv), rtol=1e-12)
    np.testing.assert_allclose(W.get_value(), np.tanh(2 * av @ bv), rtol=1e-12)


def test_allow_gc_turns_kept_buffers_off():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    out = T.sum(T.tanh(T.dot(a, b)), axis=0)
    kept = sg.function([a, b], out)
    with sg.config.change_flags(allow_gc=True):
        freed = sg.function([a, b], out)

    def kept_impls(f):
        return [
            k
            for k, n in enumerate(f.program.nodes)
            if "kept_product" in getattr(f.program.fn.__globals__.get(f"f{k}"), "__name__", "")
        ]

    assert kept_impls(kept) and not kept_impls(freed)
    av, bv = _big((100, 50), 5), _big((50, 120), 6)
    np.testing.assert_allclose(kept(av, bv), freed(av, bv), rtol=1e-12)
