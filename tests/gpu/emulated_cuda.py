"""The CUDA part of the emulated CuPy (``emulated_cupy``): the device, the runtime, and
``RawKernel``, which compiles the generated CUDA source for the host under ``codegen.HOST_SHIM``
and checks that every argument has exactly the kernel parameter's type."""

from __future__ import annotations

import ctypes
import re
from typing import Any

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
