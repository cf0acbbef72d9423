"""Matrix products: dot (NumPy's ``dot`` semantics) and batched matmul."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import GraphTypeError, ShapeError, user_line, where
from ..graph import Apply, Op, TensorType, Variable
from .basic import as_tensor_variable


def _T():
    from .. import graph

    return graph._api


class Dot(Op):
    """``xp.dot(x, y)`` for ``x`` of any rank >= 1 and ``y`` a vector or matrix.

    The contraction is over the last axis of ``x`` and the first axis of ``y``.
    """

    def make_node(self, x: Any, y: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        trace = user_line()
        if x.ndim == 0 or y.ndim == 0:
            raise GraphTypeError(f"dot of a scalar: use * instead{where(trace)}")
        if y.ndim > 2:
            # NumPy would contract over y's second-to-last axis; Theano users mean batched_dot
            raise GraphTypeError(
                f"dot({x.ndim}-d, {y.ndim}-d) is not supported; use batched_dot/matmul"
                f"{where(trace)}"
            )
        k1 = x.type.shape[-1]
        k2 = y.type.shape[0]
        if k1 is not None and k2 is not None and k1 != k2:
            raise ShapeError(
                f"dot: shapes {_fmt(x)} and {_fmt(y)} are not aligned ({k1} != {k2}) "
                f"[{x.describe()} . {y.describe()}]{where(trace)}"
            )
        dtype = np.result_type(x.dtype, y.dtype).name
        shp = x.type.shape[:-1] + y.type.shape[1:]
        x = x if x.dtype == dtype else _T().cast(x, dtype)
        y = y if y.dtype == dtype else _T().cast(y, dtype)
        return Apply(self, [x, y], [TensorType(dtype, shp)])

    def make_impl(self, node, backend, keep_buffer: bool = False):
        xp = backend.xp
        x, y = node.inputs
        if keep_buffer and backend.name == "cpu" and x.ndim >= 2 and y.ndim == 2:
            return _kept_buffer_product(np.dtype(node.outputs[0].dtype), x.ndim)
        if x.ndim > 2 and y.ndim == 2:
            return _rows_product(xp)
        if backend.name == "cpu" and x.ndim == 2 and y.ndim == 2:
            return _cpu_matrix_product
        if backend.name != "cpu":
            return _DeviceProduct(xp, node.outputs[0].dtype, getattr(backend, "gemm", None))
        return xp.dot

    def grad(self, inputs, output_grads):
        T = _T()
        x, y = inputs
        (gz,) = output_grads
        if x.ndim == 1 and y.ndim == 1:
            return [gz * y, gz * x]
        if x.ndim == 1:  # (k,) . (k, m) -> (m,)
            return [dot(y, gz), T.outer(x, gz)]
        if x.ndim > 2:  # fold the leading axes into rows: (n, k) with n = prod(x.shape[:-1])
            rows = T.reshape(x, T.stack([-1, T.shape(x)[-1]]), ndim=2)
        if y.ndim == 1:  # (..., k) . (k,) -> (...)
            gx = T.shape_padright(gz) * y
            gy = dot(rows.T, T.flatten(gz, 1)) if x.ndim > 2 else dot(x.T, gz)
            return [gx, gy]
        # (..., k) . (k, m) -> (..., m)
        gx = dot(gz, y.T)
        if x.ndim == 2:
            gy = dot(x.T, gz)
        else:
            gy = dot(rows.T, T.reshape(gz, T.stack([-1, T.shape(gz)[-1]]), ndim=2))
        return [gx, gy]


def _as_rows(xp: Any, a: Any) -> Any:
    """The leading axes of ``a`` flattened into the rows of a C-ordered matrix (a strided stack,
    such as a loop's reversed outputs, is copied first: cheaper than what matmul does with it)."""
    if not a.flags.c_contiguous:
        a = xp.ascontiguousarray(a)
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _rows_product(xp: Any) -> Any:
    """N-d ``a`` times a matrix as one 2-d product over its rows: measured 1.1-1.7x faster than
    matmul (which loops when ``b`` is a transposed view) and 4x faster than an N-d dot."""

    def dot_rows(a: Any, b: Any) -> Any:
        return xp.dot(_as_rows(xp, a), b).reshape(a.shape[:-1] + b.shape[1:])

    return dot_rows


class _DeviceProduct:
    """A product on a device: one cuBLAS call through the backend's ``gemm`` where the
    operands' layouts allow (``cupy.dot`` otherwise), written into ``out=`` when the linker
    passes one (a row of a loop's output buffer: the product a loop stores for its gradient is
    then not copied there at every step). A target of another shape, dtype or layout is
    ignored."""

    takes_out = True

    def __init__(self, xp: Any, dtype: str, gemm: Any = None):
        self.dot = xp.dot
        self.empty = xp.empty
        self.gemm = gemm
        self.dtype = np.dtype(dtype)

    def __call__(self, a: Any, b: Any, out: Any = None) -> Any:
        shape = a.shape[:-1] + b.shape[1:]
        if out is not None and not (
            out.shape == shape and out.dtype == self.dtype and out.flags.c_contiguous
        ):
            out = None
        if self.gemm is not None:
            if out is None:
                fresh = self.empty(shape, self.dtype)
                if self.gemm(fresh, 1.0, a, b, 0.0, True):
                    return fresh
            elif self.gemm(out, 1.0, a, b, 0.0):
                return out  # itself: the loop then knows the row holds the result
        if out is not None:
            self.dot(a, b, out=out)
            return out
        return self.dot(a, b)


# Products smaller than this allocate a fresh result (NumPy's small-array cache serves them).
KEEP_MIN_BYTES = 1 << 16


def _kept_buffer_product(dtype: np.dtype, x_ndim: int) -> Any:
    """A product written into a buffer kept across calls (capacity grows to the largest result
    seen; each call views its first elements). The linker uses it where the result provably
    dies within the call (``compile/inplace.py``): a fresh large array per call would cost the
    allocator's work and, when its memory goes back to the system, page faults (measured 9.2
    against 11.1 ms for the tutorial GRU's step in one process)."""
    holder: list = [None]
    fresh = _cpu_matrix_product if x_ndim == 2 else _rows_product(np)

    def kept_product(a: Any, b: Any) -> Any:
        shape = a.shape[:-1] + b.shape[1:]
        size = math.prod(shape)
        if size * dtype.itemsize < KEEP_MIN_BYTES or a.dtype != dtype or b.dtype != dtype:
            return fresh(a, b)
        flat = holder[0]
        if flat is None or flat.size < size:
            flat = holder[0] = np.empty(size, dtype)
        out = flat[:size].reshape(shape)
        if x_ndim > 2:
            rows = _as_rows(np, a)
            np.dot(rows, b, out=out.reshape(rows.shape[0], shape[-1]))
        elif _swap_pays(a, b):
            np.copyto(out, _swapped_product(a, b).T)
        else:
            np.dot(a, b, out=out)
        return out

    return kept_product


def _swap_pays(a: Any, b: Any) -> bool:
    """Measured on this OpenBLAS (k = 128-256): 2-32 rows times >= 1000 transposed columns
    (0.6-0.8x the time), and 16-32 rows times >= 64 (0.7-0.9x); fewer rows or columns lose."""
    m, n = a.shape[0], b.shape[1]
    return (
        (2 <= m <= _FEW_ROWS and n >= 1000 or 16 <= m <= _FEW_ROWS and n >= 64)
        and b.flags.f_contiguous
        and not b.flags.c_contiguous
        and a.flags.c_contiguous
    )


def _swapped_product(a: Any, b: Any) -> Any:
    """``(b.T @ a.T)`` in a reused buffer (its transpose is ``a @ b``)."""
    key = (b.shape[1], a.shape[0], a.dtype.str)
    scratch = _SWAPPED_SCRATCH.get(key)
    if scratch is None or np.result_type(a, b) != scratch.dtype:
        scratch = _SWAPPED_SCRATCH[key] = np.empty(key[:2], np.result_type(a, b))
    return np.dot(b.T, a.T, out=scratch)


def _cpu_matrix_product(a: Any, b: Any) -> Any:
    """``np.dot(a, b)``; with a few rows times a transposed matrix (the output layer of one
    sentence: ``S @ V.T``), as ``(b.T @ a.T).T`` copied to C order, which OpenBLAS runs
    1.2-1.8x faster here (``_swap_pays``: the rows and columns where it was measured to pay)."""
    if _swap_pays(a, b):
        # the transposed product goes to a reused buffer (a fresh one each call would cost
        # page faults), and its C-ordered copy is the result
        return _swapped_product(a, b).T.copy()
    return np.dot(a, b)


# one buffer per shape for the transposed product above (as with fused programs' scratch
# memory, a compiled function must not run in two threads at once)
_SWAPPED_SCRATCH: dict[tuple, Any] = {}


_FEW_ROWS = 32


def _fmt(v: Variable) -> str:
    return (
        "("
        + ", ".join("?" if s is None else str(s) for s in v.type.shape)
        + (",)" if v.ndim == 1 else ")")
    )


dot_op = Dot()


def dot(x: Any, y: Any) -> Variable:
    return dot_op(x, y)


class BatchedMatMul(Op):
    """``xp.matmul`` of two tensors of rank >= 2 with the same leading (batch) shape."""

    def make_node(self, x: Any, y: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        trace = user_line()
        if x.ndim < 2 or y.ndim < 2 or x.ndim != y.ndim:
            raise GraphTypeError(
                f"batched matmul needs two tensors of the same rank >= 2, got {x.ndim} and "
                f"{y.ndim}{where(trace)}"
            )
        k1, k2 = x.type.shape[-1], y.type.shape[-2]
        if k1 is not None and k2 is not None and k1 != k2:
            raise ShapeError(f"matmul: shapes {_fmt(x)} and {_fmt(y)} not aligned{where(trace)}")
        dtype = np.result_type(x.dtype, y.dtype).name
        x = x if x.dtype == dtype else _T().cast(x, dtype)
        y = y if y.dtype == dtype else _T().cast(y, dtype)
        batch = tuple(
            a if a is not None else b for a, b in zip(x.type.shape[:-2], y.type.shape[:-2])
        )
        for a, b in zip(x.type.shape[:-2], y.type.shape[:-2]):
            if a is not None and b is not None and a != b:
                raise ShapeError(
                    f"matmul: batch shapes of {_fmt(x)} and {_fmt(y)} differ{where(trace)}"
                )
        shp = batch + (x.type.shape[-2], y.type.shape[-1])
        return Apply(self, [x, y], [TensorType(dtype, shp)])

    def make_impl(self, node, backend):
        return backend.xp.matmul

    def grad(self, inputs, output_grads):
        T = _T()
        x, y = inputs
        (gz,) = output_grads
        return [matmul(gz, T.swapaxes(y, -1, -2)), matmul(T.swapaxes(x, -1, -2), gz)]


matmul_op = BatchedMatMul()


def matmul(x: Any, y: Any) -> Variable:
    return matmul_op(x, y)


def batched_dot(x: Any, y: Any) -> Variable:
    """Theano's batched_dot: ``x[i].dot(y[i])`` for each i along the first axis."""
    T = _T()
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if x.ndim == 2 and y.ndim == 2:  # row-wise inner products
        return T.sum(x * y, axis=1)
    if y.ndim == 2:
        return matmul(x, y.dimshuffle(0, 1, "x")).dimshuffle(0, 1)
    if x.ndim == 2:
        return matmul(x.dimshuffle(0, "x", 1), y).dimshuffle(0, 2)
    return matmul(x, y)


class Contiguous(Op):
    """``x`` in C order (a copy only when it is not already): the compiler puts it on a
    transposed weight that a loop multiplies by a matrix at every step, where BLAS was measured
    up to 1.5x slower on the transposed layout than on a copy made once before the loop."""

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        return backend.xp.ascontiguousarray

    def grad(self, inputs, output_grads):
        return [output_grads[0]]


contiguous_op = Contiguous()


def contiguous(x: Any) -> Variable:
    return contiguous_op(x)
