"""examples/train_lm.py and examples/sample_lm.py end to end on a tiny text file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    subjects, verbs = ["the cat", "a dog", "my friend", "you"], ["likes", "sees", "wants"]
    objects = ["the ball", "a big house", "some tea", "me"]
    lines = [
        f"{rng.choice(subjects).capitalize()} {rng.choice(verbs)} {rng.choice(objects)}."
        for _ in range(240)
    ]
    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def common(text_file, out) -> list[str]:
    return [
        "--data", str(text_file), "--vocab-size", "20", "--hidden", "8", "--emb", "6",
        "--batch-size", "8", "--epochs", "1", "--lr", "0.02", "--out", str(out),
        "--no-progress", "--samples", "3", "--time-budget", "0",
    ]  # fmt: skip


def test_train_sample_resume_and_mismatch(text_file, tmp_path, capsys):
    train, sample = load_script("train_lm"), load_script("sample_lm")
    out = tmp_path / "run"
    assert train.main(common(text_file, out)) == 0
    text = capsys.readouterr().out
    for needle in ("initial validation loss", "unigram baseline", "final validation loss",
                   "sampled sentences", "tokens/s"):  # fmt: skip
        assert needle in text, needle
    first = float(text.split("initial validation loss :")[1].split()[0])
    final = float(text.split("final validation loss   :")[1].split()[0])
    assert final < first
    assert (out / "checkpoint.npz").is_file() and (out / "curves.png").stat().st_size > 1000

    assert sample.main([str(out / "checkpoint.npz"), "-n", "2", "--seed", "1"]) == 0
    assert "# gru x1, hidden 8, vocabulary 20" in capsys.readouterr().out

    # one more epoch on top of the first
    assert train.main(common(text_file, out) + ["--resume", "--epochs", "2"]) == 0
    assert "resumed" in capsys.readouterr().out

    # a different model for the same checkpoint: a clear error, exit status 2
    assert train.main(common(text_file, out) + ["--resume", "--hidden", "9"]) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "hidden_dim: checkpoint 8, requested 9" in err

    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert sample.main([str(tmp_path / "bad.npz")]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_defaults_resolve_to_the_main_job_and_presets_to_the_tutorial():
    train = load_script("train_lm")
    a = train.resolve(train.build_parser().parse_args([]))
    assert (a.model, a.data, a.batch_size) == ("gru", "chitchat", train.MAIN_JOB["batch_size"])
    p = train.resolve(train.build_parser().parse_args(["--preset", "tutorial-rnn", "--lr", "1"]))
    cfg = train.model_config(p)
    assert (cfg.cell, cfg.hidden_dim, cfg.emb_dim, cfg.bias, cfg.bptt_truncate) == (
        "rnn", 100, None, False, 4,
    )  # fmt: skip
    assert cfg.learning_rate == 1.0 and p.batch_size == 1 and cfg.optimizer == "sgd"
    g = train.model_config(
        train.resolve(train.build_parser().parse_args(["--preset", "tutorial-gru"]))
    )
    assert (g.layers, g.gate, g.emb_dim, g.optimizer) == (2, "hard_sigmoid", 128, "rmsprop")


@pytest.mark.slow
def test_main_job_beats_the_unigram_baseline_within_ten_minutes(tmp_path, capsys):
    import time

    train = load_script("train_lm")
    t = time.perf_counter()
    assert train.main(["--out", str(tmp_path), "--no-progress"]) == 0
    seconds = time.perf_counter() - t
    text = capsys.readouterr().out
    first = float(text.split("initial validation loss :")[1].split()[0])
    base = float(text.split("unigram baseline        :")[1].split()[0])
    final = float(text.split("final validation loss   :")[1].split()[0])
    assert abs(first - np.log(3000)) < 0.1
    assert final < base - 1.0, (first, base, final)
    assert seconds < 600
    header, *sentences = text.split("sampled sentences")[1].strip().splitlines()
    assert header.startswith("(temperature") and len(sentences) == 10
