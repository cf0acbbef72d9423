"""Run generated CUDA kernels without a GPU: compile for sm_90 (NVRTC or nvcc) and run the exact
same source on the host under ``codegen.HOST_SHIM`` (g++), then compare with NumPy."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph import codegen as cg
from symgraph.ops.composite import Composite

CXX = shutil.which("g++") or shutil.which("c++")
NVCC = shutil.which("nvcc")
ARCH = "sm_90"
# What CuPy's RawKernel passes to NVRTC besides include paths (cupy/cuda/compiler.py, CuPy 14).
NVRTC_OPTIONS = [f"-arch={ARCH}", "--device-as-default-execution-space"]


def nvrtc_module() -> Any | None:
    """CuPy's low-level NVRTC binding when the NVRTC library loads, else None."""
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception:
        return None


def device_compiler() -> str | None:
    if nvrtc_module() is not None:
        return "nvrtc"
    if NVCC is not None:
        return "nvcc"
    return None


def compile_for_device(source: str, name: str = "kernel.cu") -> tuple[bytes, str, float]:
    """Compile ``source`` to an sm_90 cubin; returns (cubin, compiler log, seconds)."""
    nvrtc = nvrtc_module()
    t0 = time.perf_counter()
    if nvrtc is not None:
        prog = nvrtc.createProgram(source, name, [], [])
        try:
            try:
                nvrtc.compileProgram(prog, NVRTC_OPTIONS)
            except Exception as e:
                log = nvrtc.getProgramLog(prog)[:4000]
                raise AssertionError(f"NVRTC rejected {name}:\n{log}") from e
            log = nvrtc.getProgramLog(prog)
            cubin = nvrtc.getCUBIN(prog)
        finally:
            nvrtc.destroyProgram(prog)
        return cubin, log, time.perf_counter() - t0
    return compile_with_nvcc(source, name)


def compile_with_nvcc(source: str, name: str = "kernel.cu") -> tuple[bytes, str, float]:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, name)
        with open(src, "w") as f:
            f.write(source)
        out = os.path.join(d, "k.cubin")
        r = subprocess.run(
            [NVCC, f"-arch={ARCH}", "-cubin", "-o", out, src], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise AssertionError(f"nvcc rejected {name}:\n{r.stderr[:4000]}")
        with open(out, "rb") as f:
            return f.read(), r.stderr, time.perf_counter() - t0


_LIBS: dict[str, ctypes.CDLL] = {}
_BUILD_DIR = tempfile.mkdtemp(prefix="symgraph_host_kernels_")


def host_library(kernels: Sequence[cg.KernelSource]) -> ctypes.CDLL:
    """Compile the kernels' exact sources as host C++ (one shared library, cached by source)."""
    source = cg.render_host_harness(kernels)
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    if digest in _LIBS:
        return _LIBS[digest]
    base = os.path.join(_BUILD_DIR, digest)
    with open(base + ".cpp", "w") as f:
        f.write(source)
    cmd = [CXX, "-std=c++14", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unused-variable"]
    cmd += ["-Wno-unused-function", "-Wno-type-limits", "-o", base + ".so", base + ".cpp"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"host C++ compile of {base}.cpp failed:\n{r.stderr[:4000]}")
    lib = ctypes.CDLL(base + ".so")
    _LIBS[digest] = lib
    return lib


def run_on_host(
    lib: ctypes.CDLL,
    ks: cg.KernelSource,
    plan: cg.LaunchPlan,
    inputs: Sequence[np.ndarray],
    out: np.ndarray | Sequence[np.ndarray],
    grid: int = 3,
    block: int = 7,
) -> None:
    """Launch ``ks`` as the CUDA backend would (same argument list), on a host "grid".
    ``out``: the result array, or a sequence of them for a multi-output kernel."""
    args: list[Any] = []
    by_value = {"float": ctypes.c_float, "double": ctypes.c_double, "int": ctypes.c_int}
    for k, lay in enumerate(plan.layouts):
        if lay == "v":  # a host scalar, passed by value as the kernel parameter's C type
            ctype = next(t for t, n in ks.params if n == f"x{k}")
            args.append(by_value[ctype](np.asarray(inputs[k]).item()))
        elif lay != "k":
            args.append(ctypes.c_void_p(inputs[k].ctypes.data))
    for o in [out] if isinstance(out, np.ndarray) else out:
        args.append(ctypes.c_void_p(o.ctypes.data))
    args.append(ctypes.c_longlong(plan.size))
    args += [ctypes.c_longlong(n) for n in plan.shape]
    for strides in plan.strides:
        args += [ctypes.c_longlong(s) for s in strides]
    assert len(args) == len(ks.params), (ks.params, args)
    getattr(lib, f"run_{ks.name}")(ctypes.c_int(grid), ctypes.c_int(block), *args)


def element_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def run_composite_on_host(
    c: Composite,
    inputs: Sequence[Any],
    literals: dict[int, Any] | None = None,
    grid: int = 3,
    block: int = 7,
    name: str | None = None,
) -> tuple[np.ndarray, cg.KernelSource]:
    """Plan, render, host-compile and run ``c`` on ``inputs`` (``literals`` are inlined). A
    multi-output program gives a tuple of results."""
    literals = literals or {}
    arrays = [np.asarray(x, dtype=d) for x, d in zip(inputs, c.input_dtypes)]
    shape = np.broadcast_shapes(*[a.shape for a in arrays]) if arrays else ()
    plan = cg.plan_launch(
        shape,
        [a.shape for a in arrays],
        [None if k in literals else element_strides(a) for k, a in enumerate(arrays)],
    )
    ndim = len(plan.shape)
    ks = cg.render_kernel(c, plan.layouts, ndim, literals, plan.index_type, name)
    lib = host_library([ks])
    # garbage that must be overwritten
    outs = tuple(np.full(shape, 123, dtype=d) for d in c.output_dtypes())
    run_on_host(lib, ks, plan, arrays, outs, grid, block)
    return (outs[0] if c.nout == 1 else outs), ks
