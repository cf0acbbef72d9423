"""The CUDA backend without a GPU: device selection (auto / forced) with one clear message, and the
kernel launcher driven end to end with NumPy arrays and host-compiled kernels in place of CuPy."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import types

import emulated_cupy
import numpy as np
import pytest
from gpu_harness import CXX, host_library
from gpu_patterns import Program, non_contiguous, patterns, random_inputs

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends import cupy as cupy_backend
from symgraph.backends import get_backend
from symgraph.backends.numpy import BACKEND as NUMPY_BACKEND
from symgraph.errors import SymgraphError
from symgraph.ops.elemwise import Elemwise


@pytest.fixture
def fresh_probe(monkeypatch):
    """Forget the cached probe, warning and backend for the duration of one test."""
    monkeypatch.setattr(cupy_backend, "_probe_result", None)
    monkeypatch.setattr(cupy_backend, "_warned", False)
    monkeypatch.setattr(cupy_backend, "_backend", None)
    return cupy_backend


def _device_answers() -> bool:
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _cupy_importable() -> bool:
    try:
        import cupy  # noqa: F401

        return True
    except ImportError:
        return False


def test_auto_without_cupy_uses_the_cpu_and_says_why_once(fresh_probe, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert get_backend("auto") is NUMPY_BACKEND
    assert get_backend("auto") is NUMPY_BACKEND
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "using the CPU" in err[0] and "CuPy is not installed" in err[0]
    assert "symgraph[cuda]" in err[0]


def test_auto_with_cupy_but_no_device_uses_the_cpu(fresh_probe, capsys):
    if not _cupy_importable():
        pytest.skip("CuPy is not installed here")
    ok, why = fresh_probe.probe()
    if ok:
        pytest.skip("this machine has a CUDA device")
    assert get_backend("auto") is NUMPY_BACKEND
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"symgraph: using the CPU ({why})"]
    assert "no CUDA device answered" in why or "no CUDA device" in why


def test_forced_cuda_without_a_device_raises_one_clear_error(fresh_probe, monkeypatch):
    monkeypatch.setattr(fresh_probe, "_probe_result", (False, "no CUDA device answered (test)"))
    with pytest.raises(SymgraphError) as info:
        get_backend("cuda")
    assert str(info.value) == "device='cuda' was requested but no CUDA device answered (test)"
    assert info.value.__cause__ is None and info.value.__context__ is None
    x = T.vector("x")
    with pytest.raises(SymgraphError, match="device='cuda' was requested"):
        sg.function([x], x * 2, device="cuda")


def test_forced_cuda_in_a_fresh_process_fails_without_traceback_soup():
    if not _cupy_importable():
        pytest.skip("CuPy is not installed here")
    code = "import symgraph as sg, symgraph.tensor as T; x = T.vector(); sg.function([x], x * 2)"
    env = dict(os.environ, SYMGRAPH_FLAGS="device=cuda")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode == 0:
        pytest.skip("this machine has a CUDA device")
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("symgraph.errors.SymgraphError: device='cuda' was requested but ")
    assert "During handling of the above exception" not in r.stderr
    assert r.stderr.count("Traceback") == 1 and r.stderr.count('  File "') <= 4


def _fake_cupy(device_count, nvrtc_error=None):
    def get_version():
        if nvrtc_error is not None:
            raise nvrtc_error
        return (13, 0)

    runtime = types.SimpleNamespace(getDeviceCount=lambda: device_count)
    nvrtc = types.SimpleNamespace(getVersion=get_version)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, nvrtc=nvrtc))


def test_probe_names_what_to_install_when_nvrtc_is_missing(fresh_probe, monkeypatch):
    fake = _fake_cupy(1, OSError("libnvrtc.so.13: cannot open shared object file"))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    ok, why = fresh_probe.probe()
    assert not ok
    assert "NVRTC could not be loaded" in why and "nvidia-cuda-nvrtc" in why


def test_probe_with_zero_devices(fresh_probe, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0))
    assert fresh_probe.probe() == (False, "CuPy found no CUDA device")


def test_probe_success_selects_the_cupy_backend(fresh_probe, monkeypatch):
    if not _cupy_importable():
        pytest.skip("CuPy is not installed here")
    monkeypatch.setattr(fresh_probe, "_probe_result", (True, ""))
    be = get_backend("auto")
    assert be.name == "cuda" and be is get_backend("cuda")


# -- the launcher, with host-compiled kernels ---------------------------------------------------


def _host_compile(ks):
    """Stands in for CupyBackend.compile_kernel: ``kernel(grid, block, args)`` on the host."""
    fn = getattr(host_library([ks]), f"run_{ks.name}")
    compiled.append(ks)

    def launch(grid, block, args):
        assert len(args) == len(ks.params)
        cargs = []
        for (ctype, _), a in zip(ks.params, args):
            if "*" in ctype:
                assert isinstance(a, np.ndarray)
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            else:
                assert isinstance(a, np.int64)
                cargs.append(ctypes.c_longlong(int(a)))
        fn(ctypes.c_int(grid[0]), ctypes.c_int(block[0]), *cargs)

    return launch


compiled: list = []


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
@pytest.mark.parametrize("name", ["gru_update", "rmsprop_param", "leaky_relu"])
def test_launcher_runs_fused_nodes_like_numpy(name):
    pat = next(p for p in patterns() if p.name == name)
    syms = [
        T.constant(np.array(pat.constants[k], dtype=d))
        if k in pat.constants
        else T.tensor(d, (None,) * len(shape))
        for k, (d, shape) in enumerate(zip(pat.composite.input_dtypes, pat.shapes))
    ]
    node = Elemwise(pat.composite).make_node(*syms)
    launcher = cupy_backend.ElementwiseLauncher(node, np, _host_compile, lambda: 3)
    launcher.BLOCK = 16
    rng = np.random.default_rng(11)
    compiled.clear()
    for how in ["contiguous", "transposed", "contiguous", "sliced"]:
        ins = random_inputs(pat, rng)
        views = [x if how == "contiguous" else non_contiguous(x, rng, how) for x in ins]
        out = launcher(*views)
        assert out.dtype == node.outputs[0].dtype
        np.testing.assert_allclose(out, pat.reference(*ins), rtol=4e-6, atol=1e-6)
    assert len(launcher._plans) == 3  # the second contiguous call reused its launch plan
    assert all("k" in ks.layouts for ks in compiled) == bool(pat.constants)


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
def test_launcher_handles_empty_and_zero_d_inputs():
    p = Program("float32", "float32")
    node = Elemwise(p.build(p("mul", p("tanh", 0), 1))).make_node(T.vector("x"), T.scalar("y"))
    launcher = cupy_backend.ElementwiseLauncher(node, np, _host_compile, lambda: 2)
    empty = launcher(np.zeros(0, np.float32), np.float32(2))
    assert empty.shape == (0,) and empty.dtype == np.float32
    a = np.linspace(-2, 2, 9, dtype=np.float32)
    out = launcher(a, np.array(3, np.float32))
    np.testing.assert_allclose(out, np.tanh(a) * 3, rtol=4e-6)


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
def test_launcher_passes_non_finite_constants_as_arrays():
    p = Program("float32", "float32")
    c = p.build(p("minimum", 0, 1))
    node = Elemwise(c).make_node(T.vector("x"), T.constant(np.float32(np.inf)))
    launcher = cupy_backend.ElementwiseLauncher(node, np, _host_compile, lambda: 2)
    compiled.clear()
    a = np.array([-1, np.nan, 5], np.float32)
    out = launcher(a, node.inputs[1].data)
    np.testing.assert_array_equal(out, np.minimum(a, np.inf))
    assert compiled[-1].layouts == ("c", "s")  # inf is not a C literal: passed as an array


def test_backend_builds_launchers_without_a_device_and_declines_float16(capsys):
    if not _cupy_importable():
        pytest.skip("CuPy is not installed here")
    be = cupy_backend.CupyBackend()  # its only device work is a check of cuBLAS
    if not emulated_cupy.installed() and not _device_answers():  # the check fails here
        assert be.gemm is None
        assert "matrix products go through cupy.dot" in capsys.readouterr().err
    x = T.vector("x")
    assert isinstance(be.make_elemwise_kernel((x * 2).owner), cupy_backend.ElementwiseLauncher)
    h = T.tensor("float16", (None,), name="h")
    assert be.make_elemwise_kernel((h * h).owner) is None  # falls back to CuPy's ufuncs
