"""Matrix products as single cuBLAS calls (``CublasGemm`` in the CUDA backend), run by the host's
BLAS through the same column-major interface (``emulated_cuda.Cublas``): every layout a graph
hands a product (C-ordered, transposed, rows of a larger buffer, vectors, strided vectors) gives
NumPy's answer, and layouts cuBLAS cannot read in place are declined, not misread."""

from __future__ import annotations

import emulated_cuda
import emulated_cupy
import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends import cupy as cupy_backend
from symgraph.ops.blas import Dot
from symgraph.ops.gemm import Gemm

STATS = emulated_cupy.STATS


def _layouts(rng, shape, dtype):
    """(name, host array, device array of that layout) for a matrix or vector of ``shape``."""
    host = rng.standard_normal(shape).astype(dtype)
    cp = emulated_cupy
    yield "c-ordered", host, cp.asarray(host)
    if len(shape) == 2:
        yield "transposed", host, cp.asarray(np.ascontiguousarray(host.T)).T
        wide = np.zeros((shape[0], shape[1] + 3), dtype)
        wide[:, 1 : 1 + shape[1]] = host
        yield "rows of a wider buffer", host, cp.asarray(wide)[:, 1 : 1 + shape[1]]
        tall = np.zeros((shape[1] + 2, shape[0]), dtype)
        tall[2:] = host.T
        yield "transposed rows of a buffer", host, cp.asarray(tall)[2:].T
    else:
        spread = np.zeros(2 * shape[0], dtype)
        spread[::2] = host
        yield "strided", host, cp.asarray(spread)[::2]


CASES = [((4, 3), (3, 5)), ((1, 3), (3, 5)), ((4, 1), (1, 5)), ((4, 3), (3, 1)), ((3,), (3, 5)),
         ((4, 3), (3,)), ((7, 6), (6, 6))]  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("a_shape, b_shape", CASES)
def test_products_of_every_layout_match_numpy(device, dtype, a_shape, b_shape):
    gemm = cupy_backend.get_backend(required=True).gemm
    assert gemm is not None  # made and checked with the backend
    rng = np.random.default_rng(sum(a_shape) + 10 * len(b_shape))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for a_name, a, da in _layouts(rng, a_shape, dtype):
        for b_name, b, db in _layouts(rng, b_shape, dtype):
            want = a @ b
            c = emulated_cupy.asarray(np.full(want.shape, 7, dtype))
            before = STATS["kernels"]
            assert gemm(c, 1.0, da, db, 0.0), (a_name, b_name)
            assert STATS["kernels"] == before + 1  # one call, no copies
            np.testing.assert_allclose(c.get(), want, **tol, err_msg=f"{a_name} @ {b_name}")
            # accumulating: c = 0.5 * a @ b + 2 * c (alpha and beta as host scalars of any kind)
            assert gemm(c, np.array(0.5), da, db, np.float32(2.0))
            np.testing.assert_allclose(c.get(), 2.5 * want, **tol, err_msg=f"{a_name} @ {b_name}")


def test_a_row_of_a_buffer_as_the_result(device):
    gemm = cupy_backend.get_backend(required=True).gemm
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal((4, 5)).astype("f4")
    buffer = emulated_cupy.asarray(np.zeros((6, 3, 5), "float32"))
    assert gemm(buffer[2], 1.0, emulated_cupy.asarray(a), emulated_cupy.asarray(b), 0.0)
    got = buffer.get()
    np.testing.assert_allclose(got[2], a @ b, rtol=1e-5)
    assert not got[[0, 1, 3, 4, 5]].any()  # nothing written outside its row
    # a result whose rows are not contiguous is column-major to cuBLAS: declined
    wide = emulated_cupy.asarray(np.zeros((5, 3), "float32"))
    assert not gemm(wide.T, 1.0, emulated_cupy.asarray(a), emulated_cupy.asarray(b), 0.0)


def test_layouts_cublas_cannot_read_in_place_are_declined(device):
    import cupy as cp

    gemm = cupy_backend.get_backend(required=True).gemm
    a = cp.asarray(np.ones((4, 6), "float32"))
    b = cp.asarray(np.ones((3, 5), "float32"))
    c = cp.asarray(np.zeros((4, 5), "float32"))
    declined = {
        "every other column": (c, a[:, ::2], b),
        "reversed rows": (c, a[::-1, :3], b),
        "a broadcast operand": (c, cp.broadcast_to(cp.asarray(np.ones(3, "float32")), (4, 3)), b),
        "mixed dtypes": (c, a[:, :3].astype("float64"), b),
        "an integer product": (c.astype("int32"), a[:, :3].astype("int32"), b.astype("int32")),
        "mismatched lengths": (c, a, b),
        "an empty inner axis": (c, a[:, :0], b[:0]),
        "a result overlapping an operand": (a[:, :5], a[:, :4], cp.asarray(np.ones((4, 5), "f4"))),
    }
    for what, (out, x, y) in declined.items():
        assert not gemm(out, 1.0, x, y, 0.0), what


