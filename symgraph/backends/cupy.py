"""The CuPy backend (CUDA). This is the only module that imports CuPy, and it does so lazily."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..launch import ElementwiseLauncher  # noqa: F401 - the backend's launcher, also named here

_probe_result: tuple[bool, str] | None = None


def probe() -> tuple[bool, str]:
    """(True, '') when CuPy imports and a CUDA device answers, else (False, why). Cached."""
    global _probe_result
    if _probe_result is None:
        _probe_result = _probe()
    return _probe_result


def _probe() -> tuple[bool, str]:
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed (pip install 'symgraph[cuda]')"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError without a driver
        return False, f"no CUDA device answered ({type(e).__name__}: {e})"
    if n == 0:
        return False, "CuPy found no CUDA device"
    try:  # fused kernels are compiled at run time: NVRTC must load (it is not in the CuPy wheel)
        cupy.cuda.nvrtc.getVersion()
    except Exception as e:
        return False, f"NVRTC could not be loaded ({type(e).__name__}: {e}); {_INSTALL_HINT}"
    return True, ""


_INSTALL_HINT = (
    "install the CUDA run-time pieces CuPy needs: pip install 'symgraph[cuda]' "
    "(cupy-cuda13x[ctk]) or pip install nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cublas"
)


class CupyBackend:
    name = "cuda"

    def __init__(self) -> None:
        import cupy
        import cupyx

        self.xp = cupy
        self._cupyx = cupyx
        self._kernels: dict[str, Any] = {}
        self._blocks: int | None = None
        # c = alpha * a @ b + beta * c as one cuBLAS call (None: products use cupy.dot); made
        # and checked here, before any function runs
        self.gemm: CublasGemm | None = CublasGemm.checked(cupy)

    def to_device(self, a: Any) -> Any:
        return self.xp.asarray(a)

    @staticmethod
    def to_host(a: Any) -> Any:
        return a.get() if hasattr(a, "get") else a

    def synchronize(self) -> None:
        """Wait for the device's queued work (``profile_sync`` times each node with it)."""
        self.xp.cuda.Device().synchronize()

    def scatter_add(self, out: Any, idx: Any, values: Any) -> None:
        self._cupyx.scatter_add(out, idx, values)

    # -- matrix products: one cuBLAS call each ---------------------------------------------

    def gemm_into(self, out: Any, alpha: Any, x: Any, y: Any) -> bool:
        """``out += alpha * x @ y`` (the ``Gemm`` op: an SGD step of a weight) as one call."""
        return self.gemm is not None and self.gemm(out, alpha, x, y, 1.0)

    # -- generated elementwise kernels ------------------------------------------------------

    def make_elemwise_kernel(self, node: Any) -> Callable[..., Any] | None:
        """One generated kernel for an Elemwise node (fused or not); None if it has dtypes
        the code generator does not handle (the node then runs on CuPy's ufuncs)."""
        from .. import codegen

        if not codegen.renderable(node):
            return None
        return ElementwiseLauncher(node, self.xp, self.compile_kernel, self._max_blocks)

    def compile_kernel(self, ks: Any) -> Callable[..., Any]:
        """A RawKernel for the rendered source, compiled now (cached by source digest)."""
        kernel = self._kernels.get(ks.digest)
        if kernel is not None:
            return kernel
        from ..errors import SymgraphError

        kernel = self.xp.RawKernel(ks.source, ks.name)
        try:
            kernel.compile()
        except Exception as e:
            raise SymgraphError(
                f"compiling the CUDA kernel {ks.name} failed ({type(e).__name__}: {e}).\n"
                f"If a library or the CUDA headers are missing: {_INSTALL_HINT}.\n"
                f"Set symgraph.config.print_kernels = True to see the source."
            ) from None
        self._kernels[ks.digest] = kernel
        return kernel

    def _max_blocks(self) -> int:
        if self._blocks is None:
            sms = self.xp.cuda.Device().attributes["MultiProcessorCount"]
            self._blocks = 32 * int(sms)  # enough resident blocks; the loop strides over the rest
        return self._blocks

    def __repr__(self) -> str:
        return "CupyBackend()"


