"""Every elementwise node of real training graphs (a GRU and an LSTM language model unrolled over
a few steps, cross-entropy, gradients, RMSProp or SGD updates), after the rewrites and fusion
that ``sg.function`` applies for the CPU and for a device (multi-output kernels), becomes a
kernel that compiles for sm_90 and, run on the host through the CUDA backend's launcher,
computes what the node computes on the CPU."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest
from gpu_harness import CXX, compile_for_device, device_compiler, host_library

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import BACKEND
from symgraph.graph import Constant
from symgraph.launch import ElementwiseLauncher
from symgraph.ops.composite import Composite
from symgraph.ops.elemwise import Elemwise
from symgraph.rewrite import optimize

H, V, E, STEPS = 6, 10, 5, 3


def _params(rng, gates):
    def sh(name, *shape):
        return sg.shared(rng.uniform(-0.5, 0.5, shape).astype("float32"), name=name)

    return dict(
        E=sh("E", E, V),
        U=sh("U", gates, H, E),
        W=sh("W", gates, H, H),
        b=sh("b", gates, H),
        V=sh("V", V, H),
        c=sh("c", V),
    )


def _gru_step(p, e, s, _):
    U, W, b = p["U"], p["W"], p["b"]
    z = T.nnet.hard_sigmoid(U[0].dot(e) + W[0].dot(s) + b[0])
    r = T.nnet.sigmoid(U[1].dot(e) + W[1].dot(s) + b[1])
    h = T.tanh(U[2].dot(e) + W[2].dot(s * r) + b[2])
    return (1 - z) * h + z * s, None


def _lstm_step(p, e, h, c):
    U, W, b = p["U"], p["W"], p["b"]
    i, f, o = (T.nnet.sigmoid(U[k].dot(e) + W[k].dot(h) + b[k]) for k in range(3))
    g = T.tanh(U[3].dot(e) + W[3].dot(h) + b[3])
    c = f * c + i * g
    return o * T.tanh(c), c


def _training_function(kind: str):
    rng = np.random.default_rng(0)
    p = _params(rng, 3 if kind == "gru" else 4)
    step = _gru_step if kind == "gru" else _lstm_step
    x, y = T.ivector("x"), T.ivector("y")
    s, c, cost = T.zeros(H), T.zeros(H), 0
    for t in range(STEPS):  # unrolled: the elementwise patterns are those of the scan body
        s, c = step(p, p["E"][:, x[t]], s, c)
        o = T.nnet.softmax(p["V"].dot(s) + p["c"])
        cost = cost + T.nnet.categorical_crossentropy(o, y[t : t + 1]).sum()
    params = list(p.values())
    grads = T.grad(cost, params)
    lr = T.scalar("lr")
    updates = []
    for w, g in zip(params, grads):
        if kind == "gru":  # RMSProp
            m = sg.shared(np.zeros_like(w.get_value()))
            m_new = 0.9 * m + 0.1 * g**2
            updates += [(w, w - lr * g / T.sqrt(m_new + 1e-6)), (m, m_new)]
        else:  # SGD with clipped gradients
            updates.append((w, w - lr * T.clip(g, -5, 5)))
    return [x, y, lr], cost, updates


def _elemwise_nodes(kind: str, device: str) -> list:
    """The Elemwise nodes of the training graph after the rewrites for ``device`` (on a device
    they include multi-output kernels)."""
    with sg.config.change_flags(device="cpu"):  # shared state on the host (no CuPy needed)
        inputs, cost, updates = _training_function(kind)
    if device == "cpu":
        f = sg.function(inputs, cost, updates=updates, device="cpu")
        nodes = f.program.nodes
    else:  # the rewrites alone: linking for a device needs CuPy
        _, nodes = optimize(inputs, [cost] + [u for _, u in updates], "FAST_RUN", device=device)
    return [n for n in nodes if isinstance(n.op, Elemwise)]


def _inputs_for(node, rng):
    """Random inputs of shapes consistent with the node's static types (unknown lengths: 4)."""
    out_shape = list(node.outputs[0].type.shape)
    for v in node.inputs:
        for d, n in enumerate(v.type.shape):
            axis = len(out_shape) - v.ndim + d
            if n not in (None, 1) and out_shape[axis] is None:
                out_shape[axis] = n
    out_shape = [4 if n is None else n for n in out_shape]
    xs = []
    for v in node.inputs:
        if isinstance(v, Constant):
            xs.append(v.data)
            continue
        shape = tuple(
            1 if n == 1 else out_shape[len(out_shape) - v.ndim + d]
            for d, n in enumerate(v.type.shape)
        )
        kind = np.dtype(v.dtype).kind
        if kind == "f":
            xs.append(rng.uniform(0.05, 2.0, shape).astype(v.dtype))  # positive: sqrt, log
        elif kind == "b":
            xs.append(rng.random(shape) < 0.5)
        else:
            xs.append(rng.integers(1, 4, shape).astype(v.dtype))
    return xs


