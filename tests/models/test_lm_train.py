"""Training: optimizer updates against NumPy formulas, clipping, the loop, and resume after an
interruption ending with exactly the parameters of an uninterrupted run."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import symgraph as sg
from models.data import SENTENCE_END, SENTENCE_START, Corpus, Vocabulary, make_training_pairs
from models.lm import LanguageModel, LMConfig
from models.training import TrainConfig, Trainer, unigram_cross_entropy


def tiny(**kw) -> LMConfig:
    base = dict(cell="gru", vocab_size=12, hidden_dim=5, emb_dim=4, layers=1, dtype="float64")
    return LMConfig(**{**base, **kw})


def batch(seed=0, lengths=(4, 2, 3)):
    rng = np.random.default_rng(seed)
    T, B = max(lengths), len(lengths)
    x = rng.integers(0, 12, (T, B)).astype(np.int32)
    y = rng.integers(0, 12, (T, B)).astype(np.int32)
    m = np.zeros((T, B))
    for b, n in enumerate(lengths):
        m[:n, b] = 1
    return x, y, m


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
def test_two_optimizer_steps_equal_the_numpy_formulas(optimizer):
    with sg.config.change_flags(floatX="float64"):
        m = LanguageModel(tiny(optimizer=optimizer), seed=1)
        x, y, mask = batch()
        lr = 0.05
        p = m.get_params()
        st = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in p.items()}
        for t in (1, 2):
            g = {k: v / 3 for k, v in m.gradients(x, y, mask).items()}  # objective: per sentence
            for k in p:
                a, b = st[k]
                if optimizer == "sgd":
                    p[k] = p[k] - lr * g[k]
                elif optimizer == "rmsprop":
                    a = 0.9 * a + 0.1 * g[k] ** 2
                    p[k] = p[k] - lr * g[k] / np.sqrt(a + 1e-6)
                else:
                    a = 0.9 * a + 0.1 * g[k]
                    b = 0.999 * b + 0.001 * g[k] ** 2
                    step = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                    p[k] = p[k] - step * a / (np.sqrt(b) + 1e-8)
                st[k] = (a, b)
            ce, words = m.train_step(x, y, mask, lr)
            assert words == 9 and ce > 0
            for k, v in m.get_params().items():
                np.testing.assert_allclose(v, p[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_gradient_norm_clipping():
    with sg.config.change_flags(floatX="float64"):
        m = LanguageModel(tiny(optimizer="sgd", clip_norm=0.01, objective="token"), seed=2)
        x, y, mask = batch(1)
        g = {k: v / mask.sum() for k, v in m.gradients(x, y, mask).items()}
        norm = np.sqrt(sum((v**2).sum() for v in g.values()))
        assert norm > 0.01  # so the clip is active
        before = m.get_params()
        m.train_step(x, y, mask, 1.0)
        moved = {k: before[k] - v for k, v in m.get_params().items()}
        np.testing.assert_allclose(np.sqrt(sum((v**2).sum() for v in moved.values())), 0.01)
        for k in g:
            np.testing.assert_allclose(moved[k], g[k] * 0.01 / norm, rtol=1e-9, atol=1e-15)


# -- the loop ---------------------------------------------------------------------------------


def toy_corpus(n=120, seed=0) -> Corpus:
    """Sentences from a tiny grammar (so there is something to learn), already encoded."""
    words = [SENTENCE_START, SENTENCE_END, "the", "a", "cat", "dog", "sees", "likes", "big", "."]
    vocab = Vocabulary(words)
    rng = np.random.default_rng(seed)
    enc = []
    for _ in range(n):
        s = [SENTENCE_START, rng.choice(["the", "a"]), *(["big"] * rng.integers(0, 3))]
        s += [rng.choice(["cat", "dog"]), rng.choice(["sees", "likes"]), rng.choice(["the", "a"])]
        s += [rng.choice(["cat", "dog"]), ".", SENTENCE_END]
        enc.append(vocab.encode(s))
    X, Y = make_training_pairs(enc)
    k = n * 5 // 6
    return Corpus(vocab, X[:k], Y[:k], X[k:], Y[k:], {})


def toy_config(**kw) -> LMConfig:
    base = dict(cell="gru", vocab_size=11, hidden_dim=8, emb_dim=6, optimizer="adam",
                learning_rate=0.02)  # fmt: skip
    return LMConfig(**{**base, **kw})


def test_training_learns_the_toy_grammar(tmp_path):
    corpus = toy_corpus()
    model = LanguageModel(toy_config(), seed=0)
    tr = Trainer(model, corpus, TrainConfig(batch_size=10, epochs=4), out_dir=tmp_path,
                 log=lambda s: None)  # fmt: skip
    assert tr.run() == "finished"
    vals = [v for _, _, v in tr.state.valid_curve]
    assert len(vals) == 5 and vals[0] == pytest.approx(np.log(11), abs=0.1)
    assert vals[-1] < unigram_cross_entropy(corpus.Y_train, corpus.Y_valid, 11) - 0.3
    assert (tmp_path / "checkpoint.npz").is_file() and tr.state.step == 40


@pytest.mark.parametrize("cell,batch_size", [("gru", 7), ("rnn", 1)])
def test_interrupted_then_resumed_run_ends_with_the_same_parameters(tmp_path, cell, batch_size):
    corpus = toy_corpus(60)
    cfg = toy_config(cell=cell, optimizer="rmsprop" if cell == "rnn" else "adam")
    tcfg = TrainConfig(batch_size=batch_size, epochs=2, halve_lr_on_rise=True, eval_every=3,
                       checkpoint_every=4)  # fmt: skip
    quiet = dict(log=lambda s: None)

    full = Trainer(LanguageModel(cfg, seed=3), corpus, tcfg, out_dir=tmp_path / "a", **quiet)
    assert full.run() == "finished"

    part = Trainer(LanguageModel(cfg, seed=3), corpus, tcfg, out_dir=tmp_path / "b", **quiet)
    stop_at = 5 if batch_size > 1 else 67  # mid-epoch, between checkpoints

    def interrupt(tr):
        if tr.state.step == stop_at:
            raise KeyboardInterrupt

    part.on_step = interrupt
    assert part.run() == "interrupted"
    assert part.state.step == stop_at
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.npz", corpus, tcfg,
                             out_dir=tmp_path / "b", **quiet)  # fmt: skip
    assert resumed.state.step == stop_at
    assert resumed.run() == "finished"
    for k, v in full.model.state_arrays().items():
        np.testing.assert_array_equal(resumed.model.state_arrays()[k], v, err_msg=k)
    assert resumed.state.valid_curve == full.state.valid_curve
    assert resumed.state.train_curve == full.state.train_curve
    assert resumed.state.lr == full.state.lr and resumed.state.step == full.state.step
    assert resumed.rng.random() == full.rng.random()


def test_ctrl_c_stops_after_the_step_and_writes_a_checkpoint(tmp_path):
    corpus = toy_corpus(60)
    tr = Trainer(LanguageModel(toy_config(), seed=0), corpus, TrainConfig(batch_size=5),
                 out_dir=tmp_path, log=lambda s: None)  # fmt: skip
    tr.on_step = lambda t: os.kill(os.getpid(), signal.SIGINT) if t.state.step == 2 else None
    assert tr.run() == "interrupted"
    assert tr.state.step == 2 and tr.state.batch_index == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    again = Trainer.resume(tmp_path / "checkpoint.npz", corpus, TrainConfig(batch_size=5))
    assert again.state.step == 2


def test_time_budget_stops_the_run(tmp_path):
    tr = Trainer(LanguageModel(toy_config(), seed=0), toy_corpus(60),
                 TrainConfig(batch_size=5, epochs=50, time_budget=1e-9), out_dir=tmp_path,
                 log=lambda s: None)  # fmt: skip
    assert tr.run() == "time_budget" and tr.state.step == 1


def test_resume_with_other_settings_is_refused(tmp_path):
    from models.checkpoint import CheckpointMismatchError

    corpus = toy_corpus(60)
    tr = Trainer(LanguageModel(toy_config(), seed=0), corpus,
                 TrainConfig(batch_size=5, time_budget=1e-9), out_dir=tmp_path,
                 log=lambda s: None)  # fmt: skip
    tr.run()
    path = tmp_path / "checkpoint.npz"
    with pytest.raises(CheckpointMismatchError, match="batch_size"):
        Trainer.resume(path, corpus, TrainConfig(batch_size=6))
    with pytest.raises(CheckpointMismatchError, match="hidden_dim"):
        Trainer.resume(path, corpus, TrainConfig(batch_size=5), expect=toy_config(hidden_dim=9))
    with pytest.raises(CheckpointMismatchError, match="sentences"):
        Trainer.resume(path, toy_corpus(70), TrainConfig(batch_size=5))
