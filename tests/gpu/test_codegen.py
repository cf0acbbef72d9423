"""Generated kernels, checked without a GPU: the exact source is compiled for sm_90 (NVRTC or nvcc)
and, under a stand-in header for the CUDA built-ins, compiled with g++ and run on the host against
NumPy on fresh inputs (contiguous, broadcast, transposed, sliced and reversed)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gpu_harness import (
    CXX,
    NVCC,
    compile_for_device,
    compile_with_nvcc,
    device_compiler,
    host_library,
    run_composite_on_host,
    run_on_host,
)
from gpu_patterns import Program, non_contiguous, patterns, random_inputs

import symgraph as sg
from symgraph import codegen as cg

PATTERNS = patterns()
IDS = [p.name for p in PATTERNS]
needs_cxx = pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
needs_device_compiler = pytest.mark.skipif(
    device_compiler() is None,
    reason="neither NVRTC (pip install nvidia-cuda-nvrtc, used through CuPy) nor nvcc is available",
)
LAYOUTS = ["contiguous", "transposed", "sliced", "reversed"]


def _check(out: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert out.shape == ref.shape and out.dtype == ref.dtype, (what, out.shape, ref.shape)
    # float32 end to end: a few ulps (libm tanh/exp vs NumPy's SIMD versions, FMA contraction)
    np.testing.assert_allclose(out, ref, rtol=4e-6, atol=1e-6, err_msg=what)


@needs_cxx
def test_a_host_scalar_is_a_kernel_argument_by_value():
    # p - lr * g with lr a host number (layout 'v'): a float parameter, no pointer, no load
    prog = Program("float32", "float32", "float32")
    composite = prog.build(prog("sub", 0, prog("mul", 1, 2)))
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(5, 7)).astype("float32"), rng.normal(size=(5, 7)).astype("float32")
    lr = np.float32(0.25)
    plan = cg.plan_launch((5, 7), [(5, 7), (), (5, 7)], [(7, 1), "value", (7, 1)])
    assert plan.layouts == ("c", "v", "c")
    ks = cg.render_kernel(composite, plan.layouts, 0, {}, plan.index_type, "sgd_by_value")
    assert ("float", "x1") in ks.params and "x1[" not in ks.source
    lib = host_library([ks])
    out = np.full((5, 7), 123, "float32")
    run_on_host(lib, ks, plan, [p, lr, g], out)
    _check(out, p - lr * g, "p - lr * g with lr by value")
    if device_compiler() is not None:
        compile_for_device(ks.source, ks.name + ".cu")  # and NVRTC/nvcc take it for sm_90


@needs_cxx
@pytest.mark.parametrize("how", LAYOUTS)
@pytest.mark.parametrize("pat", PATTERNS, ids=IDS)
def test_pattern_runs_on_host_like_numpy(pat, how):
    rng = np.random.default_rng(zlib.crc32(f"{pat.name}/{how}".encode()))
    ins = random_inputs(pat, rng)
    expected = pat.reference(*ins)
    fused = pat.composite.numpy(np)(*ins)
    assert fused.dtype == pat.composite.output_dtype()
    _check(fused, expected, f"{pat.name}: Composite.numpy vs reference")
    views = [
        x if k in pat.constants or how == "contiguous" else non_contiguous(x, rng, how)
        for k, x in enumerate(ins)
    ]
    # constants both inlined as literals and passed as arrays
    for literals in (pat.constants, {}):
        out, ks = run_composite_on_host(pat.composite, views, literals)
        _check(out, expected, f"{pat.name} ({how}, literals={literals}): kernel {ks.name}")


@needs_cxx
def test_grid_stride_loop_covers_every_element_once():
    p = Program("float32", "float32")
    c = p.build(p("add", 0, 1))
    a = np.arange(1000, dtype=np.float32).reshape(40, 25)
    b = np.ones((40, 1), np.float32)
    for grid, block in [(1, 1), (3, 7), (64, 32), (5, 1000)]:
        out, _ = run_composite_on_host(c, [a.T.copy().T, b], grid=grid, block=block)
        np.testing.assert_array_equal(out, a + b)


@needs_cxx
def test_bool_int_and_mixed_dtype_programs_on_host():
    rng = np.random.default_rng(1)
    # (x > y) & (i != 0) -> bool;  floor_div/mod with negative ints;  int32 * float32 -> float64
    p = Program("float32", "float32", "int32")
    v = p("and_", p("gt", 0, 1), p("neq", 2, 2))
    c = p.build(v)
    x, y = rng.standard_normal((2, 5, 7)).astype(np.float32)
    i = rng.integers(-3, 4, (5, 7)).astype(np.int32)
    out, _ = run_composite_on_host(c, [x, y, i])
    np.testing.assert_array_equal(out, (x > y) & (i != i))

    p = Program("int32", "int32")
    c = p.build(p("add", p("int_div", 0, 1), p("mod", 0, 1)))
    a = rng.integers(-50, 50, (6, 6)).astype(np.int32)
    b = rng.integers(-7, 8, (6, 6)).astype(np.int32)
    b[b == 0] = 3
    out, _ = run_composite_on_host(c, [a, b.T])
    np.testing.assert_array_equal(out, a // b.T + a % b.T)
    assert out.dtype == np.int32

    p = Program("int32", "float32")
    c = p.build(p("tanh", p("mul", 0, 1)))  # int32 * float32 is float64 in NumPy
    a = rng.integers(-3, 4, (4, 5)).astype(np.int32)
    f = rng.standard_normal((4, 5)).astype(np.float32)
    out, ks = run_composite_on_host(c, [a, f])
    assert out.dtype == np.float64 and c.output_dtype() == "float64"
    assert "const double v2" in ks.source
    np.testing.assert_allclose(out, np.tanh(a * f), rtol=1e-12)


@needs_cxx
def test_float_floor_div_and_mod_follow_numpy_signs():
    p = Program("float32", "float32")
    c = p.build(p("mul", p("int_div", 0, 1), p("mod", 0, 1)))
    a = np.array([7.5, -7.5, 7.5, -7.5, 0.0, -0.0, 3.0, 1e-3], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, -3.0, 0.5, -4.0], np.float32)
    out, _ = run_composite_on_host(c, [a, b])
    np.testing.assert_array_equal(out, np.floor_divide(a, b) * np.remainder(a, b))


@needs_cxx
def test_nan_propagates_through_maximum_minimum_and_clip():
    p = Program("float32", "float32")
    c = p.build(p("minimum", p("maximum", 0, 1), 1))
    a = np.array([np.nan, 1, -1, np.inf, 2], np.float32)
    b = np.array([0, np.nan, 0, 0, 1], np.float32)
    out, _ = run_composite_on_host(c, [a, b])
    np.testing.assert_array_equal(out, np.minimum(np.maximum(a, b), b))


def test_kernel_source_is_readable_and_float32_throughout():
    pat = next(p for p in PATTERNS if p.name == "rmsprop_param")
    ks = cg.render_kernel(pat.composite, ("c", "s", "c", "c", "k"), literals={4: 1e-6})
    src = ks.source
    assert ks.name == "fused_mul_add_sqrt_true_div_sub"
    assert f'extern "C" __global__ void {ks.name}(' in src
    assert "1e-06f" in src or "0.000001f" in src  # a float literal, not a double
    assert "double" not in src.split("#endif")[1]  # no double arithmetic in the kernel body
    assert "sqrt((float)" in src and "x1[0]" in src
    assert "blockDim.x * gridDim.x" in src  # grid-stride loop


def test_literals_are_typed_c_constants():
    assert cg.literal(0.9, "float32") == "0.9f"
    assert cg.literal(1, "float32") == "1.0f"
    assert cg.literal(-0.5, "float32") == "(-0.5f)"
    assert cg.literal(0.1, "float64") == "0.1"
    assert cg.literal(3, "int64") == "3LL"
    assert cg.literal(-3, "int8") == "((signed char)-3)"
    assert cg.literal(True, "bool") == "true"
    with pytest.raises(ValueError):
        cg.literal(float("inf"), "float32")


def test_plan_launch_layouts_and_collapsed_axes():
    # contiguous + broadcast scalar: a flat kernel with no index arithmetic
    plan = cg.plan_launch((4, 5), [(4, 5), (), (1, 1)], [(5, 1), (), (1, 1)])
    assert plan.layouts == ("c", "s", "s") and plan.shape == () and plan.size == 20
    # a row bias broadcast over rows and a transposed input: two strided axes
    plan = cg.plan_launch((4, 5), [(5,), (4, 5)], [(1,), (1, 4)])
    assert plan.layouts == ("g", "g") and plan.shape == (4, 5)
    assert plan.strides == ((0, 1), (1, 4)) and plan.index_type == "int"
    # a sliced 3-d input whose last two axes are contiguous collapses to 2 axes
    plan = cg.plan_launch((2, 3, 4), [(2, 3, 4)], [(24, 4, 1)])
    assert plan.layouts == ("g",) and plan.shape == (2, 12) and plan.strides == ((24, 1),)
    # length-1 axes are dropped; an inlined constant has no strides
    plan = cg.plan_launch((3, 1, 5), [(3, 1, 5), ()], [(10, 7, 2), None])
    assert plan.layouts == ("g", "k") and plan.shape == (15,) and plan.strides == ((2,),)
    # indices beyond 2**31 need 64-bit arithmetic
    plan = cg.plan_launch((2, 2), [(2, 2)], [(2**31, 1)])
    assert plan.index_type == "long long"


def test_print_kernels_prints_each_new_kernel_once(capsys):
    p = Program("float32", "float32")
    c = p.build(p("sub", p("exp", 0), 1))
    with sg.config.change_flags(print_kernels=True):
        cg.render_kernel(c, ("c", "c"), name="print_me_once")
        cg.render_kernel(c, ("c", "c"), name="print_me_once")
    err = capsys.readouterr().err
    assert err.count('extern "C" __global__ void print_me_once(') == 1


def _pattern_kernels():
    """Every pattern rendered as the flat and the strided kernel the backend would build."""
    kernels = []
    for pat in PATTERNS:
        n = pat.composite.nin
        flat = tuple("k" if k in pat.constants else "c" for k in range(n))
        strided = tuple("k" if k in pat.constants else "g" for k in range(n))
        kernels.append(cg.render_kernel(pat.composite, flat, literals=pat.constants))
        kernels.append(cg.render_kernel(pat.composite, strided, 2, pat.constants, "int"))
    return kernels


@needs_device_compiler
@pytest.mark.parametrize("ks", _pattern_kernels(), ids=lambda ks: ks.name)
def test_pattern_kernels_compile_for_sm90(ks):
    cubin, log, seconds = compile_for_device(ks.source, ks.name + ".cu")
    assert cubin[:4] == b"\x7fELF", "not a cubin"
    assert "warning" not in log.lower(), log


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_nvcc_accepts_the_same_source():
    pat = next(p for p in PATTERNS if p.name == "lstm_cell")
    ks = cg.render_kernel(pat.composite, ("g", "c", "s", "g"), 3, {}, "long long")
    cubin, _, _ = compile_with_nvcc(ks.source, ks.name + ".cu")
    assert cubin[:4] == b"\x7fELF"
