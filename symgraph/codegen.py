"""CUDA C++ source for elementwise nodes: one readable kernel per fused program.

An ``Elemwise`` node (a single scalar op, or a ``Composite`` fused program) becomes one
``extern "C" __global__`` kernel with a grid-stride loop. Each input is passed in one of five ways,
chosen per call from the arrays' shapes and strides by :func:`plan_launch`:

- ``'c'``: contiguous with the output's shape, read at the output's flat index ``i``;
- ``'s'``: a single element (any broadcast scalar), read once before the loop;
- ``'g'``: general, read at ``sum(coord[d] * stride[d])`` with per-input element strides (0 on
  broadcast axes), the coordinates coming from ``i`` and the (collapsed) output shape;
- ``'k'``: a constant inlined into the source as a literal (scalar ``Constant`` inputs);
- ``'v'``: a host scalar passed by value as a kernel argument (a learning rate, a size computed
  on the host), so it never needs a copy to device memory.

A kernel without ``'g'`` inputs is "flat" and does no index arithmetic at all. The source is plain
C-compatible C++ (overloaded math functions, a few helpers in the preamble), so the same text
compiles with NVRTC/nvcc for the GPU and, under a small stand-in header (:data:`HOST_SHIM`), with
the host C++ compiler for tests. This module imports no CuPy.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import config
from .launch import LaunchPlan, plan_launch  # noqa: F401 - part of this module's interface
from .ops import scalar as S
from .ops.composite import Composite, StepInfo, single

PREAMBLE = r"""#ifndef SYMGRAPH_KERNEL_PREAMBLE
#define SYMGRAPH_KERNEL_PREAMBLE
// Helpers the scalar table's C templates use. NaN-propagating max/min like NumPy's maximum/minimum.
template <class T> __device__ __forceinline__ T max_(T a, T b) {
    return (a >= b || a != a) ? a : b;
}
template <class T> __device__ __forceinline__ T min_(T a, T b) {
    return (a <= b || a != a) ? a : b;
}
template <class T> __device__ __forceinline__ T sgn(T x) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);  // NaN and zeros come back unchanged
}
template <class T> __device__ __forceinline__ T invert_(T x) { return ~x; }
__device__ __forceinline__ bool invert_(bool x) { return !x; }
// Integer floor division and modulo with Python's signs; NumPy gives 0 for a zero divisor.
template <class T> __device__ __forceinline__ T floor_div(T a, T b) {
    if (b == T(0)) return T(0);
    T q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? T(q - 1) : q;
}
template <class T> __device__ __forceinline__ T py_mod(T a, T b) {
    if (b == T(0)) return T(0);
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
}
// Floating floor division and modulo: NumPy's npy_divmod, step for step.
template <class F> __device__ __forceinline__ F divmod_(F a, F b, F* mod_out) {
    F mod = fmod(a, b);
    if (b == F(0)) { *mod_out = mod; return a / b; }
    F div = (a - mod) / b;
    if (mod != F(0)) {
        if ((b < F(0)) != (mod < F(0))) { mod += b; div -= F(1); }
    } else {
        mod = copysign(F(0), b);
    }
    F floordiv;
    if (div != F(0)) {
        floordiv = floor(div);
        if (div - floordiv > F(0.5)) floordiv += F(1);
    } else {
        floordiv = copysign(F(0), a / b);
    }
    *mod_out = mod;
    return floordiv;
}
__device__ __forceinline__ float floor_div(float a, float b) { float m; return divmod_(a, b, &m); }
__device__ __forceinline__ double floor_div(double a, double b) {
    double m;
    return divmod_(a, b, &m);
}
__device__ __forceinline__ float py_mod(float a, float b) { float m; divmod_(a, b, &m); return m; }
__device__ __forceinline__ double py_mod(double a, double b) {
    double m;
    divmod_(a, b, &m);
    return m;
}
// Integer power by squaring (NumPy raises on a negative integer exponent; here it gives 0).
template <class T> __device__ __forceinline__ T ipow_(T a, T b) {
    if (b < T(0)) return (a == T(1) || a == T(-1)) ? ((b % 2 == 0) ? T(1) : a) : T(0);
    T r = T(1);
    while (b) { if (b & 1) r *= a; a *= a; b >>= 1; }
    return r;
}
#endif
"""

# Stand-in for the CUDA built-ins, so that the exact kernel source compiles as host C++ (tests).
HOST_SHIM = r"""#include <math.h>
#include <stdlib.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct sg_dim3 { unsigned int x, y, z; };
static sg_dim3 threadIdx, blockIdx, blockDim, gridDim;
"""

LAYOUTS = ("c", "s", "g", "k", "v")
_COMPARISONS = {"lt", "le", "gt", "ge", "eq", "neq"}


@dataclass(frozen=True)
class KernelSource:
    """A rendered kernel: its name, complete source, and parameter list ``(C type, name)``."""

    name: str
    source: str
    params: tuple[tuple[str, str], ...]
    layouts: tuple[str, ...]
    ndim: int  # 0 for a flat kernel

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()[:16]


def ctype(dtype: str) -> str:
    try:
        return S.C_TYPES[np.dtype(dtype).name]
    except KeyError:
        raise NotImplementedError(f"no C type for dtype {dtype}") from None


def literal(value: Any, dtype: str) -> str:
    """``value`` as a C literal of ``dtype``'s C type (float32 stays float: ``0.9f``)."""
    d = np.dtype(dtype)
    v = np.asarray(value, dtype=d).item()
    if d.kind == "b":
        return "true" if v else "false"
    if d.kind == "f":
        if not math.isfinite(v):
            raise ValueError(f"cannot inline non-finite constant {v}")
        if d == np.float32:
            text = np.format_float_positional(np.float32(v), unique=True, trim="0") + "f"
        else:
            text = repr(float(v))
        if "." not in text and "e" not in text:  # 1f is not C; 1.0f is
            text = text.replace("f", ".0f") if d == np.float32 else text + ".0"
    else:
        text = str(int(v))
        if d.name == "int64":
            text += "LL"
        elif d.name == "uint64":
            text += "ULL"
        elif d.name == "uint32":
            text += "u"
        elif d.name != "int32":
            return f"(({ctype(d.name)}){text})"
    return f"({text})" if text.startswith("-") else text


