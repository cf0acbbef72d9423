"""Vanishing gradients (part 3 of the tutorial series), measured on real sentences.

Back-propagation through time multiplies, for every step it goes back, by the Jacobian of one
step. For the plain RNN, s_t = tanh(U x_t + W s_{t-1}), that Jacobian is
diag(1 - s_t^2) W: tanh' <= 1 and a W with small singular values shrink the gradient
geometrically, so a loss term L_t barely reaches a state s_k a few steps back — the RNN cannot
learn long-range dependencies. The GRU and the LSTM add a path through which the state is
*copied* (GRU: s_t = (1 - z) * c + z * s_{t-1}; LSTM: c_t = f * c_{t-1} + i * g), and the
gradient along it is scaled by a gate (z, f) instead of a matrix product, so it can survive
many steps.

This script measures it. For each model it computes ||dL_t / ds_k|| for every loss term t and
every earlier state k of real sentences from the default corpus, averages by distance t - k,
plots the curves (untrained and after a short training) and says at what distance each falls
below 1e-3 of its value at distance 0, and by what factor it shrinks per step further back.
(At distance 0 the loss also reaches the state directly through the output layer; after
training that direct term can be much larger than anything carried by the recurrence, which
makes a curve drop steeply at the first step and then decay at its recurrent rate.)

How the gradient with respect to a *state* is obtained: the step function adds an input e_k
(all zeros) to its new state, s_k = cell(x_k, s_{k-1}) + e_k. Then dL_t/de_k is exactly the
total derivative dL_t/ds_k (through every later step), and ``T.grad(L_t, e)`` gives it for all k
at once. (``T.grad(L_t, s)`` with ``s`` the scan's output sequence would give only the direct
part, dL_t/ds_t, because the recurrence lives inside the scan.)

    python examples/vanishing_gradients.py                  # writes vanishing_gradients.png
    python examples/vanishing_gradients.py --out plot.png --train-steps 0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` when run as a script

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from models.cells import Weights, gru_cell, layer_inputs, lstm_cell, rnn_cell  # noqa: E402
from models.data import bucket_batches, load_corpus  # noqa: E402
from models.lm import LanguageModel, LMConfig  # noqa: E402


def state_gradient_function(model: LanguageModel) -> sg.Function:
    """``f(x, y, e, t) -> dL_t/ds`` ``[n, S]``: row k is the gradient of the loss at step t with
    respect to the state after step k (S = H; for the LSTM S = 2H: h and the memory c)."""
    layout, cfg = model.layout, model.config
    H, names = layout.hidden_dim, list(model.params)
    n_states = layout.n_states  # 1 (RNN, GRU) or 2 (LSTM: h, c)
    x, y, t = T.ivector("x"), T.ivector("y"), T.iscalar("t")
    e = T.tensor(cfg.dtype, (None, None), name="e")  # zeros [n, S]: the probe

    def step(x_t, e_t, *args):
        states, tensors = args[:n_states], args[n_states:]
        w = Weights(layout, dict(zip(names, tensors)), cfg.gate, batched=False)
        inp = layer_inputs(w, 0, x_t)  # g -> U_g x_t (through the embedding, if any)
        if layout.cell == "rnn":
            return rnn_cell(w, 0, inp, *states) + e_t
        if layout.cell == "gru":
            return gru_cell(w, 0, inp, *states) + e_t
        h, c = lstm_cell(w, 0, inp, *states)
        return [h + e_t[:H], c + e_t[H:]]

    zeros = T.zeros(H, dtype=cfg.dtype)
    outs, _ = sg.scan(
        step,
        sequences=[x, e],
        outputs_info=[dict(initial=zeros) for _ in range(n_states)],
        non_sequences=list(model.params.values()),
    )
    h = outs[0] if n_states > 1 else outs  # [n, H], the hidden states the softmax reads
    logits = h.dot(model.params["V"].T)
    if "c" in model.params:
        logits = logits + model.params["c"]
    loss_t = -T.nnet.log_softmax(logits)[t, y[t]]  # L_t = -log p(y_t | x_0..x_t)
    return sg.function([x, y, e, t], T.grad(loss_t, e))


def gradient_by_distance(f: sg.Function, sequences: list, state_size: int, dtype: str) -> dict:
    """Mean ||dL_t/ds_k|| for each distance d = t - k over all sequences and t >= d."""
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for x, y in sequences:
        n = len(x)
        e = np.zeros((n, state_size), dtype=dtype)
        for t in range(n):
            g = f(x, y, e, t)
            norms = np.linalg.norm(g[: t + 1].astype(np.float64), axis=1)  # k = 0..t
            for k in range(t + 1):
                d = t - k
                sums[d] = sums.get(d, 0.0) + norms[k]
                counts[d] = counts.get(d, 0) + 1
            # states after t cannot influence L_t: their gradient must be exactly zero
            assert not np.any(g[t + 1 :]), "a later state changed an earlier loss term"
    return {d: sums[d] / counts[d] for d in sorted(sums)}


def vanishing_distance(curve: dict, ratio: float = 1e-3) -> int | None:
    """First distance at which the curve is below ``ratio`` times its value at distance 0."""
    for d, v in curve.items():
        if v < ratio * curve[0]:
            return d
    return None


def decay_per_step(curve: dict) -> float:
    """Geometric mean factor by which the curve shrinks per step, from distance 1 to the last.

    Distance 0 is left out: there the loss also reaches the state directly, through the output
    layer, which the states further back are reached only through the recurrence."""
    last = max(curve)
    if last < 2 or curve[1] <= 0:
        return float("nan")
    return float((curve[last] / curve[1]) ** (1.0 / (last - 1)))


def long_sentences(X: list, Y: list, seq_len: int, count: int) -> list[tuple]:
    """The first ``count`` sentences with at least ``seq_len`` words, cut to ``seq_len``.

    Single sentences, not a stream of several: across a sentence boundary a trained model
    should forget (the previous sentence says little about the next), which would mix that
    learned forgetting into the measurement."""
    out = [(x[:seq_len], y[:seq_len]) for x, y in zip(X, Y) if len(x) >= seq_len]
    if not out:
        raise SystemExit(f"no sentence has {seq_len} words; lower --seq-len or read more data")
    return out[:count]


def streams(X: list, Y: list, seq_len: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive sentences joined into one stream and cut into ``count`` sequences of
    ``seq_len`` words (the markers SENTENCE_END SENTENCE_START separate the sentences)."""
    # X = s[:-1], Y = s[1:]; the whole sentence is X followed by the last word of Y
    stream = np.concatenate([np.append(x, y[-1]) for x, y in zip(X, Y)]).astype(np.int32)
    out = []
    for start in range(0, len(stream) - seq_len - 1, seq_len):
        if len(out) == count:
            break
        out.append((stream[start : start + seq_len], stream[start + 1 : start + seq_len + 1]))
    return out