def _renamed(ks):
    """The kernel under a name unique to its source, so that all fit in one module."""
    name = f"{ks.name}_{ks.digest}"
    return dataclasses.replace(
        ks, name=name, source=ks.source.replace(f" void {ks.name}(", f" void {name}(")
    )


def _cases(kind, device):
    rng = np.random.default_rng(1)
    return [(node, _inputs_for(node, rng)) for node in _elemwise_nodes(kind, device)]


@pytest.fixture(
    scope="module", params=[("gru", "cpu"), ("lstm", "cpu"), ("gru", "cuda"), ("lstm", "cuda")]
)
def graph(request):
    kind, device = request.param
    return kind, device, _cases(kind, device)


def test_training_graphs_are_fused(graph):
    kind, device, cases = graph
    fused = [n for n, _ in cases if isinstance(n.op.scalar_op, Composite)]
    assert len(fused) >= 4, f"{kind}: expected fused update and gate nodes"
    if kind == "gru":  # the RMSProp step is one kernel
        assert any(any(op.name == "sqrt" for op, _ in n.op.scalar_op.steps) for n in fused)
    several = [n for n, _ in cases if len(n.outputs) > 1]
    if device == "cpu":
        assert not several  # multi-output kernels are made for devices only
    else:  # e.g. an optimizer's new cache and the weight update read from it
        assert len(several) >= 2, f"{kind}: expected multi-output kernels on a device"


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
def test_every_elementwise_node_runs_on_host_like_the_cpu(graph):
    kind, device, cases = graph
    collected: dict[str, object] = {}

    def collect(ks):
        collected.setdefault(ks.digest, _renamed(ks))
        return lambda *a: None

    launchers = []
    for node, xs in cases:  # pass 1: plan every launch, render every kernel
        launcher = ElementwiseLauncher(node, np, collect, lambda: 3)
        launcher.BLOCK = 16
        launcher(*xs)
        launchers.append(launcher)
    lib = host_library(list(collected.values()))

    def host_compile(ks):
        renamed = collected[ks.digest]
        fn = getattr(lib, f"run_{renamed.name}")

        def launch(grid, block, args):
            cargs = [
                ctypes.c_void_p(a.ctypes.data) if "*" in t else ctypes.c_longlong(int(a))
                for (t, _), a in zip(renamed.params, args)
            ]
            fn(ctypes.c_int(grid[0]), ctypes.c_int(block[0]), *cargs)

        return launch

    for (node, xs), launcher in zip(cases, launchers):  # pass 2: run and compare
        launcher.compile_kernel = host_compile
        launcher._plans.clear()
        got = launcher(*xs)
        with np.errstate(all="ignore"):
            want = node.op.make_impl(node, BACKEND)(*xs)
        if len(node.outputs) == 1:
            got, want = [got], [want]
        assert len(got) == len(want) == len(node.outputs), node
        for g, w, o in zip(got, want, node.outputs):
            w = np.asarray(w)
            assert g.dtype == w.dtype == o.dtype and g.shape == w.shape, node
            np.testing.assert_allclose(g, w, rtol=4e-6, atol=1e-6, err_msg=str(node.op))


@pytest.mark.skipif(device_compiler() is None, reason="neither NVRTC nor nvcc is available")
def test_every_elementwise_kernel_compiles_for_sm90(graph):
    kind, device, cases = graph
    kernels: dict[str, object] = {}

    def collect(ks):
        kernels.setdefault(ks.digest, _renamed(ks))
        return lambda *a: None

    for node, xs in cases:
        ElementwiseLauncher(node, np, collect, lambda: 3)(*xs)
    source = "\n".join(ks.source for ks in kernels.values())
    cubin, log, _ = compile_for_device(source, f"{kind}_{device}_training.cu")
    assert "warning" not in log.lower(), log
    for ks in kernels.values():
        assert ks.name.encode() in cubin
