"""The example scripts run end to end in tiny configurations, and their outputs are checked."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    if f"example_{name}" in sys.modules:
        return sys.modules[f"example_{name}"]
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- rnn_numpy: the NumPy half needs nothing but NumPy -----------------------------------------


def test_numpy_rnn_gradient_check_passes_on_a_real_sentence() -> None:
    ex = load_example("rnn_numpy")
    X, Y, words = ex.load_sentences("chitchat", max_comments=30, vocab_size=25, max_len=12)
    model = ex.RNNNumpy(len(words), hidden_dim=5, bptt_truncate=1000, seed=1)
    worst = model.gradient_check(X[0], Y[0], verbose=False)
    assert set(worst) == {"U", "V", "W"}
    assert all(0 < e < 0.01 for e in worst.values()), worst


def test_numpy_rnn_gradient_check_catches_a_wrong_gradient() -> None:
    ex = load_example("rnn_numpy")
    model = ex.RNNNumpy(10, hidden_dim=4, bptt_truncate=1000, seed=0)
    right = model.bptt
    model.bptt = lambda x, y: [g * f for g, f in zip(right(x, y), (1.0, 1.0, 1.1))]  # dW off
    with pytest.raises(AssertionError, match="gradient check failed for W"):
        model.gradient_check([0, 1, 2, 3], [1, 2, 3, 4], verbose=False)


def test_numpy_rnn_truncation_drops_only_long_paths() -> None:
    ex = load_example("rnn_numpy")
    x, y = [0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]
    full = ex.RNNNumpy(8, 4, bptt_truncate=1000, seed=0)
    trunc = ex.RNNNumpy(8, 4, bptt_truncate=2, seed=0)
    exact = ex.RNNNumpy(8, 4, bptt_truncate=len(x) - 1, seed=0)  # long enough for every path
    g_full, g_trunc, g_exact = full.bptt(x, y), trunc.bptt(x, y), exact.bptt(x, y)
    np.testing.assert_array_equal(g_full[1], g_trunc[1])  # dV has no time dependence
    assert not np.allclose(g_full[2], g_trunc[2])  # dW loses the long paths
    for a, b in zip(g_full, g_exact):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_numpy_training_loop_halves_the_learning_rate_when_loss_rises() -> None:
    ex = load_example("rnn_numpy")

    class Fake:  # loss goes up at the second evaluation
        def __init__(self):
            self.lrs, self.values = [], iter([3.0, 4.0, 2.0, 1.0, 1.0])

        def calculate_loss(self, X, Y):
            return next(self.values)

        def sgd_step(self, x, y, lr):
            self.lrs.append(lr)

    fake = Fake()
    ex.train_with_sgd(fake, [[0]], [[1]], learning_rate=0.4, nepoch=3, evaluate_loss_after=1,
                      verbose=False)  # fmt: skip
    assert fake.lrs == [0.4, 0.2, 0.2]


# -- the examples end to end (symgraph, scan, models) ------------------------------------------


def test_rnn_numpy_main_matches_numpy_and_trains(capsys) -> None:
    ex = load_example("rnn_numpy")
    r = ex.main(["--max-comments", "60", "--vocab", "60", "--hidden", "8", "--sentences", "12",
                 "--compare", "3", "--epochs", "3", "--check-vocab", "12", "--check-hidden", "4",
                 "--bptt-truncate", "2"])  # fmt: skip
    assert all(e < 0.01 for e in r["gradient_check"].values())
    for key in ("diff_truncate_1000", "diff_truncate_2"):  # float64: equal to rounding error
        assert max(r[key].values()) < 1e-10, (key, r[key])
    for name in ("numpy", "symgraph"):
        losses = [loss for _, loss in r[f"losses_{name}"]]
        assert losses[-1] < losses[0], (name, losses)
    # same float32 model, same data, same steps: the two trajectories agree closely
    np.testing.assert_allclose(
        [v for _, v in r["losses_numpy"]], [v for _, v in r["losses_symgraph"]], rtol=1e-3
    )
    assert "gradient check for W" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_check_main_passes(dtype: str, capsys) -> None:
    ex = load_example("gradient_check")
    r = ex.main(["--vocab", "10", "--hidden", "3", "--layers", "2", "--batch", "2",
                 "--max-entries", "12", "--max-comments", "40", "--dtype", dtype])  # fmt: skip
    assert r["passed"]
    for cell in ("rnn", "gru", "lstm"):
        for graph in ("sentence", "batch"):
            results = r[(cell, graph)]
            assert {p["name"] for p in results} >= {"U", "W", "V"}
            assert all(p["checked"] > 0 and not p["failures"] for p in results)
    judged = sum(p["judged"] for k, v in r.items() if k != "passed" for p in v)
    assert judged > 0
    if dtype == "float64":  # finite differences in float64 are accurate to ~h^2
        worst = max(p["max_rel"] for k, v in r.items() if k != "passed" for p in v)
        assert 0 < worst < 1e-3
    assert "all gradient checks passed" in capsys.readouterr().out


def test_gradient_check_reports_a_wrong_gradient(monkeypatch) -> None:
    ex = load_example("gradient_check")
    from models.lm import LanguageModel

    right = LanguageModel.sentence_gradients

    def wrong(self, x, y):
        g = right(self, x, y)
        g["W"] = g["W"] * 1.5
        return g

    monkeypatch.setattr(LanguageModel, "sentence_gradients", wrong)
    r = ex.main(["--cells", "rnn", "--graphs", "sentence", "--vocab", "10", "--hidden", "3",
                 "--max-entries", "8", "--max-comments", "40"])  # fmt: skip
    assert not r["passed"]
    failed = {p["name"] for p in r[("rnn", "sentence")] if p["failures"]}
    assert failed == {"W"}


def test_vanishing_gradients_main_writes_a_png(tmp_path: Path) -> None:
    ex = load_example("vanishing_gradients")
    out = tmp_path / "plots" / "vanish.png"
    r = ex.main(["--max-comments", "60", "--vocab", "40", "--hidden", "6", "--seq-len", "10",
                 "--sequences", "2", "--train-steps", "3", "--batch", "4",
                 "--out", str(out)])  # fmt: skip
    assert r["plot"] == out
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert set(r["curves"]) == {
        (c, s) for c in ("rnn", "gru", "lstm") for s in ("untrained", "trained")
    }
    for curve in r["curves"].values():
        assert list(curve) == list(range(10))
        assert all(np.isfinite(v) and v >= 0 for v in curve.values())
        assert curve[0] > 0
    # an untrained tanh RNN with small weights loses the gradient quickly
    rnn = r["curves"][("rnn", "untrained")]
    assert rnn[9] < 0.1 * rnn[0]


def test_theano_port_main_trains_and_samples(capsys) -> None:
    ex = load_example("theano_port")
    r = ex.main(["--max-comments", "60", "--sentences", "40", "--vocabulary-size", "60",
                 "--hidden-dim", "10", "--nepoch", "4", "--samples", "2"])  # fmt: skip
    losses = [loss for _, loss in r["losses"]]
    assert losses[-1] < losses[0], losses
    assert len(r["samples"]) == 2
    assert all(isinstance(w, str) for s in r["samples"] for w in s)
    assert "Loss after num_examples_seen" in capsys.readouterr().out


def test_examples_use_only_the_public_api() -> None:
    """Examples import symgraph only as ``symgraph`` / ``symgraph.tensor`` (plus models)."""
    import ast

    allowed = {"symgraph", "symgraph.tensor"}
    for name in ("rnn_numpy", "gradient_check", "vanishing_gradients", "theano_port"):
        tree = ast.parse((ROOT / "examples" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                if m.startswith("symgraph"):
                    assert m in allowed, f"examples/{name}.py imports {m}"