def test_emulated_cublas_refuses_what_cublas_refuses(device):
    import cupy

    cublas, handle = cupy.cuda.cublas, cupy.cuda.device.get_cublas_handle()
    x = emulated_cupy.asarray(np.ones((2, 3), "float32"))
    one = np.ones((), "float32")
    p = x.data.ptr
    with pytest.raises(emulated_cuda.CUBLASError, match="ldb"):  # leading dimension too small
        cublas.sgemm(handle, 0, 0, 3, 2, 2, one.ctypes.data, p, 3, p, 1, one.ctypes.data, p, 3)
    with pytest.raises(emulated_cuda.CUBLASError, match="past its device allocation"):
        cublas.sgemm(handle, 0, 0, 3, 3, 3, one.ctypes.data, p, 3, p, 3, one.ctypes.data, p, 3)
    host = np.ones((2, 3), "float32")
    with pytest.raises(emulated_cuda.CUBLASError, match="not the data.ptr of a device array"):
        cublas.sgemm(handle, 0, 0, 3, 2, 2, one.ctypes.data, host.ctypes.data, 3, p, 2,
                     one.ctypes.data, p, 3)  # fmt: skip


@pytest.mark.parametrize("cell, products", [("gru", 4), ("lstm", 2)])
def test_every_product_in_a_training_steps_loops_is_one_cublas_call(device, cell, products):
    from models.lm import LanguageModel, LMConfig

    with sg.config.change_flags(device="cuda"):
        model = LanguageModel(LMConfig(vocab_size=23, hidden_dim=6, emb_dim=5, cell=cell), seed=3)
        model.compile_all(sentence=False)
    calls = {}
    for steps in (4, 8):
        x = np.zeros((steps, 3), "int32")
        model.train_step(x, x, np.ones((steps, 3), "float32"))
        emulated_cupy.reset_stats()
        model.train_step(x, x, np.ones((steps, 3), "float32"))
        calls[steps] = STATS["cublas"]
    assert (calls[8] - calls[4]) / 4 == products  # per time step, forward and backward
    assert calls[4] > 4 * products  # and the products outside the loops


def test_an_sgd_step_of_a_weight_is_one_cublas_call_into_the_weight(device):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((6, 4)).astype("float32")
    with sg.config.change_flags(device="cuda"):
        W = sg.shared(w0.copy(), name="W")
        a, b, lr = T.fmatrix("a"), T.fmatrix("b"), T.fscalar("lr")
        step = sg.function([a, b, lr], [], updates=[(W, W - lr * T.dot(a.T, b))])
    assert Gemm in [type(n.op) for n in step.program.nodes]
    av, bv = rng.standard_normal((5, 6)).astype("f4"), rng.standard_normal((5, 4)).astype("f4")
    step(av, bv, np.float32(0.1))  # copies the inputs over once
    emulated_cupy.reset_stats()
    step(av, bv, np.float32(0.1))
    assert STATS["cublas"] == 1 and STATS["kernels"] == 1, dict(STATS)
    np.testing.assert_allclose(W.get_value(), w0 - 0.2 * av.T @ bv, rtol=1e-5, atol=1e-6)
    assert Dot not in [type(n.op) for n in step.program.nodes]


def test_without_cublas_products_go_through_cupy_dot(device, monkeypatch, capsys):
    import cupy

    def missing(self):
        raise ImportError("libcublas.so.13: cannot open shared object file")

    monkeypatch.setattr(type(cupy.cuda.cublas), "sgemm", property(missing))
    monkeypatch.setattr(cupy_backend, "_backend", None)  # a fresh backend, for this test only
    backend = cupy_backend.get_backend(required=True)
    assert backend.gemm is None
    assert "matrix products go through cupy.dot (ImportError: libcublas" in capsys.readouterr().err
    x = T.fmatrix("x")
    with sg.config.change_flags(device="cuda"):
        f = sg.function([x], T.dot(x, x.T))
    v = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(f(v), v @ v.T)
