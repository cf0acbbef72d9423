"""The device code paths, run on the CPU: a stand-in backend named like a GPU backend whose arrays
are a distinct ndarray subclass. Compiled functions, scan loops, gradients and updates must give
the CPU's numbers through it, keep shared state in "device" arrays between calls, and hand
NumPy arrays back to the caller. (What only a real GPU shows — kernels, cuBLAS, speed — is
checked by benchmarks/gpu_check.py when a device is lent.)"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.backends.cupy as cupy_backend
import symgraph.tensor as T


class DeviceArray(np.ndarray):
    """Marks arrays that live "on the device"."""


class StandInBackend:
    name = "cuda"
    xp = np

    def __init__(self) -> None:
        self.transfers = {"to_device": 0, "to_host": 0}

    def to_device(self, a):
        self.transfers["to_device"] += 1
        return np.asarray(a).view(DeviceArray)

    def to_host(self, a):
        self.transfers["to_host"] += 1
        return np.asarray(a).view(np.ndarray)

    @staticmethod
    def scatter_add(out, idx, values):
        np.add.at(out, idx, values)


@pytest.fixture
def device(monkeypatch):
    backend = StandInBackend()
    monkeypatch.setattr(cupy_backend, "get_backend", lambda required: backend)
    return backend


def rnn_program(seed: int = 0):
    rng = np.random.default_rng(seed)
    C, H = 11, 4
    U = sg.shared(rng.uniform(-0.5, 0.5, (H, C)), name="U")
    W = sg.shared(rng.uniform(-0.5, 0.5, (H, H)), name="W")
    V = sg.shared(rng.uniform(-0.5, 0.5, (C, H)), name="V")
    x, y = T.ivector("x"), T.ivector("y")

    def step(x_t, s_prev):
        s_t = T.tanh(U[:, x_t] + W.dot(s_prev))
        return [T.nnet.softmax(V.dot(s_t))[0], s_t]

    [o, _], _ = sg.scan(
        step, sequences=x, outputs_info=[None, dict(initial=T.zeros(H, dtype="float64"))]
    )
    cost = T.sum(T.nnet.categorical_crossentropy(o, y))
    params = [U, W, V]
    grads = T.grad(cost, params)
    return x, y, cost, params, grads


def test_training_through_the_device_path_matches_the_cpu(device):
    xs = np.array([1, 4, 2, 9], "int32")
    ys = np.array([4, 2, 9, 0], "int32")
    results = {}
    for dev in ("cpu", "cuda"):
        x, y, cost, params, grads = rnn_program()
        if dev == "cuda":
            for p in params:
                p.set_value(p.get_value())
                p.value = device.to_device(p.value)
        step = sg.function(
            [x, y], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)], device=dev
        )
        before = dict(device.transfers)
        losses = [float(step(xs, ys)) for _ in range(3)]
        if dev == "cuda":
            # per call: the two inputs go to the device and the one output comes back; the
            # parameters and their updates never cross
            assert device.transfers["to_device"] - before["to_device"] == 3 * 2
            assert device.transfers["to_host"] - before["to_host"] == 3 * 1
            out = step(xs, ys)
            assert type(out) is np.ndarray  # the caller gets host arrays
            losses.append(float(out))
        else:
            losses.append(float(step(xs, ys)))
        results[dev] = (losses, [p.get_value() for p in params])
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-12)
    for a, b in zip(results["cuda"][1], results["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert results["cpu"][0][2] < results["cpu"][0][0]  # it trains


def test_reductions_and_indexing_on_the_device_path(device):
    m = T.dmatrix("m")
    i = T.ivector("i")
    outs = [T.sum(m, axis=0), T.mean(m), T.max(m, axis=1), T.argmax(m, axis=1), m[i].sum()]
    outs.append(T.inc_subtensor(T.zeros_like(m)[i], 1.0))
    mv = np.arange(12.0).reshape(3, 4)
    iv = np.array([0, 2, 2], "int32")
    cpu = sg.function([m, i], outs, device="cpu")(mv, iv)
    dev = sg.function([m, i], outs, device="cuda")(mv, iv)
    for a, b in zip(dev, cpu):
        assert type(a) is np.ndarray
        np.testing.assert_array_equal(a, b)


def batched_gru_program(seed: int = 0):
    # a minibatched GRU: on the device this runs the loop's stored matrix products, the C-order
    # copy of the transposed weights, stacked-row products and the gemm update (generic path)
    rng = np.random.default_rng(seed)
    C, E, H = 13, 3, 5
    Emb = sg.shared(rng.uniform(-0.5, 0.5, (C, E)), name="Emb")
    U = sg.shared(rng.uniform(-0.5, 0.5, (3, E, H)), name="U")
    W = sg.shared(rng.uniform(-0.5, 0.5, (3, H, H)), name="W")
    V = sg.shared(rng.uniform(-0.5, 0.5, (H, C)), name="V")
    x, y = T.imatrix("x"), T.imatrix("y")

    def step(x_t, h):
        z = T.nnet.sigmoid(T.dot(x_t, U[0]) + T.dot(h, W[0]))
        r = T.nnet.sigmoid(T.dot(x_t, U[1]) + T.dot(h, W[1]))
        c = T.tanh(T.dot(x_t, U[2]) + T.dot(r * h, W[2]))
        return (1 - z) * c + z * h

    h0 = T.zeros((x.shape[1], H), dtype="float64")
    hs, _ = sg.scan(step, sequences=Emb[x], outputs_info=h0)
    logits = T.dot(hs.reshape((hs.shape[0] * hs.shape[1], H)), V)
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y.flatten()))
    params = [Emb, U, W, V]
    return x, y, cost, params, T.grad(cost, params)


def test_batched_training_through_the_device_path_matches_the_cpu(device):
    rng = np.random.default_rng(1)
    xs = rng.integers(0, 13, (4, 3)).astype("int32")
    ys = rng.integers(0, 13, (4, 3)).astype("int32")
    results = {}
    for dev in ("cpu", "cuda"):
        x, y, cost, params, grads = batched_gru_program()
        if dev == "cuda":
            for p in params:
                p.value = device.to_device(p.get_value())
        step = sg.function(
            [x, y], cost, updates=[(p, p - 0.5 * g) for p, g in zip(params, grads)], device=dev
        )
        before = dict(device.transfers)
        losses = [float(step(xs, ys)) for _ in range(3)]
        if dev == "cuda":  # inputs in, the loss out; parameters and updates never cross
            assert device.transfers["to_device"] - before["to_device"] == 3 * 2
            assert device.transfers["to_host"] - before["to_host"] == 3 * 1
        results[dev] = (losses, [p.get_value() for p in params])
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-12)
    for a, b in zip(results["cuda"][1], results["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert results["cpu"][0][2] < results["cpu"][0][0]
