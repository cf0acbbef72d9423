"""``z ± c * dot(x, y)`` becomes one BLAS gemm that accumulates into z."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.backends.numpy as numpy_backend
import symgraph.tensor as T
from symgraph.ops.blas import Dot
from symgraph.ops.gemm import Gemm


def _ops(f):
    return [type(n.op) for n in f.program.nodes]


@pytest.mark.cpu_strategy
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_step_of_a_weight_matrix_is_one_gemm_into_the_weight(dtype):
    rng = np.random.default_rng(0)
    W = sg.shared(rng.normal(size=(6, 4)).astype(dtype), name="W")
    a = T.matrix("a", dtype=dtype)
    b = T.matrix("b", dtype=dtype)
    lr = T.scalar("lr", dtype=dtype)
    g = T.dot(a.T, b)  # the weight gradient of a dense layer
    step = sg.function([a, b, lr], [], updates=[(W, W - lr * g)])
    assert Gemm in _ops(step) and Dot not in _ops(step)
    assert "_inplace(" in step.source
    before_buffer = W.get_value(borrow=True)
    w0 = W.get_value()
    av, bv = rng.normal(size=(5, 6)).astype(dtype), rng.normal(size=(5, 4)).astype(dtype)
    step(av, bv, 0.1)
    assert W.get_value(borrow=True) is before_buffer  # accumulated in place
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(W.get_value(), w0 - 0.1 * av.T @ bv, rtol=rtol, atol=rtol)


def _update_pair(build, zv, mode):
    Z = sg.shared(zv.copy(), name="Z")
    x, y = T.dmatrix("x"), T.dmatrix("y")
    c = T.dscalar("c")
    f = sg.function(
        [x, y, c], [], updates=[(Z, build(Z, x, y, c))], mode=mode, on_unused_input="ignore"
    )
    return f, Z


@pytest.mark.parametrize(
    "build, x_shape, y_shape",
    [
        (lambda z, x, y, c: z + c * T.dot(x, y), (3, 4), (4, 2)),
        (lambda z, x, y, c: T.dot(x, y) * c + z, (3, 4), (4, 2)),
        (lambda z, x, y, c: z - T.dot(x, y), (3, 4), (4, 2)),
        (lambda z, x, y, c: T.dot(x, y) + z, (3, 4), (4, 2)),
        (lambda z, x, y, c: z - c * T.dot(x.T, y.T), (4, 3), (2, 4)),  # transposed operands
        (lambda z, x, y, c: z - c * T.dot(x, y), (3, 200), (200, 2)),  # long inner axis
    ],
)
def test_gemm_forms_agree_with_the_unrewritten_graph(build, x_shape, y_shape):
    rng = np.random.default_rng(1)
    zv = rng.normal(size=(3, 2))
    fast, Z1 = _update_pair(build, zv, "FAST_RUN")
    plain, Z2 = _update_pair(build, zv, "FAST_COMPILE")
    assert Gemm in _ops(fast) and Gemm not in _ops(plain)
    for _ in range(2):
        xv, yv = rng.normal(size=x_shape), rng.normal(size=y_shape)
        fast(xv, yv, 0.3)
        plain(xv, yv, 0.3)
        np.testing.assert_allclose(Z1.get_value(), Z2.get_value(), rtol=1e-12)


@pytest.mark.parametrize("layout", ["C", "F", "view"])
def test_gemm_accumulates_for_every_memory_layout(layout):
    # F-ordered and sliced operands go to BLAS with transpose flags or fall back to NumPy
    rng = np.random.default_rng(2)
    base = rng.normal(size=(8, 10))
    zv = {"C": base[:4, :5].copy(), "F": np.asfortranarray(base[:4, :5]), "view": base[:4, :5]}
    xv = {"C": base[:4, :3].copy(), "F": np.asfortranarray(base[:4, :3]), "view": base[:4, :9:3]}
    Z = sg.shared(zv[layout], name="Z", borrow=True)
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([x, y], [], updates=[(Z, Z - 0.5 * T.dot(x, y))])
    assert Gemm in _ops(f)
    expected = zv[layout] - 0.5 * xv[layout] @ rng.normal(size=(3, 5))
    rng = np.random.default_rng(2)
    rng.normal(size=(8, 10))
    f(xv[layout], rng.normal(size=(3, 5)))
    np.testing.assert_allclose(Z.get_value(), expected, rtol=1e-12)


def test_an_intermediate_z_is_left_to_the_elementwise_fusion():
    # z + dot(x, y) with z an input or intermediate: the add fuses with the work around it
    z, x, y = T.dmatrix("z"), T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([z, x, y], T.tanh(z + T.dot(x, y)))
    assert Gemm not in _ops(f) and Dot in _ops(f)


def test_without_scipy_gemm_computes_the_same_with_numpy(monkeypatch):
    monkeypatch.setattr(numpy_backend, "_BLAS", [None])
    W = sg.shared(np.ones((3, 2)), name="W")
    a, b = T.dmatrix("a"), T.dmatrix("b")
    step = sg.function([a, b], [], updates=[(W, W - 2.0 * T.dot(a, b))])
    av, bv = np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(4, 2)
    step(av, bv)
    np.testing.assert_allclose(W.get_value(), 1 - 2 * av @ bv)


def test_a_broadcast_z_is_not_turned_into_gemm():
    z = T.dmatrix("z")
    zb = T.addbroadcast(z, 0) if hasattr(T, "addbroadcast") else z[:1]
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([z, x, y], zb + T.dot(x, y))
    zv = np.arange(2.0).reshape(1, 2)
    xv, yv = np.ones((3, 4)), np.ones((4, 2))
    np.testing.assert_allclose(f(zv, xv, yv), zv + xv @ yv)