def kernel_base_name(composite: Composite, single_op: bool = False) -> str:
    if single_op:
        return "elemwise_" + composite.steps[0][0].name.strip("_")
    return composite.name


def render_kernel(
    composite: Composite,
    layouts: Sequence[str],
    ndim: int = 0,
    literals: dict[int, Any] | None = None,
    index_type: str = "long long",
    name: str | None = None,
) -> KernelSource:
    """Render ``composite`` as one kernel for inputs passed as ``layouts`` (see module doc).

    ``ndim``: number of output dimensions the ``'g'`` inputs are indexed over (0 when there are
    none). ``literals``: value of each ``'k'`` input. ``index_type``: C type of the coordinate
    arithmetic (``int`` is faster on GPUs; use it when every index fits).
    """
    layouts = tuple(layouts)
    literals = dict(literals or {})
    if len(layouts) != composite.nin or any(lay not in LAYOUTS for lay in layouts):
        raise ValueError(f"layouts must be {composite.nin} of {LAYOUTS}, got {layouts}")
    if ("g" in layouts) != (ndim > 0):
        raise ValueError("ndim > 0 exactly when some input is strided ('g')")
    key = (composite, layouts, ndim, tuple(sorted(literals.items())), index_type, name)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    ks = _render(composite, layouts, ndim, literals, index_type, name)
    _CACHE[key] = ks
    if config.print_kernels:
        print(f"symgraph: kernel {ks.name} ({ks.digest})\n{ks.source}", file=sys.stderr)
    return ks


_CACHE: dict[tuple, KernelSource] = {}


