"""Python cost of one generated-kernel launch on the CUDA backend, measured without a GPU.

A loop step on a GPU is bound by launches: each costs the device's launch latency plus the
Python that prepares it. This measures the second part for the backend's launcher
(``symgraph.launch.ElementwiseLauncher``): NumPy stands in for CuPy's allocator and the
kernel is a stub, so what is timed is the launcher's own work per call (key of the inputs'
shapes and strides, plan lookup, output allocation, argument tuple). Beside it, in the same
process and interleaved, the least any launcher must do: allocate the output and call the
kernel with a prepared argument tuple. Prints microseconds per call and the ratio.

The same for a matrix product: the backend's direct cuBLAS call (``CublasGemm``, reached through
the ``Dot`` op's device implementation) with a stub in the place of ``sgemm``, against
allocating the result and calling the stub with prepared arguments.

    python benchmarks/bench_launch.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import symgraph.tensor as T
from symgraph.backends.cupy import CublasGemm
from symgraph.launch import ElementwiseLauncher
from symgraph.ops.elemwise import Elemwise
from symgraph.rewrite import optimize


class _HostArrays:
    """NumPy in the place of CuPy: the launcher needs ``ndarray``, ``empty`` and ``asarray``."""

    ndarray = np.ndarray
    empty = staticmethod(np.empty)
    asarray = staticmethod(np.asarray)


def _stub_kernel(ks):
    def kernel(grid, block, args):
        return None

    return kernel


def launcher_for(n_inputs: int, results: int, shape=(512, 64)) -> tuple:
    """A fused node over ``n_inputs`` float32 inputs with ``results`` results (multi-output
    when more than one, as a device compiles them), its launcher, and inputs."""
    xs = [T.tensor("float32", shape, name=f"x{k}") for k in range(n_inputs)]
    value, outs = xs[0], []
    for x in xs[1:]:
        value = value * x + 1
        outs.append(value)
    outs = outs[-results:]
    _, nodes = optimize(xs, outs, "FAST_RUN", device="cuda")
    node = max((n for n in nodes if isinstance(n.op, Elemwise)), key=lambda n: len(n.inputs))
    launcher = ElementwiseLauncher(node, _HostArrays, _stub_kernel, lambda: 132)
    values = [np.ones(shape, "float32") for _ in node.inputs]
    launcher(*values)  # plans the launch
    return node, launcher, values


def floor_for(node, values):
    """The least a launch needs from Python: the outputs and one kernel call."""
    kernel = _stub_kernel(None)
    shape, n_out = values[0].shape, len(node.outputs)
    args = tuple(values) + (np.int64(values[0].size),)

    def launch():
        outs = tuple(np.empty(shape, np.float32) for _ in range(n_out))
        kernel((132,), (256,), args + outs)
        return outs

    return launch


class _Pointer:
    __slots__ = ("ptr",)

    def __init__(self, ptr: int):
        self.ptr = ptr


class _DeviceArray:
    """What a CuPy array offers the product: plain attributes (CuPy's are C-level ones)."""

    __slots__ = ("shape", "strides", "dtype", "ndim", "data", "host")

    def __init__(self, host: np.ndarray):
        self.host = host
        self.shape, self.strides, self.dtype, self.ndim = (
            host.shape, host.strides, host.dtype, host.ndim
        )  # fmt: skip
        self.data = _Pointer(host.ctypes.data)

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return _DeviceArray(self.host.T)


class _DeviceXp:
    """The two names a device product needs from CuPy."""

    @staticmethod
    def empty(shape, dtype):
        return _DeviceArray(np.empty(shape, dtype))

    dot = None  # never reached: the direct call takes these layouts


def product_case(n: int = 64, k: int = 512, m: int = 1536):
    """A loop step's product (activations times a transposed weight) through ``Dot``'s device
    implementation and the direct cuBLAS call with a stub routine; and the floor."""
    from symgraph.ops.blas import _DeviceProduct

    gemm = CublasGemm.__new__(CublasGemm)  # its state, without a device
    stub = lambda *args: None  # noqa: E731
    gemm.handle = lambda: 1
    gemm.routines = {np.dtype("float32"): stub}
    gemm.constants = {(np.dtype("float32"), v): np.array(v, "float32") for v in (0.0, 1.0)}
    gemm.plans = {}
    product = _DeviceProduct(_DeviceXp, "float32", gemm)
    a = _DeviceArray(np.ones((n, k), "float32"))
    w = _DeviceArray(np.ones((m, k), "float32")).T
    one, zero = gemm.constants.values()
    args = (0, 1, m, n, k, one.ctypes.data, w.data.ptr, k, a.data.ptr, k, zero.ctypes.data)

    def floor():
        c = _DeviceXp.empty((n, m), "float32")
        stub(gemm.handle(), *args, c.data.ptr, m)
        return c

    product(a, w)  # plans the layout
    return (lambda: product(a, w)), floor


def _bound(entry, values):
    def call():
        return entry(*values)

    return call


def per_call_us(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few calls (a smoke test)")
    args = ap.parse_args(argv)
    calls, rounds = (200, 3) if args.quick else (20000, 7)
    print(f"{'inputs':>6} {'results':>7} {'launcher us':>12} {'floor us':>9} {'ratio':>6}")
    for n_inputs, results in ((2, 1), (5, 1), (9, 1), (9, 4)):
        node, launcher, values = launcher_for(n_inputs, results)
        entry = getattr(launcher, "entry", launcher)  # what the linker calls
        call = _bound(entry, values)
        floor = floor_for(node, values)
        ours, least = [], []
        for _ in range(rounds):  # interleaved: drift on a shared machine hits both
            ours.append(per_call_us(call, calls))
            least.append(per_call_us(floor, calls))
        a, b = statistics.median(ours), statistics.median(least)
        print(f"{len(node.inputs):>6} {len(node.outputs):>7} {a:>12.2f} {b:>9.2f} {a / b:>6.2f}")
    ours_fn, floor_fn = product_case()
    ours, least = [], []
    for _ in range(rounds):
        ours.append(per_call_us(ours_fn, calls))
        least.append(per_call_us(floor_fn, calls))
    a, b = statistics.median(ours), statistics.median(least)
    print(f"{'matrix product (direct cuBLAS)':>14} {a:>12.2f} {b:>9.2f} {a / b:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
