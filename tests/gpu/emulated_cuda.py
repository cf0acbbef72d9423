"""The CUDA part of the emulated CuPy (``emulated_cupy``): the device, the runtime, and
``RawKernel``, which compiles the generated CUDA source for the host under ``codegen.HOST_SHIM``
and checks that every argument has exactly the kernel parameter's type."""

from __future__ import annotations

import ctypes
import re
from typing import Any
from weakref import ref

import numpy as np
from emulated_cupy import _UNSUPPORTED, _count, ndarray


class CUDARuntimeError(RuntimeError):
    pass


class Device:
    MULTIPROCESSORS = 2  # few blocks, so the grid-stride loops run more than once per thread

    def __init__(self, device: int = 0) -> None:
        self.id = device
        self.attributes = {"MultiProcessorCount": self.MULTIPROCESSORS}
        self.compute_capability = "90"

    def synchronize(self) -> None:
        _count("syncs")

    def use(self) -> None:
        pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Runtime:
    CUDARuntimeError = CUDARuntimeError

    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802 - CuPy's name
        return 1

    @staticmethod
    def getDeviceProperties(device: int) -> dict:  # noqa: N802
        return {"name": b"emulated CUDA device (CPU)", "multiProcessorCount": 2, "major": 9}


class NvrtcVersion:
    @staticmethod
    def getVersion() -> tuple[int, int]:  # noqa: N802
        return (13, 0)


_CTYPES = {
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
    "int": (ctypes.c_int, np.int32),
    "long long": (ctypes.c_longlong, np.int64),
    "unsigned int": (ctypes.c_uint, np.uint32),
    "bool": (ctypes.c_bool, np.bool_),
    "signed char": (ctypes.c_byte, np.int8),
    "unsigned char": (ctypes.c_ubyte, np.uint8),
}


class RawKernel:
    """The generated CUDA source compiled for the host under ``codegen.HOST_SHIM`` and launched
    over a host grid, with CuPy's launch signature ``kernel(grid, block, args)``."""

    def __init__(self, code: str, name: str, options: tuple = (), **kwargs: Any) -> None:
        self.code, self.name, self.options = code, name, options
        self._run: Any = None
        self.params = _kernel_params(code, name)

    def compile(self, log_stream: Any = None) -> None:
        if self._run is None:
            from gpu_harness import host_library

            from symgraph import codegen

            ks = codegen.KernelSource(self.name, self.code, self.params, (), 0)
            self._run = getattr(host_library([ks]), f"run_{self.name}")
            _count("compiles")

    def __call__(self, grid: tuple, block: tuple, args: tuple, **kwargs: Any) -> None:
        self.compile()
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        c_args = [_c_argument(self.name, p, a) for p, a in zip(self.params, args)]
        _count("launches")
        _count("kernels")
        self._run(ctypes.c_int(int(grid[0])), ctypes.c_int(int(block[0])), *c_args)


def _kernel_params(code: str, name: str) -> tuple[tuple[str, str], ...]:
    m = re.search(
        r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(name) + r"\s*\(([^)]*)\)", code
    )
    if m is None:
        raise ValueError(f'no extern "C" __global__ function {name!r} in the kernel source')
    params = []
    for p in m.group(1).split(","):
        p = " ".join(p.replace("*", " * ").replace("__restrict__", "").split())
        ctype, pname = p.rsplit(" ", 1)
        params.append((ctype.replace(" *", "*").replace("const ", ""), pname))
    return tuple(params)


def _c_argument(kernel: str, param: tuple[str, str], value: Any) -> Any:
    ctype, pname = param
    where = f"kernel {kernel}, parameter {ctype} {pname}"
    if ctype.endswith("*"):
        if not isinstance(value, ndarray):
            raise TypeError(f"{where}: expects a device array, got {type(value).__name__}")
        want = _CTYPES[ctype[:-1].strip()][1]
        if value.dtype != want:
            raise TypeError(f"{where}: got a {value.dtype} array")
        return ctypes.c_void_p(value._a.ctypes.data)
    if isinstance(value, np.ndarray):  # CuPy passes only scalars by value
        raise TypeError(f"{where}: " + _UNSUPPORTED.format(type(value)))
    c_type, want = _CTYPES[ctype]
    have = np.asarray(value).dtype if isinstance(value, (np.generic, ndarray)) else None
    if isinstance(value, ndarray):
        raise TypeError(f"{where}: a device array passed by value")
    if have is None:  # a Python scalar: CuPy passes int as int64 and float as float64
        have = np.dtype(np.int64) if isinstance(value, int) else np.dtype(np.float64)
    if have != want:
        raise TypeError(f"{where}: got a {have} scalar, which the GPU would misread")
    return c_type(value.item() if isinstance(value, np.generic) else value)