def short_training(model: LanguageModel, X: list, Y: list, steps: int, batch: int) -> list:
    """``steps`` optimizer steps on minibatches of sentences; returns the per-word losses."""
    losses, done, epoch = [], 0, 0
    while done < steps:
        for xb, yb, mb in bucket_batches(X, Y, batch, seed=epoch):
            ce, n = model.train_step(xb, yb, mb)
            losses.append(ce / n)
            done += 1
            if done == steps:
                break
        epoch += 1
    return losses


def plot(curves: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    colors = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (cell, stage), curve in curves.items():
        d = np.array(list(curve))
        v = np.array(list(curve.values()))
        ax.semilogy(
            d, v / v[0], color=colors.get(cell, "k"), linestyle="-" if stage == "trained" else "--",
            marker="o", markersize=3, label=f"{cell.upper()} ({stage})",
        )  # fmt: skip
    ax.axhline(1e-3, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("distance t - k (steps back)")
    ax.set_ylabel("mean ||dL_t / ds_k||, relative to distance 0")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="chitchat")
    ap.add_argument("--max-comments", type=int, default=2000)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--cells", default="rnn,gru,lstm")
    ap.add_argument("--seq-len", type=int, default=25, help="words per measured sequence")
    ap.add_argument(
        "--measure-on", choices=("sentences", "stream"), default="sentences",
        help="long single sentences, or consecutive sentences joined into one stream",
    )  # fmt: skip
    ap.add_argument("--sequences", type=int, default=10, help="sequences to average over")
    ap.add_argument("--train-steps", type=int, default=300, help="0: untrained only")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.005, help="Adam learning rate")
    ap.add_argument("--out", default="vanishing_gradients.png")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    corpus = load_corpus(
        args.data, vocab_size=args.vocab, max_comments=args.max_comments, valid_fraction=0
    )
    X, Y = corpus.X_train, corpus.Y_train
    pick = long_sentences if args.measure_on == "sentences" else streams
    seqs = pick(X, Y, args.seq_len, args.sequences)
    words = corpus.vocab.index_to_word
    sample = " ".join(words[i] for i in seqs[0][0][:15])
    print(f"{len(X)} sentences, vocabulary {len(words)}; measuring on {len(seqs)} sequences of "
          f"{args.seq_len} words, e.g. {sample!r} ...")  # fmt: skip

    curves: dict = {}
    summary: dict = {}
    for cell in args.cells.split(","):
        config = LMConfig(
            cell=cell, vocab_size=len(words), hidden_dim=args.hidden,
            emb_dim=None if cell == "rnn" else args.hidden, layers=1, bias=cell != "rnn",
            gate="sigmoid", optimizer="adam", learning_rate=args.lr,
        )  # fmt: skip
        model = LanguageModel(config, seed=args.seed)
        f = state_gradient_function(model)
        state_size = args.hidden * model.layout.n_states
        stages = ["untrained"] + (["trained"] if args.train_steps > 0 else [])
        for stage in stages:
            t0 = time.perf_counter()
            note = ""
            if stage == "trained":
                losses = short_training(model, X, Y, args.train_steps, args.batch)
                k = max(1, len(losses) // 10)
                note = f", loss {np.mean(losses[:k]):.2f} -> {np.mean(losses[-k:]):.2f}"
            curve = gradient_by_distance(f, seqs, state_size, config.dtype)
            curves[(cell, stage)] = curve
            d = vanishing_distance(curve)
            rate = decay_per_step(curve)
            summary[(cell, stage)] = {"below_1e-3_at": d, "decay_per_step": rate}
            when = f"at distance {d:2d}" if d is not None else f"not within {max(curve)} steps"
            print(f"{cell.upper():4s} {stage:9s}: below 1e-3 of its distance-0 value {when}; "
                  f"x{rate:.2f} per step  ({time.perf_counter() - t0:.1f} s{note})")  # fmt: skip

    path = plot(curves, Path(args.out), f"Gradient reaching back in time ({args.hidden} units)")
    print(f"plot: {path}")
    return {"curves": curves, "summary": summary, "plot": path}


if __name__ == "__main__":
    main()
