"""The tutorial's language models (RNN, GRU, LSTM; sentence steps and minibatches) trained through
the CUDA backend on CuPy emulated on the CPU: the CPU's numbers, state that stays on the device,
and per step nothing crossing but the inputs in and the results out (no synchronisation inside
the loops, where a GPU would stall)."""

from __future__ import annotations

import emulated_cupy
import numpy as np
import pytest

import symgraph as sg
from models.lm import LanguageModel, LMConfig

STATS = emulated_cupy.STATS
TINY = dict(vocab_size=23, hidden_dim=6)


def build(dev: str, preset: str | None = None, **kw) -> LanguageModel:
    """A tiny model with its state and compiled training functions on ``dev``."""
    with sg.config.change_flags(device=dev):
        if preset:
            cfg = LMConfig.preset(preset, **TINY, **({} if "rnn" in preset else {"emb_dim": 5}))
        else:
            cfg = LMConfig(**TINY, emb_dim=5, **kw)
        model = LanguageModel(cfg, seed=3)
        model.compile_all(sentence=preset is not None)
        return model


def crossed(events: int, what: str) -> str:
    return f"{STATS[what]} (expected {events}):\n" + emulated_cupy.events(what)


@pytest.mark.parametrize("preset", ["tutorial-rnn", "tutorial-gru", "tutorial-lstm"])
def test_tutorial_sentence_steps_on_the_device_match_the_cpu(device, preset):
    x, y = [0, 5, 9, 2, 17, 4], [5, 9, 2, 17, 4, 1]
    cpu, dev = build("cpu", preset), build("cuda", preset)
    for m in (cpu, dev):
        m.sentence_train_step(x, y, 0.05)  # compiles (and copies constants once)
    emulated_cupy.reset_stats()
    for _ in range(2):
        want = cpu.sentence_train_step(x, y, 0.05)
        got = dev.sentence_train_step(x, y, 0.05)
        np.testing.assert_allclose(got, want, rtol=2e-5)
    # x and y go over, the loss comes back (its read is the one synchronisation)
    assert STATS["to_device"] == 2 * 2, crossed(4, "to_device")
    assert STATS["syncs"] == 2 * 1, crossed(2, "syncs")
    for name, value in cpu.get_params().items():
        np.testing.assert_allclose(dev.get_params()[name], value, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_minibatch_training_on_the_device_matches_the_cpu(device, cell):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 23, (5, 3)).astype("int32")
    y = rng.integers(0, 23, (5, 3)).astype("int32")
    mask = np.ones((5, 3), "float32")
    mask[3:, 2] = 0  # a shorter sentence
    cpu, dev = build("cpu", cell=cell, layers=2), build("cuda", cell=cell, layers=2)
    for m in (cpu, dev):
        m.train_step(x, y, mask)
    emulated_cupy.reset_stats()
    for _ in range(2):
        want, got = cpu.train_step(x, y, mask), dev.train_step(x, y, mask)
        np.testing.assert_allclose(got, want, rtol=2e-5)
    # x, y and the mask go over; the summed loss and the word count come back
    assert STATS["to_device"] == 2 * 3, crossed(6, "to_device")
    assert STATS["syncs"] == 2 * 2, crossed(4, "syncs")
    assert type(dev.params["V"].get_value(return_device=True)).__module__ == "cupy"
    for name, value in cpu.get_params().items():
        np.testing.assert_allclose(dev.get_params()[name], value, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize(
    "cell, products, kernels, backward_kernels", [("gru", 2, 2, 2), ("lstm", 1, 1, 1)]
)
def test_a_minibatch_step_runs_few_device_ops_per_time_step(
    device, cell, products, kernels, backward_kernels
):
    # per time step a GPU pays a launch for each op: the input projections leave the loops (one
    # product over all steps), and the gate products reading the previous state are one stacked
    # product (the GRU's candidate reads r * h: a second one); the rest is fused kernels, one
    # between two products (several results each: multi-output fusion)
    from symgraph.ops.blas import Dot
    from symgraph.ops.elemwise import Elemwise
    from symgraph.ops.gemm import Gemm
    from symgraph.ops.subtensor import Subtensor
    from symgraph.scan.op import Scan
    from symgraph.scan.stack_sums import BroadcastJoin

    model = build("cuda", cell=cell, layers=1)
    x = np.zeros((5, 3), "int32")
    model.train_step(x, x, np.ones((5, 3), "float32"))
    loops, stored = {}, {}
    for node in model._fn("train").program.nodes:
        if isinstance(node.op, Scan):
            (prog,) = [p for k, p in node.op._compiled["cuda"].items() if k is not None]
            loops[node.op.name] = [type(n.op) for n in prog.nodes]
            stored[node.op.name] = [type(v.owner.op) for v in node.op.inner_outputs if v.owner]
    # the forward loop keeps the stacked product for the gradient whole: one copy per step
    assert Subtensor not in stored["step"], stored["step"]
    forward, backward = loops["step"], loops["grad_of_step"]
    assert forward.count(Dot) == products and forward.count(Elemwise) == kernels, forward
    assert set(forward) == {Dot, Elemwise, Subtensor}, forward  # blocks of a product: views
    # the gate products summed into the state's gradient (an LSTM's four, a GRU's two): one
    # product of the weights side by side with the gate gradients stacked, added onto the
    # sum's other terms by cuBLAS (gemm: no kernel only to add them; scan/stack_sums.py)
    assert backward.count(Dot) == {"gru": 1, "lstm": 0}[cell], backward
    assert backward.count(Gemm) == 1 and backward.count(BroadcastJoin) == 1, backward
    # the kernels that read one product's result are one (siblings: multi_fusion.py)
    assert backward.count(Elemwise) == backward_kernels, backward


@pytest.mark.parametrize("cell, launches, kernels", [("gru", 4, 8), ("lstm", 2, 4)])
def test_device_work_per_time_step_of_a_minibatch_step(device, cell, launches, kernels):
    # the cost a GPU pays per time step, from two sequence lengths: generated kernels, and all
    # device work (those, products, the per-step stores: one per distinct value, copies, ...)
    model = build("cuda", cell=cell, layers=1)
    per_step = {}
    for steps in (4, 8):
        x = np.zeros((steps, 3), "int32")
        mask = np.ones((steps, 3), "float32")
        model.train_step(x, x, mask)
        emulated_cupy.reset_stats()
        model.train_step(x, x, mask)
        per_step[steps] = dict(STATS)
    slope = {k: (per_step[8][k] - per_step[4][k]) / 4 for k in ("launches", "kernels")}
    assert slope == {"launches": launches, "kernels": kernels}, slope