def _render(
    c: Composite,
    layouts: tuple[str, ...],
    ndim: int,
    literals: dict[int, Any],
    index_type: str,
    name: str | None,
) -> KernelSource:
    dtypes = c.value_dtypes()
    # a single result is written to ``out``; several (a multi-output program) to out0, out1...
    out_names = ["out"] if c.nout == 1 else [f"out{r}" for r in range(c.nout)]
    if name is None:
        name = c.name + (f"_strided{ndim}" if ndim else "")
    params: list[tuple[str, str]] = []
    for k, lay in enumerate(layouts):
        if lay == "v":
            params.append((ctype(c.input_dtypes[k]), f"x{k}"))
        elif lay != "k":
            params.append((f"const {ctype(c.input_dtypes[k])}* __restrict__", f"x{k}"))
    for o, oname in zip(c.outputs, out_names):
        params.append((f"{ctype(dtypes[o])}* __restrict__", oname))
    params.append(("long long", "n"))
    params += [("long long", f"d{d}") for d in range(ndim)]
    for k, lay in enumerate(layouts):
        if lay == "g":
            params += [("long long", f"x{k}_s{d}") for d in range(ndim)]

    body: list[str] = []
    pre: list[str] = []
    names: list[str] = []  # C expression of every value
    for k, lay in enumerate(layouts):
        ct = ctype(c.input_dtypes[k])
        if lay == "k":
            names.append(literal(literals[k], c.input_dtypes[k]))
        elif lay == "v":
            names.append(f"x{k}")
        elif lay == "s":
            pre.append(f"const {ct} a{k} = x{k}[0];")
            names.append(f"a{k}")
        elif lay == "c":
            body.append(f"const {ct} a{k} = x{k}[i];")
            names.append(f"a{k}")
        else:
            offset = " + ".join(f"i{d} * x{k}_t{d}" for d in range(ndim))
            body.append(f"const {ct} a{k} = x{k}[{offset}];")
            names.append(f"a{k}")
    needed = set(c.needed_steps())
    for j, info in enumerate(c.infos):
        if j not in needed:
            names.append("")
            continue
        expr = _step_expr(info, [names[a] for a in info.args], [dtypes[a] for a in info.args])
        body.append(f"const {ctype(info.dtype)} v{c.nin + j} = {expr};  // {info.op.name}")
        names.append(f"v{c.nin + j}")
    body += [f"{oname}[i] = {names[o]};" for o, oname in zip(c.outputs, out_names)]

    idx: list[str] = []
    if ndim:
        it = index_type
        pre += [f"const {it} D{d} = ({it})d{d};" for d in range(1, ndim)]
        for k, lay in enumerate(layouts):
            if lay == "g":
                pre += [f"const {it} x{k}_t{d} = ({it})x{k}_s{d};" for d in range(ndim)]
        idx.append(f"{it} r = ({it})i;")
        for d in range(ndim - 1, 0, -1):
            idx.append(f"const {it} i{d} = r % D{d}; r /= D{d};")
        idx.append(f"const {it} i0 = r;")

    sig = ",\n    ".join(f"{t} {n}" for t, n in params)
    formula = c.formula([names[k] if layouts[k] == "k" else f"x{k}" for k in range(c.nin)])
    lines = [
        PREAMBLE,
        f"// {name}: {', '.join(out_names)} = {formula}",
        f'extern "C" __global__ void {name}(\n    {sig})',
        "{",
        *[f"    {line}" for line in pre],
        "    const long long step = (long long)blockDim.x * gridDim.x;",
        "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; "
        "i += step) {",
        *[f"        {line}" for line in idx + body],
        "    }",
        "}",
        "",
    ]
    return KernelSource(name, "\n".join(lines), tuple(params), layouts, ndim)


