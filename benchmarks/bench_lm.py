#!/usr/bin/env python
"""Training speed of the language models: tokens per second of one optimizer step.

    python benchmarks/bench_lm.py [--repeats 30] [--only rnn,gru,batched]

Cases: the tutorial RNN (vocab 8000, hidden 100, one 20-word sentence, SGD, bptt_truncate=4)
beside the same step hand-written in NumPy (the tutorial's forward + bptt + SGD); the tutorial
GRU (vocab 8000, E [128, 8000], two GRU layers of 128, one sentence, RMSProp); a batched GRU
(batch 32 x 32 steps, hidden 256, embedding 128, vocab 8000, Adam). Timings are medians of
``--repeats`` steps after two warm-up steps; compilation is reported separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    # BLAS threads must be fixed before NumPy loads; both sides of every comparison share it
    _n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), "1")
    if _n != "0":
        for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(_var, _n)

try:
    import models  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from models.lm import LanguageModel, LMConfig  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class NumpyTutorialRNN:
    """The tutorial's RNNNumpy training step (forward, truncated bptt, SGD), float32."""

    def __init__(self, U, V, W, bptt_truncate=4):
        self.U, self.V, self.W, self.k = U.copy(), V.copy(), W.copy(), bptt_truncate

    def sgd_step(self, x, y, lr):
        U, V, W, k = self.U, self.V, self.W, self.k
        n, H = len(x), W.shape[0]
        s = np.zeros((n + 1, H), U.dtype)
        for t in range(n):
            s[t] = np.tanh(U[:, x[t]] + W @ s[t - 1])
        logits = s[:n] @ V.T  # the output layer for all steps at once, as NumPy users would
        o = np.exp(logits - logits.max(1, keepdims=True))
        o /= o.sum(1, keepdims=True)
        d_out = o
        d_out[np.arange(n), y] -= 1
        dV = d_out.T @ s[:n]
        dU, dW = np.zeros_like(U), np.zeros_like(W)
        back = (d_out @ V) * (1 - s[:n] ** 2)
        for t in range(n - 1, -1, -1):
            delta = back[t]
            for j in range(t, max(0, t - k) - 1, -1):
                dW += np.outer(delta, s[j - 1])
                dU[:, x[j]] += delta
                delta = (W.T @ delta) * (1 - s[j - 1] ** 2)
        self.U -= lr * dU
        self.V -= lr * dV
        self.W -= lr * dW


def sentence_case(preset: str, n_words: int, repeats: int, rng) -> dict:
    cfg = LMConfig.preset(preset)
    t = time.perf_counter()
    m = LanguageModel(cfg, seed=0)
    m.compile_all(sentence=True)
    compile_s = time.perf_counter() - t
    x = rng.integers(0, cfg.vocab_size, n_words).astype(np.int32)
    y = rng.integers(0, cfg.vocab_size, n_words).astype(np.int32)
    sec = median_seconds(lambda: m.sentence_train_step(x, y, cfg.learning_rate), repeats)
    row = dict(case=f"{preset} (1 x {n_words} words)", ms=1e3 * sec, tok_s=n_words / sec,
               compile_s=compile_s)  # fmt: skip
    if preset == "tutorial-rnn":
        p = m.get_params()
        ref = NumpyTutorialRNN(p["U"], p["V"], p["W"], cfg.bptt_truncate)
        nsec = median_seconds(lambda: ref.sgd_step(x, y, np.float32(0.005)), repeats)
        row["numpy_ms"] = 1e3 * nsec
    return row


def batched_case(repeats: int, rng, B=32, T=32) -> dict:
    cfg = LMConfig(cell="gru", vocab_size=8000, hidden_dim=256, emb_dim=128, layers=1,
                   optimizer="adam", learning_rate=0.001)  # fmt: skip
    t = time.perf_counter()
    m = LanguageModel(cfg, seed=0)
    m.compile_all()
    compile_s = time.perf_counter() - t
    x = rng.integers(0, 8000, (T, B)).astype(np.int32)
    y = rng.integers(0, 8000, (T, B)).astype(np.int32)
    mask = np.ones((T, B), np.float32)
    sec = median_seconds(lambda: m.train_step(x, y, mask), repeats)
    return dict(case=f"batched GRU ({B} x {T}, H 256, E 128)", ms=1e3 * sec, tok_s=B * T / sec,
                compile_s=compile_s)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--words", type=int, default=20, help="sentence length of the presets")
    p.add_argument("--only", default="rnn,gru,batched")
    p.add_argument("--threads", default="1", help="--threads=N BLAS threads (0: default)")
    args = p.parse_args(argv)
    sg.config.device = "cpu"
    rng = np.random.default_rng(0)
    which = set(args.only.split(","))
    rows = []
    if "rnn" in which:
        rows.append(sentence_case("tutorial-rnn", args.words, args.repeats, rng))
    if "gru" in which:
        rows.append(sentence_case("tutorial-gru", args.words, args.repeats, rng))
    if "batched" in which:
        rows.append(batched_case(args.repeats, rng))
    print(f"{'case':42s} {'ms/step':>9s} {'tokens/s':>10s} {'NumPy ms':>9s} {'ratio':>6s} "
          f"{'compile s':>9s}")  # fmt: skip
    for r in rows:
        npm = r.get("numpy_ms")
        extra = f"{npm:9.2f} {npm / r['ms']:6.2f}" if npm else f"{'-':>9s} {'-':>6s}"
        print(f"{r['case']:42s} {r['ms']:9.2f} {r['tok_s']:10.0f} {extra} {r['compile_s']:9.1f}")
    print("ratio = NumPy time / symgraph time (> 1: symgraph is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
