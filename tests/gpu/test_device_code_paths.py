"""The CUDA backend run on the CPU against CuPy emulated by ``emulated_cupy``: compiled functions,
scan loops, gradients and updates must give the CPU's numbers through the real backend code and
host-compiled kernels, keep shared state on the "device" between calls, copy only the inputs in
and the outputs out, never synchronise inside a loop, and hand NumPy arrays back to the caller.
(What only a real GPU shows — cuBLAS, CuPy's own kernels, speed — is checked by
benchmarks/gpu_check.py when a device is lent.)"""

from __future__ import annotations

import emulated_cupy
import numpy as np

import symgraph as sg
import symgraph.tensor as T

STATS = emulated_cupy.STATS


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


def train(build, dev: str, xs, ys, lr: float, calls: int = 3):
    """``calls`` SGD steps of ``build()``'s program on ``dev``: losses, parameters, and what
    crossed between host and device during the steps."""
    with sg.config.change_flags(device=dev):
        x, y, cost, params, grads = build()
        updates = [(p, p - lr * g) for p, g in zip(params, grads)]
        step = sg.function([x, y], cost, updates=updates)
        if dev == "cuda":  # shared state lives on the device
            assert all(type(p.get_value(return_device=True)).__module__ == "cupy" for p in params)
        emulated_cupy.reset_stats()
        losses = [step(xs, ys) for _ in range(calls)]
        crossed = dict(STATS)
        return losses, [p.get_value() for p in params], crossed


def check_device_training(build, xs, ys, lr):
    cpu_losses, cpu_params, _ = train(build, "cpu", xs, ys, lr)
    losses, params, crossed = train(build, "cuda", xs, ys, lr)
    # per call: the two inputs go over, the loss comes back, and that read is the only
    # synchronisation: the parameters, their updates and every loop step stay on the device
    assert crossed["to_device"] == 3 * 2, emulated_cupy.events("to_device")
    assert crossed["to_host"] == 3 * 1, emulated_cupy.events("to_host")
    assert crossed["syncs"] == 3 * 1, emulated_cupy.events("syncs")
    assert crossed["launches"] > 0  # generated kernels ran
    assert all(type(v) is np.ndarray for v in losses)  # the caller gets host arrays
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-12)
    for a, b in zip(params, cpu_params):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert cpu_losses[2] < cpu_losses[0]  # it trains


def test_training_through_the_device_path_matches_the_cpu(device):
    xs = np.array([1, 4, 2, 9], "int32")
    ys = np.array([4, 2, 9, 0], "int32")
    check_device_training(rnn_program, xs, ys, 0.1)


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
    check_device_training(batched_gru_program, xs, ys, 0.5)


def test_profile_sync_waits_for_each_nodes_device_work(device):
    x = T.fmatrix("x")
    h, _ = sg.scan(lambda x_t, h: T.tanh(h * 2 + x_t), sequences=x, outputs_info=T.zeros(3))
    counts = {}
    for sync in (False, True):
        with sg.config.change_flags(profile_sync=sync, device="cuda"):
            f = sg.function([x], T.sum(h), profile=True)
            f(np.ones((5, 3), "float32"))
        emulated_cupy.reset_stats()
        f(np.ones((5, 3), "float32"))
        counts[sync] = emulated_cupy.STATS["syncs"], sum(f.profile.calls)
        inner = [p for ps in f.profile.inner.values() for p in ps]
        counts[sync] += (sum(sum(p.calls) for p in inner) // 2,)  # the second call's steps
    assert counts[False][0] == 1  # reading the result back
    syncs, outer_nodes, inner_nodes = counts[True]
    assert syncs == 1 + outer_nodes // 2 + inner_nodes  # and one wait per node run
    with sg.config.change_flags(profile_sync=True):  # on the CPU the flag changes nothing
        assert "__sync" not in sg.function([x], T.sum(h), profile=True, device="cpu").source