# cuBLAS's operation codes (cublasOperation_t)
_OP_N, _OP_T = 0, 1
_INT_MAX = 2**31 - 1


class CublasGemm:
    """Products through cuBLAS's ``sgemm``/``dgemm`` directly.

    ``cupy.dot`` checks, reshapes, views and converts its operands in several layers before it
    reaches cuBLAS; a loop step calls a product or two per time step, so a GPU that is waiting
    for the host waits for those layers. This class reads the operands' layouts (pointer,
    strides) and calls the routine itself. cuBLAS is column-major: a row-major ``c = a @ b`` is
    the column-major ``c.T = b.T @ a.T``, and each operand is handed over as whichever of
    itself and its transpose cuBLAS can read in place, so nothing is copied.
    """

    def __init__(self, xp: Any) -> None:
        self.handle = xp.cuda.device.get_cublas_handle
        cublas = xp.cuda.cublas  # loads libcublas: an ImportError when it is not installed
        self.routines = {np.dtype("float32"): cublas.sgemm, np.dtype("float64"): cublas.dgemm}
        # alpha and beta are read from host memory during the call (cuBLAS's host pointer mode)
        self.constants = {(dt, v): np.array(v, dt) for dt in self.routines for v in (0.0, 1.0)}
        self.plans: dict[tuple, tuple | bool] = {}  # per layout of the operands and result

    @classmethod
    def checked(cls, xp: Any) -> CublasGemm | None:
        """One, after a small product through it agreed with ``cupy.dot`` (transposed operands
        and an accumulating beta included); None, with one line on stderr, if it did not."""
        try:
            gemm = cls(xp)
            rng = np.random.default_rng(0)
            a = xp.asarray(rng.standard_normal((3, 5)).astype("float32"))
            b = xp.asarray(rng.standard_normal((4, 5)).astype("float32")).T  # F-ordered
            c = xp.asarray(rng.standard_normal((3, 4)).astype("float32"))
            want = 2 * xp.dot(a, b) + c
            if not gemm(c, 2.0, a, b, 1.0):
                raise RuntimeError("it declined a C-ordered and a transposed operand")
            if not np.allclose(c.get(), want.get(), rtol=1e-4, atol=1e-5):
                raise RuntimeError("its result differs from cupy.dot's")
            return gemm
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
            print(f"symgraph: matrix products go through cupy.dot ({why})", file=sys.stderr)
            return None

    def __call__(
        self, c: Any, alpha: float, a: Any, b: Any, beta: float, fresh: bool = False
    ) -> bool:
        """``fresh``: ``c`` was just allocated, so it cannot overlap an operand."""
        key = (a.shape, a.strides, b.shape, b.strides, c.shape, c.strides, a.dtype, b.dtype,
               c.dtype)  # fmt: skip
        plan = self.plans.get(key)
        if plan is None:  # the layout arithmetic, once per layout
            plan = self.plans[key] = self._plan(a, b, c)
        if plan is False:
            return False
        routine, op_b, op_a, m, n, k, ldb, lda, ldc, constants, spans = plan
        pa, pb, pc = a.data.ptr, b.data.ptr, c.data.ptr
        if not fresh:  # the result must not overwrite an operand as it reads it
            (a0, a1), (b0, b1), (c0, c1) = spans
            if (pc + c0 < pa + a1 and pa + a0 < pc + c1) or (
                pc + c0 < pb + b1 and pb + b0 < pc + c1
            ):
                return False
        # alpha and beta: addresses of host values, read during the call
        alpha, beta = float(alpha), float(beta)  # a 0-d host array is no dictionary key
        al, be = constants.get(alpha), constants.get(beta)
        if al is None or be is None:
            values = np.array([alpha, beta], c.dtype)  # a local: alive until the call returns
            al, be = values.ctypes.data, values.ctypes.data + values.itemsize
        routine(self.handle(), op_b, op_a, m, n, k, al, pb, ldb, pa, lda, be, pc, ldc)
        return True

    def _plan(self, a: Any, b: Any, c: Any) -> tuple | bool:
        """(routine, cuBLAS's arguments but the pointers, the constants' addresses) for these
        layouts; False when cuBLAS cannot read one of them in place."""
        dtype = c.dtype
        routine = self.routines.get(dtype)
        if routine is None or a.dtype != dtype or b.dtype != dtype or a.ndim > 2 or b.ndim > 2:
            return False
        if c.ndim != a.ndim + b.ndim - 2 or c.ndim == 0:
            return False
        # vectors as matrices, as dot reads them: a as one row, b as one column
        sa, sb, sc = _matrix(a, row=True), _matrix(b, row=False), _matrix(c, row=a.ndim == 1)
        if sa is None or sb is None or sc is None:
            return False
        (n, k), (k2, m) = sa[0], sb[0]
        if k != k2 or sc[0] != (n, m) or 0 in (n, m, k) or max(n, m, k) > _INT_MAX:
            return False
        # c.T (m x n), column-major with leading dimension ldc: c's rows must be contiguous
        ldc = _leading(sc, transposed=False)
        op_b, ldb = _operand(sb)
        op_a, lda = _operand(sa)
        if ldc is None or op_b is None or op_a is None:
            return False
        constants = {v: self.constants[dtype, v].ctypes.data for v in (0.0, 1.0)}
        spans = (_span(a), _span(b), _span(c))
        return routine, op_b, op_a, m, n, k, ldb, lda, ldc, constants, spans