def _step_expr(info: StepInfo, args: list[str], arg_dtypes: list[str]) -> str:
    """One step as a C expression computing like NumPy: arguments converted to the dtype NumPy
    computes in, the table's template applied, the result converted to the step's dtype."""
    op = info.op
    comp = info.compute_dtype
    if op.name in _COMPARISONS:
        target = S.upcast(*arg_dtypes)  # NumPy compares in the common dtype
        args = [_convert(a, d, target) for a, d in zip(args, arg_dtypes)]
    elif op.name in ("isnan", "isinf"):
        args = [
            _convert(a, d, "float64") if not S.is_float(d) else a for a, d in zip(args, arg_dtypes)
        ]
    elif op.name == "switch":
        args = [args[0]] + [_convert(a, d, comp) for a, d in zip(args[1:], arg_dtypes[1:])]
    elif not op.name.startswith("cast_"):
        args = [_convert(a, d, comp) for a, d in zip(args, arg_dtypes)]
    if op.name in ("floor", "ceil", "round") and not S.is_float(comp):
        expr = args[0]  # rounding an integer gives it back (NumPy keeps the integer dtype)
    elif op.name == "abs" and np.dtype(comp).kind in "ub":
        expr = args[0]  # NumPy's absolute of unsigned/bool is the identity; C's abs is ambiguous
    elif op.name == "pow" and not S.is_float(comp):
        expr = f"ipow_({args[0]}, {args[1]})"  # CUDA has no integer pow overload
    else:
        ct = ctype(comp)
        expr = op.c_expr(args, ct).replace(f"({ct})({ct})", f"({ct})")
    if comp != info.dtype:
        expr = f"({ctype(info.dtype)})({expr})"
    return expr


def _convert(arg: str, dtype: str, target: str) -> str:
    return arg if dtype == target else f"({ctype(target)}){arg}"


def program_of(node: Any) -> tuple[Composite, bool]:
    """The Composite an Elemwise node computes, and whether it is a single scalar op."""
    so = node.op.scalar_op
    dtypes = [v.dtype for v in node.inputs]
    if isinstance(so, Composite):
        return so.with_input_dtypes(dtypes), False
    return single(so, dtypes), True


def renderable(node: Any) -> bool:
    """Whether the code generator handles every dtype the Elemwise node's program computes in."""
    try:
        composite, _ = program_of(node)
        for d in composite.value_dtypes():
            ctype(d)
    except NotImplementedError:
        return False
    return True


def inlinable_constants(node: Any) -> dict[int, Any]:
    """Inputs of ``node`` that are one-element finite constants: rendered as C literals."""
    from .graph import Constant

    found = {}
    for k, v in enumerate(node.inputs):
        if isinstance(v, Constant) and v.data.size == 1:
            value = v.data.reshape(()).item()
            if not isinstance(value, float) or math.isfinite(value):
                found[k] = value
    return found


def render_node(node: Any, plan: LaunchPlan, literals: dict[int, Any]) -> KernelSource:
    """The kernel for an Elemwise node launched as ``plan``."""
    composite, is_single = program_of(node)
    base = kernel_base_name(composite, is_single)
    ndim = len(plan.shape)
    name = base + (f"_strided{ndim}" if ndim else "")
    return render_kernel(composite, plan.layouts, ndim, literals, plan.index_type, name)


# -- host test harness -------------------------------------------------------------------------


def render_host_harness(kernels: Sequence[KernelSource]) -> str:
    """Host C++ that compiles the kernels' exact source and runs each over a host "grid":
    ``extern "C" void run_<name>(int grid, int block, <kernel params>)``."""
    parts = [HOST_SHIM]
    for ks in kernels:
        parts.append(ks.source)
        sig = ", ".join(f"{t} {n}" for t, n in ks.params)
        call = ", ".join(n for _, n in ks.params)
        parts.append(
            f'extern "C" void run_{ks.name}(int grid, int block, {sig}) {{\n'
            "    gridDim.x = grid; blockDim.x = block; gridDim.y = gridDim.z = 1;\n"
            "    blockDim.y = blockDim.z = 1;\n"
            "    for (unsigned b = 0; b < (unsigned)grid; ++b)\n"
            "        for (unsigned t = 0; t < (unsigned)block; ++t) {\n"
            "            blockIdx.x = b; threadIdx.x = t;\n"
            f"            {ks.name}({call});\n"
            "        }\n"
            "}\n"
        )
    return "\n".join(parts)