class DevicePointer:
    """``ndarray.data``: CuPy's MemoryPointer, reduced to ``ptr`` (the first element's address).
    It remembers the allocation it points into, so the emulated cuBLAS can refuse an address
    that is not device memory and a call that would read or write past an allocation."""

    def __init__(self, a: np.ndarray) -> None:
        self.ptr = a.ctypes.data
        root = a
        while isinstance(root.base, np.ndarray):
            root = root.base
        if len(_ALLOCATIONS) > 10_000:  # forget the freed ones
            for ptr in [p for p, (_, _, alive) in _ALLOCATIONS.items() if alive() is None]:
                del _ALLOCATIONS[ptr]
        _ALLOCATIONS[self.ptr] = (root.ctypes.data, root.ctypes.data + root.nbytes, ref(root))


# pointer handed out -> (first byte, end, the memory while it lives)
_ALLOCATIONS: dict[int, tuple[int, int, Any]] = {}


class CUBLASError(RuntimeError):
    pass


class Cublas:
    """``cupy.cuda.cublas`` (CuPy's binding of cuBLAS), its ``sgemm``/``dgemm`` run by the
    host's BLAS through the same column-major Fortran interface (SciPy's ``cython_blas``), on
    the arrays' own memory: leading dimensions, transposes and pointers are taken exactly as
    cuBLAS takes them, and what cuBLAS refuses is refused."""

    CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
    HANDLE = 0x5EED

    def __init__(self) -> None:
        self._routines: dict[str, Any] = {}

    def sgemm(self, *args: Any) -> None:
        self._gemm("sgemm", np.float32, *args)

    def dgemm(self, *args: Any) -> None:
        self._gemm("dgemm", np.float64, *args)

    def _gemm(self, name: str, dtype: Any, handle: int, transa: int, transb: int, m: int,
              n: int, k: int, alpha: int, a: int, lda: int, b: int, ldb: int, beta: int,
              c: int, ldc: int) -> None:  # fmt: skip
        if handle != self.HANDLE:
            raise CUBLASError(f"{name}: not a handle from cupy.cuda.device.get_cublas_handle()")
        if transa not in (0, 1) or transb not in (0, 1) or min(m, n, k) < 0:
            raise CUBLASError(f"{name}: CUBLAS_STATUS_INVALID_VALUE (op or size)")
        rows_a, cols_a = (m, k) if transa == 0 else (k, m)
        rows_b, cols_b = (k, n) if transb == 0 else (n, k)
        size = np.dtype(dtype).itemsize
        for what, ptr, rows, cols, ld in (("A", a, rows_a, cols_a, lda),
                                          ("B", b, rows_b, cols_b, ldb),
                                          ("C", c, m, n, ldc)):  # fmt: skip
            if ld < max(1, rows):
                raise CUBLASError(f"{name}: CUBLAS_STATUS_INVALID_VALUE (ld{what.lower()}={ld})")
            _check_device_span(name, what, ptr, ((cols - 1) * ld + rows) * size)
        fn = self._routines.get(name) or self._routines.setdefault(name, _fortran_blas(name))
        ints = [ctypes.c_int(v) for v in (m, n, k, lda, ldb, ldc)]
        ops = [ctypes.c_char(b"NT"[t]) for t in (transa, transb)]
        r = ctypes.byref
        fn(r(ops[0]), r(ops[1]), r(ints[0]), r(ints[1]), r(ints[2]), alpha, a, r(ints[3]),
           b, r(ints[4]), beta, c, r(ints[5]))  # fmt: skip
        _count("kernels")
        _count("cublas")


def get_cublas_handle() -> int:
    return Cublas.HANDLE


def _check_device_span(routine: str, what: str, ptr: int, nbytes: int) -> None:
    lo, hi, alive = _ALLOCATIONS.get(ptr, (0, 0, lambda: None))
    if alive() is None:
        raise CUBLASError(f"{routine}: {what} is not the data.ptr of a device array")
    if not lo <= ptr <= ptr + nbytes <= hi:
        raise CUBLASError(f"{routine}: {what} would reach past its device allocation")


def _fortran_blas(name: str) -> Any:
    """SciPy's Fortran-interface BLAS routine ``name`` as a ctypes function (every argument
    by reference)."""
    from scipy.linalg import cython_blas

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    capsule = cython_blas.__pyx_capi__[name]
    address = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(address)