def _matrix(x: Any, row: bool) -> tuple | None:
    """(shape, strides in elements) of ``x`` as a matrix; a vector as one row or one column.
    The stride of a length-1 axis is never read, so it is left out (None). None: misaligned."""
    size = x.dtype.itemsize
    if any(s % size for s in x.strides):
        return None
    st = tuple(s // size for s in x.strides)
    shape, strides = (x.shape, st) if x.ndim == 2 else (
        ((1, x.shape[0]), (None, st[0])) if row else ((x.shape[0], 1), (st[0], None))
    )  # fmt: skip
    return shape, tuple(None if n == 1 else s for n, s in zip(shape, strides))


def _leading(mat: tuple, transposed: bool) -> int | None:
    """The leading dimension under which cuBLAS reads the transpose of row-major ``mat``
    (``transposed=False``: its rows are contiguous) or ``mat`` itself (``transposed=True``:
    its columns are), or None when its strides do not allow that."""
    (r, c), (s0, s1) = mat
    if transposed:
        r, c, s0, s1 = c, r, s1, s0
    if s1 not in (None, 1):
        return None
    ld = max(c, 1) if s0 is None else s0
    return ld if max(c, 1) <= ld <= _INT_MAX else None


def _operand(mat: tuple) -> tuple[int | None, int | None]:
    """(op, leading dimension) under which cuBLAS reads the transpose of ``mat``."""
    ld = _leading(mat, transposed=False)
    if ld is not None:
        return _OP_N, ld  # row-major: its memory is its transpose, column-major
    ld = _leading(mat, transposed=True)
    if ld is not None:
        return _OP_T, ld  # column-major: cuBLAS transposes it
    return None, None


def _span(x: Any) -> tuple[int, int]:
    """The bytes ``x`` reaches, relative to its first element's address: [start, end)."""
    lo = hi = 0
    for n, s in zip(x.shape, x.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + x.dtype.itemsize


_backend: CupyBackend | None = None
_warned = False


def get_backend(required: bool) -> CupyBackend | None:
    global _backend, _warned
    ok, why = probe()
    if not ok:
        if required:
            from ..errors import SymgraphError

            raise SymgraphError(f"device='cuda' was requested but {why}")
        if not _warned:
            print(f"symgraph: using the CPU ({why})", file=sys.stderr)
            _warned = True
        return None
    if _backend is None:
        _backend = CupyBackend()
    return _backend
