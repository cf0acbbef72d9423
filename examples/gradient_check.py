"""Numeric vs symbolic gradients of the RNN, GRU and LSTM language models in ``models/``.

``T.grad`` derives back-propagation through time from the graph; this script checks it the way
the tutorial checks its hand-written ``bptt``: nudge one weight by ``+h`` and ``-h``, recompute
the loss, and compare the slope ``(L(w + h) - L(w - h)) / 2h`` with the symbolic gradient.
The relative error ``|a - b| / (|a| + |b|)`` must stay below a threshold (the tutorial's
h = 0.001 and 0.01).

Both of a model's graphs are checked on real sentences: the tutorial's one-sentence graph and the
padded, masked minibatch graph (where padding must contribute nothing).

In float64 the finite differences are accurate to ~h^2, so the errors printed are tiny. In
float32 (how the models train) the loss itself is only accurate to ~1e-7 of its value, which
makes the slope uncertain by about ``eps32 * |L| / 2h`` (~1e-3 here); the relative error is then
judged only for entries whose gradient is large enough that this noise cannot reach the
threshold (the "judged" column), the others are counted but not judged. A larger step
(``--h 0.01``) lowers the noise and judges more entries.

    python examples/gradient_check.py                       # float64, all three cells
    python examples/gradient_check.py --dtype float32 --cells gru
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` when run as a script

from models.data import bucket_batches, load_corpus  # noqa: E402
from models.lm import LanguageModel, LMConfig  # noqa: E402


def check_parameter(
    name: str,
    param,
    symbolic: np.ndarray,
    loss: Callable[[], float],
    h: float,
    threshold: float,
    noise: float,
    entries: np.ndarray,
) -> dict:
    """Compare ``symbolic`` with central differences of ``loss`` at the given flat ``entries`` of
    the shared variable ``param``. Returns the worst relative and absolute errors."""
    value = param.get_value()
    flat = value.reshape(-1)  # a view: writing flat[i] writes value
    worst_rel, worst_abs, failures, checked, resolved = 0.0, 0.0, [], 0, 0
    for i in entries:
        original = flat[i]
        flat[i] = original + h
        param.set_value(value)
        plus = loss()
        flat[i] = original - h
        param.set_value(value)
        minus = loss()
        flat[i] = original
        estimated = (plus - minus) / (2 * h)
        analytic = float(symbolic.reshape(-1)[i])
        diff = abs(analytic - estimated)
        denom = abs(analytic) + abs(estimated)
        checked += 1
        worst_abs = max(worst_abs, diff)
        # Judge the relative error only where rounding noise alone cannot exceed the threshold
        # (in float64 the noise is ~0: every entry with a nonzero gradient is judged; entries
        # where both are exactly zero, e.g. words absent from the sentence, are skipped).
        if denom == 0.0 or denom * threshold <= noise:
            continue
        resolved += 1
        rel = diff / denom
        worst_rel = max(worst_rel, rel)
        if rel > threshold:
            ix = np.unravel_index(i, value.shape)
            failures.append(f"{name}{tuple(int(k) for k in ix)}: numeric {estimated:.6g}, "
                            f"symbolic {analytic:.6g}, relative error {rel:.3g}")  # fmt: skip
    param.set_value(value)  # restore exactly
    return dict(
        name=name, shape=value.shape, checked=checked, judged=resolved, max_rel=worst_rel,
        max_abs=worst_abs, failures=failures,
    )  # fmt: skip


def check_model(
    model: LanguageModel,
    graph: str,
    data: tuple,
    h: float,
    threshold: float,
    max_entries: int | None,
    rng: np.random.Generator,
) -> list[dict]:
    """Check every parameter of ``model`` on one graph ('sentence' or 'batch')."""
    if graph == "sentence":
        x, y = data
        grads = model.sentence_gradients(x, y)
        loss = lambda: model.sentence_loss(x, y)  # noqa: E731 - summed cross-entropy
    else:
        x, y, mask = data
        grads = model.gradients(x, y, mask)
        loss = lambda: model.batch_loss(x, y, mask)[0]  # noqa: E731
    eps = np.finfo(model.config.dtype).eps
    # each loss value is rounded to ~eps * |L|; their difference, divided by 2h, carries a few
    # times eps * |L| / 2h of noise (measured: ~1x; we allow 4x)
    noise = 0.0 if model.config.dtype == "float64" else 4 * eps * abs(loss()) / (2 * h)
    results = []
    for name, param in model.params.items():
        size = param.get_value(borrow=True).size
        entries = np.arange(size)
        if max_entries is not None and size > max_entries:
            entries = np.sort(rng.choice(size, max_entries, replace=False))
        r = check_parameter(name, param, grads[name], loss, h, threshold, noise, entries)
        r["noise"] = noise
        results.append(r)
    return results


def real_data(source: str, vocab: int, max_comments: int, batch: int) -> tuple:
    """One real sentence (word ids) and one padded minibatch of real sentences of mixed length."""
    corpus = load_corpus(source, vocab_size=vocab, max_comments=max_comments, valid_fraction=0)
    X, Y = corpus.X_train, corpus.Y_train
    pairs = [(x, y) for x, y in zip(X, Y) if 4 <= len(x) <= 12]
    if len(pairs) < batch + 1:
        raise SystemExit(f"need {batch + 1} sentences of 4-12 words; read more comments")
    sentence = pairs[0]
    # sentences of different lengths: the shorter ones are padded, so the mask is exercised
    chosen = pairs[1 : batch + 1]
    (xb, yb, mb), *_ = bucket_batches([p[0] for p in chosen], [p[1] for p in chosen], batch)
    words = corpus.vocab.index_to_word
    print(f"sentence: {' '.join(words[i] for i in sentence[0])!r}")
    print(f"minibatch: {xb.shape[1]} sentences, lengths {mb.sum(axis=0).astype(int).tolist()}")
    return sentence, (xb, yb, mb), len(words)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cells", default="rnn,gru,lstm")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--h", type=float, default=0.001, help="finite-difference step")
    ap.add_argument("--threshold", type=float, default=0.01, help="largest relative error")
    ap.add_argument("--vocab", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=6)
    ap.add_argument("--layers", type=int, default=2, help="layers of the GRU and LSTM")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--max-entries", type=int, default=None, help="check a random subset")
    ap.add_argument("--graphs", default="sentence,batch")
    ap.add_argument("--data", default="chitchat")
    ap.add_argument("--max-comments", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    sentence, batch, vocab = real_data(args.data, args.vocab, args.max_comments, args.batch)
    rng = np.random.default_rng(args.seed)
    print(f"h = {args.h}, threshold = {args.threshold}, {args.dtype}\n")
    report: dict = {}
    failed = []
    for cell in args.cells.split(","):
        # the tutorial's shapes: the RNN reads columns of U (no embedding, no biases); the GRU
        # and LSTM have an embedding, biases and stacked layers. Full BPTT (bptt_truncate=-1):
        # finite differences see the whole gradient.
        rnn = cell == "rnn"
        config = LMConfig(
            cell=cell, vocab_size=vocab, hidden_dim=args.hidden,
            emb_dim=None if rnn else args.hidden, layers=1 if rnn else args.layers,
            bias=not rnn, gate="sigmoid", bptt_truncate=-1, optimizer="sgd", dtype=args.dtype,
        )  # fmt: skip
        model = LanguageModel(config, seed=args.seed)
        for graph in args.graphs.split(","):
            t0 = time.perf_counter()
            data = sentence if graph == "sentence" else batch
            results = check_model(model, graph, data, args.h, args.threshold, args.max_entries, rng)
            seconds = time.perf_counter() - t0
            print(f"{cell.upper()} ({graph} graph, {seconds:.1f} s)")
            print(f"  {'param':6s} {'shape':>12s} {'checked':>8s} {'judged':>7s} "
                  f"{'max rel err':>12s} {'max abs err':>12s}  result")  # fmt: skip
            for r in results:
                ok = "ok" if not r["failures"] else f"FAILED ({len(r['failures'])})"
                print(f"  {r['name']:6s} {str(r['shape']):>12s} {r['checked']:8d} {r['judged']:7d} "
                      f"{r['max_rel']:12.2e} {r['max_abs']:12.2e}  {ok}")  # fmt: skip
                for f in r["failures"][:3]:
                    print(f"      {f}")
                if r["failures"]:
                    failed.append(f"{cell}/{graph}/{r['name']}")
            noise = results[0]["noise"] if results else 0.0
            if noise:
                floor = noise / args.threshold
                print(f"  (float32: the slope carries ~{noise:.1e} of rounding noise; only "
                      f"entries with |a| + |b| > {floor:.2g} are judged)")  # fmt: skip
            report[(cell, graph)] = results
    print("\nall gradient checks passed" if not failed else f"\nFAILED: {', '.join(failed)}")
    report["passed"] = not failed
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
