"""Every op of the scalar table, for every input dtype NumPy accepts, as a generated kernel: the
source compiles for sm_90 and, run on the host, agrees with the unfused NumPy ``Elemwise``.

The same single-op programs also check ``Composite.numpy`` (buffers, casts) against ``Elemwise``
bit for bit. All kernels go into one host library and one NVRTC program to keep this fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from gpu_harness import (
    CXX,
    compile_for_device,
    device_compiler,
    element_strides,
    host_library,
    run_on_host,
)

import symgraph.tensor as T
from symgraph import codegen as cg
from symgraph.backends.numpy import BACKEND
from symgraph.ops.composite import single
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.scalar import SCALAR_OPS, cast_op

DTYPES = ["float32", "float64", "int32", "int8", "bool"]
MORE_DTYPES = ["int64", "int16", "uint8", "uint32"]
GROUPS = [
    pytest.param(DTYPES, id="common-dtypes"),
    pytest.param(MORE_DTYPES, id="more-dtypes", marks=pytest.mark.slow),
]
SHAPE = (3, 7)


def _cases(dtypes):
    """(op, input dtypes) for every combination NumPy has a loop for."""
    ops = [SCALAR_OPS[n] for n in sorted(SCALAR_OPS) if not n.startswith("cast_")]
    ops += [cast_op(d) for d in DTYPES + MORE_DTYPES]
    cases = []
    for op in ops:
        for d in dtypes:
            dtypes = ("bool", d, d) if op.name == "switch" else (d,) * op.nin
            try:
                op.numpy_dtype(*dtypes)
                op.output_dtype(*dtypes)
            except TypeError:
                continue
            cases.append((op, dtypes))
    return cases


def _inputs(op, dtypes, rng):
    xs = []
    for k, d in enumerate(dtypes):
        kind = np.dtype(d).kind
        if kind == "b":
            x = rng.random(SHAPE) < 0.5
        elif kind in "iu":
            x = rng.integers(0 if kind == "u" else -5, 6, SHAPE).astype(d)
            if op.name == "pow" and k == 1:
                x = np.abs(x) % 4  # NumPy refuses negative integer powers
        else:
            x = (rng.standard_normal(SHAPE) * 2).astype(d)
            x.flat[:4] = [0.0, -0.0, 1.0, -1.0]
        xs.append(x)
    if op.name in ("int_div", "mod") and dtypes[1] != "bool":
        xs[1].flat[5] = 0  # NumPy's answers for a zero divisor
    return xs


def _reference(op, dtypes, xs):
    """The unfused Elemwise node's own NumPy implementation."""
    syms = [T.tensor(d, (None, None)) for d in dtypes]
    node = Elemwise(op).make_node(*syms)
    with np.errstate(all="ignore"):
        return np.asarray(node.op.make_impl(node, BACKEND)(*xs)), node.outputs[0].dtype


def _kernel(op, dtypes, k):
    c = single(op, dtypes)
    name = f"t{k}_{op.name.strip('_')}_{'_'.join(d for d in dtypes)}"
    return cg.render_kernel(c, ("c",) * len(dtypes), name=name)


_KERNELS: dict[tuple, list] = {}


def _cases_and_kernels(dtypes):
    cases = _cases(dtypes)
    key = tuple(dtypes)
    if key not in _KERNELS:
        _KERNELS[key] = [_kernel(op, ds, k) for k, (op, ds) in enumerate(cases)]
    return cases, _KERNELS[key]


@pytest.mark.parametrize("group", GROUPS)
def test_composite_numpy_equals_elemwise_for_every_table_op(group):
    rng = np.random.default_rng(7)
    for op, dtypes in _cases(group):
        xs = _inputs(op, dtypes, rng)
        ref, out_dtype = _reference(op, dtypes, xs)
        with np.errstate(all="ignore"):
            got = single(op, dtypes).numpy(np)(*[x.T.copy().T for x in xs])
        assert got.dtype == out_dtype == ref.dtype, (op.name, dtypes)
        np.testing.assert_array_equal(got, ref, err_msg=f"{op.name}{dtypes}")


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
@pytest.mark.parametrize("group", GROUPS)
def test_every_table_op_kernel_runs_on_host_like_numpy(group):
    cases, kernels = _cases_and_kernels(group)
    lib = host_library(kernels)
    rng = np.random.default_rng(3)
    worst = 0.0
    for (op, dtypes), ks in zip(cases, kernels):
        xs = _inputs(op, dtypes, rng)
        ref, out_dtype = _reference(op, dtypes, xs)
        plan = cg.plan_launch(SHAPE, [x.shape for x in xs], [element_strides(x) for x in xs])
        out = np.zeros(SHAPE, out_dtype)
        run_on_host(lib, ks, plan, xs, out, grid=2, block=5)
        what = f"{ks.name}: {op.name}{dtypes}"
        if np.dtype(out_dtype).kind == "f":
            tol = 4e-6 if out_dtype == "float32" else 1e-13
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol, err_msg=what)
            finite = np.isfinite(ref) & np.isfinite(out) & (np.abs(ref) > 1e-30)
            if finite.any():
                err = np.abs(out[finite] - ref[finite]) / np.abs(ref[finite])
                worst = max(worst, float(err.max()))
        else:
            np.testing.assert_array_equal(out, ref, err_msg=what)
    assert worst < 4e-6


@pytest.mark.skipif(device_compiler() is None, reason="neither NVRTC nor nvcc is available")
@pytest.mark.parametrize("group", GROUPS)
def test_every_table_op_kernel_compiles_for_sm90(group):
    # One translation unit: the preamble is guarded, kernel names are unique.
    _, kernels = _cases_and_kernels(group)
    source = "\n".join(ks.source for ks in kernels)
    cubin, log, seconds = compile_for_device(source, "scalar_table.cu")
    assert cubin[:4] == b"\x7fELF"
    assert "warning" not in log.lower(), log
    for ks in kernels:
        assert ks.name.encode() in cubin, f"kernel {ks.name} missing from the cubin"
