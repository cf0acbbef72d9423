"""The RNN language model of the tutorial series (part 2), twice: in NumPy and as a symgraph graph.

Part 1 — NumPy, from scratch (the tutorial's ``RNNNumpy``)
    s_t = tanh(U[:, x_t] + W s_{t-1})        hidden state, s_{-1} = 0     U [H, V], W [H, H]
    o_t = softmax(V s_t)                      next-word distribution       V [V, H]
    L   = -sum_t log o_t[y_t]                 cross-entropy of the sentence
  with back-propagation through time truncated to ``bptt_truncate`` steps, the tutorial's
  finite-difference gradient check (h = 0.001, relative error threshold 0.01), and SGD that halves
  the learning rate whenever the loss goes up.

Part 2 — the same model as a symgraph graph (the tutorial's ``RNNTheano``): ``sg.scan`` for the
  recurrence, ``T.grad`` for BPTT, ``sg.function(..., updates=...)`` for the SGD step.

Part 3 — the two compared in float64 on real sentences: forward probabilities and gradients agree
  to rounding error, for full and for truncated BPTT.

    python examples/rnn_numpy.py                      # sentences from the chitchat corpus
    python examples/rnn_numpy.py --data my.csv        # a CSV with a `body` column, or a text file
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

# ---------------------------------------------------------------------------------------------
# Part 1: NumPy
# ---------------------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    # subtracting the max changes nothing mathematically and keeps exp() from overflowing
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


class RNNNumpy:
    """The tutorial's model. Weights are uniform in +-1/sqrt(n), n = number of incoming links."""

    def __init__(
        self,
        word_dim: int,
        hidden_dim: int = 100,
        bptt_truncate: int = 4,
        seed: int = 0,
        dtype: str = "float64",
    ) -> None:
        rng = np.random.default_rng(seed)
        self.word_dim, self.hidden_dim, self.bptt_truncate = word_dim, hidden_dim, bptt_truncate

        def init(shape: tuple[int, int], fan_in: int) -> np.ndarray:
            return rng.uniform(-np.sqrt(1.0 / fan_in), np.sqrt(1.0 / fan_in), shape).astype(dtype)

        self.U = init((hidden_dim, word_dim), word_dim)
        self.V = init((word_dim, hidden_dim), hidden_dim)
        self.W = init((hidden_dim, hidden_dim), hidden_dim)

    def forward_propagation(self, x: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(o [T, V], s [T + 1, H])``. ``s[-1]`` is the initial state (zeros), so the loop's
        ``s[t - 1]`` at ``t = 0`` reads it without a special case."""
        n = len(x)
        s = np.zeros((n + 1, self.hidden_dim), dtype=self.U.dtype)
        o = np.zeros((n, self.word_dim), dtype=self.U.dtype)
        for t in range(n):
            # U[:, x_t] is U times the one-hot vector of word x_t: a column lookup
            s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
            o[t] = softmax(self.V.dot(s[t]))
        return o, s

    def predict(self, x: Sequence[int]) -> np.ndarray:
        o, _ = self.forward_propagation(x)
        return np.argmax(o, axis=1)

    def calculate_total_loss(self, X: Sequence[Sequence[int]], Y: Sequence[Sequence[int]]) -> float:
        loss = 0.0
        for x, y in zip(X, Y):
            o, _ = self.forward_propagation(x)
            # the probability the model gave to each correct next word
            loss -= np.sum(np.log(o[np.arange(len(y)), y]))
        return float(loss)

    def calculate_loss(self, X: Sequence[Sequence[int]], Y: Sequence[Sequence[int]]) -> float:
        """Mean cross-entropy per word (log(V) for a model that knows nothing)."""
        return self.calculate_total_loss(X, Y) / sum(len(y) for y in Y)

    def bptt(self, x: Sequence[int], y: Sequence[int]) -> list[np.ndarray]:
        """Gradients ``[dL/dU, dL/dV, dL/dW]`` of the sentence loss, by BPTT.

        Each loss term L_t is propagated back through at most ``bptt_truncate`` earlier steps
        (steps t, t-1, ..., t - bptt_truncate), exactly as in the tutorial.
        """
        n = len(y)
        o, s = self.forward_propagation(x)
        dLdU, dLdV, dLdW = np.zeros_like(self.U), np.zeros_like(self.V), np.zeros_like(self.W)
        # dL_t/d(V s_t) for softmax + cross-entropy is o_t - onehot(y_t)
        delta_o = o
        delta_o[np.arange(n), y] -= 1.0
        for t in reversed(range(n)):
            dLdV += np.outer(delta_o[t], s[t])
            # back through V and through tanh (tanh' = 1 - tanh^2) into the pre-activation at t
            delta_t = self.V.T.dot(delta_o[t]) * (1 - s[t] ** 2)
            for step in reversed(range(max(0, t - self.bptt_truncate), t + 1)):
                # the pre-activation at `step` is U[:, x_step] + W s_{step-1}
                dLdW += np.outer(delta_t, s[step - 1])
                dLdU[:, x[step]] += delta_t
                # one step further back: through W, then through tanh at step-1
                delta_t = self.W.T.dot(delta_t) * (1 - s[step - 1] ** 2)
        return [dLdU, dLdV, dLdW]

    def gradient_check(
        self,
        x: Sequence[int],
        y: Sequence[int],
        h: float = 0.001,
        error_threshold: float = 0.01,
        verbose: bool = True,
    ) -> dict[str, float]:
        """Compare ``bptt`` with central differences, one weight at a time (the tutorial's check).

        Returns the largest relative error per parameter; raises ``AssertionError`` naming the
        weight when one exceeds ``error_threshold``. Cost: two forward passes per weight, so use
        a small vocabulary and hidden size (and ``bptt_truncate`` >= len(x), since the finite
        differences see the full gradient).
        """
        grads = self.bptt(x, y)
        worst: dict[str, float] = {}
        for name, analytic in zip("UVW", grads):
            p = getattr(self, name)
            worst[name] = 0.0
            for ix in np.ndindex(p.shape):
                original = p[ix]
                p[ix] = original + h
                plus = self.calculate_total_loss([x], [y])
                p[ix] = original - h
                minus = self.calculate_total_loss([x], [y])
                p[ix] = original
                estimated = (plus - minus) / (2 * h)
                denom = abs(analytic[ix]) + abs(estimated)
                if denom == 0.0:  # a word that never occurs: both gradients are exactly zero
                    continue
                rel = abs(analytic[ix] - estimated) / denom
                worst[name] = max(worst[name], rel)
                if rel > error_threshold:
                    raise AssertionError(
                        f"gradient check failed for {name}{ix}: +h loss {plus}, -h loss {minus}, "
                        f"estimated {estimated}, backprop {analytic[ix]}, relative error {rel}"
                    )
            if verbose:
                err = worst[name]
                print(f"  gradient check for {name} {p.shape} passed (max rel. error {err:.2e})")
        return worst

    def sgd_step(self, x: Sequence[int], y: Sequence[int], learning_rate: float) -> None:
        dLdU, dLdV, dLdW = self.bptt(x, y)
        self.U -= learning_rate * dLdU
        self.V -= learning_rate * dLdV
        self.W -= learning_rate * dLdW


def train_with_sgd(
    model,
    X: Sequence[np.ndarray],
    Y: Sequence[np.ndarray],
    learning_rate: float = 0.005,
    nepoch: int = 100,
    evaluate_loss_after: int = 5,
    verbose: bool = True,
) -> list[tuple[int, float]]:
    """The tutorial's loop: one SGD step per sentence; every ``evaluate_loss_after`` epochs the
    loss is measured, and the learning rate is halved if it went up. Works for any object with
    ``calculate_loss`` and ``sgd_step`` (the NumPy and the symgraph model alike)."""
    losses: list[tuple[int, float]] = []
    seen = 0
    for epoch in range(nepoch):
        if epoch % evaluate_loss_after == 0:
            loss = model.calculate_loss(X, Y)
            losses.append((seen, loss))
            if verbose:
                print(f"  epoch {epoch:3d}  sentences seen {seen:6d}  loss {loss:.4f}")
            if len(losses) > 1 and losses[-1][1] > losses[-2][1]:
                learning_rate *= 0.5  # overshot: take smaller steps
                if verbose:
                    print(f"  setting learning rate to {learning_rate:g}")
        for x, y in zip(X, Y):
            model.sgd_step(x, y, learning_rate)
            seen += 1
    losses.append((seen, model.calculate_loss(X, Y)))
    if verbose:
        print(f"  final          sentences seen {seen:6d}  loss {losses[-1][1]:.4f}")
    return losses


# ---------------------------------------------------------------------------------------------
# Part 2: the same model as a symgraph graph
# ---------------------------------------------------------------------------------------------


class RNNSymgraph:
    """The tutorial's ``RNNTheano``: the same math, written once as a graph.

    The weights live in shared variables (state kept between calls); ``sg.scan`` runs the step
    function over the words of a sentence; ``T.grad`` derives BPTT from the graph, and
    ``sg.function`` compiles the forward pass, the gradients and one SGD step (``updates``).
    """

    def __init__(self, U: np.ndarray, V: np.ndarray, W: np.ndarray, bptt_truncate: int = 4) -> None:
        self.hidden_dim, self.word_dim = U.shape
        self.bptt_truncate = bptt_truncate
        dtype = U.dtype.name
        self.U, self.V, self.W = (sg.shared(p, name=n) for p, n in ((U, "U"), (V, "V"), (W, "W")))
        x = T.ivector("x")  # word ids of one sentence
        y = T.ivector("y")  # the same sentence shifted by one: the words to predict

        def forward_prop_step(x_t, s_t_prev, U, V, W):
            s_t = T.tanh(U[:, x_t] + W.dot(s_t_prev))
            o_t = T.nnet.softmax(V.dot(s_t))  # a [1, V] row, as in Theano
            return [o_t[0], s_t]

        # outputs_info: None for o (not fed back), an initial value for s (fed back as s_t_prev).
        # bptt_truncate=k: each loss term back-propagates through at most k earlier steps,
        # exactly like RNNNumpy.bptt (Theano's truncate_gradient=k means something else: only the
        # last k steps of the sequence get any gradient).
        [o, s], _ = sg.scan(
            forward_prop_step,
            sequences=x,
            outputs_info=[None, dict(initial=T.zeros(self.hidden_dim, dtype=dtype))],
            non_sequences=[self.U, self.V, self.W],
            bptt_truncate=bptt_truncate,
        )
        prediction = T.argmax(o, axis=1)
        o_error = T.sum(T.nnet.categorical_crossentropy(o, y))
        dU, dV, dW = T.grad(o_error, [self.U, self.V, self.W])
        lr = T.scalar("learning_rate", dtype=dtype)

        self.forward_propagation = sg.function([x], o)
        self.predict = sg.function([x], prediction)
        self.ce_error = sg.function([x, y], o_error)
        self.bptt = sg.function([x, y], [dU, dV, dW])
        # one SGD step: the updates are computed from the old weights, then assigned together
        self._sgd_step = sg.function(
            [x, y, lr],
            [],
            updates=[
                (self.U, self.U - lr * dU),
                (self.V, self.V - lr * dV),
                (self.W, self.W - lr * dW),
            ],
        )
        self._dtype = dtype

    def sgd_step(self, x: Sequence[int], y: Sequence[int], learning_rate: float) -> None:
        self._sgd_step(x, y, np.asarray(learning_rate, dtype=self._dtype))

    def calculate_total_loss(self, X: Sequence[Sequence[int]], Y: Sequence[Sequence[int]]) -> float:
        return float(sum(self.ce_error(x, y) for x, y in zip(X, Y)))

    def calculate_loss(self, X: Sequence[Sequence[int]], Y: Sequence[Sequence[int]]) -> float:
        return self.calculate_total_loss(X, Y) / sum(len(y) for y in Y)


# ---------------------------------------------------------------------------------------------
# Part 3: compare, then train
# ---------------------------------------------------------------------------------------------


def load_sentences(
    data: str, max_comments: int, vocab_size: int, max_len: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Word-id sentences ``X = s[:-1], Y = s[1:]`` from the default corpus (or ``data``)."""
    from models.data import load_corpus

    corpus = load_corpus(data, vocab_size=vocab_size, max_comments=max_comments, valid_fraction=0)
    pairs = [(x, y) for x, y in zip(corpus.X_train, corpus.Y_train) if len(x) <= max_len]
    return [x for x, _ in pairs], [y for _, y in pairs], corpus.vocab.index_to_word


def compare(numpy_model: RNNNumpy, graph_model: RNNSymgraph, X, Y) -> dict[str, float]:
    """Largest absolute differences between the two implementations over the sentences."""
    diffs = {"o": 0.0, "dU": 0.0, "dV": 0.0, "dW": 0.0}
    for x, y in zip(X, Y):
        o_np, _ = numpy_model.forward_propagation(x)
        diffs["o"] = max(
            diffs["o"], float(np.max(np.abs(o_np - graph_model.forward_propagation(x))))
        )
        for name, g_np, g_sg in zip(
            ("dU", "dV", "dW"), numpy_model.bptt(x, y), graph_model.bptt(x, y)
        ):
            diffs[name] = max(diffs[name], float(np.max(np.abs(g_np - g_sg))))
    return diffs


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", default="chitchat", help="'chitchat' (default), a .csv or a text file"
    )
    ap.add_argument("--max-comments", type=int, default=400, help="comments to read")
    ap.add_argument("--vocab", type=int, default=400, help="vocabulary size")
    ap.add_argument("--hidden", type=int, default=32, help="hidden units")
    ap.add_argument("--bptt-truncate", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=20, help="drop longer sentences")
    ap.add_argument("--sentences", type=int, default=100, help="training sentences")
    ap.add_argument("--compare", type=int, default=10, help="sentences to compare on")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--check-vocab", type=int, default=30, help="vocabulary of the gradient check")
    ap.add_argument("--check-hidden", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    X, Y, words = load_sentences(args.data, args.max_comments, args.vocab, args.max_len)
    X, Y = X[: args.sentences], Y[: args.sentences]
    V = len(words)
    print(f"{len(X)} sentences, vocabulary {V}; e.g. {' '.join(words[i] for i in X[0])!r}")
    result: dict = {"sentences": len(X), "vocab": V}

    # 1. the tutorial's gradient check, on a small copy of the problem (it costs two forward
    #    passes per weight). Word ids are taken modulo the small vocabulary.
    print("\n1. gradient check (NumPy BPTT vs finite differences, h=0.001, threshold 0.01):")
    small = RNNNumpy(args.check_vocab, args.check_hidden, bptt_truncate=1000, seed=args.seed)
    xs, ys = X[0] % args.check_vocab, Y[0] % args.check_vocab
    result["gradient_check"] = small.gradient_check(xs, ys)

    # 2. the NumPy model and the graph, same float64 weights, on real sentences
    print(f"\n2. NumPy vs symgraph, float64, {min(args.compare, len(X))} sentences:")
    with sg.config.change_flags(floatX="float64"):
        for k in (1000, args.bptt_truncate):
            ref = RNNNumpy(V, args.hidden, bptt_truncate=k, seed=args.seed)
            graph = RNNSymgraph(ref.U, ref.V, ref.W, bptt_truncate=k)
            d = compare(ref, graph, X[: args.compare], Y[: args.compare])
            label = "full BPTT" if k == 1000 else f"bptt_truncate={k}"
            print(f"  {label:18s} max |diff|: " + ", ".join(f"{n} {v:.1e}" for n, v in d.items()))
            result[f"diff_truncate_{k}"] = d

    # 3. train both with the tutorial's SGD loop, float32 for the graph as a user would run it
    print(f"\n3. training, {args.epochs} epochs of SGD on {len(X)} sentences (lr {args.lr}):")
    for name in ("numpy", "symgraph"):
        ref = RNNNumpy(V, args.hidden, args.bptt_truncate, seed=args.seed, dtype="float32")
        model = ref if name == "numpy" else RNNSymgraph(ref.U, ref.V, ref.W, args.bptt_truncate)
        print(f" {name}:")
        t0 = time.perf_counter()
        losses = train_with_sgd(
            model, X, Y, args.lr, args.epochs, evaluate_loss_after=max(1, args.epochs // 5)
        )
        seconds = time.perf_counter() - t0
        steps = args.epochs * len(X)
        per_step = 1e3 * seconds / max(steps, 1)
        print(f"  {seconds:.2f} s, {per_step:.2f} ms per SGD step (loss evaluations included)")
        result[f"losses_{name}"] = losses
        result[f"model_{name}"] = model
    model = result["model_symgraph"]
    print(f"\nexpected loss of a random model: log(V) = {np.log(V):.3f}")
    x = X[0]
    guess = model.predict(x)
    print("input:     ", " ".join(words[i] for i in x))
    print("predicted: ", " ".join(words[i] for i in guess))
    return result


if __name__ == "__main__":
    main()
