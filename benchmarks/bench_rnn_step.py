"""One SGD step of the tutorial RNN: symgraph (scan) against hand-written NumPy, same process.

The model is the WildML tutorial's (C words, H hidden units, no biases):
``s_t = tanh(U[:, x_t] + W s_{t-1})``, ``o_t = softmax(V s_t)``, loss = sum of cross-entropies.
It is written with ``T`` and ``scan`` in the tutorial's style (the softmax inside the step); the
scan rewrites move the embedding lookup before the loop and the output layer after it.

NumPy baselines (float32, same weights and sentences):

- ``numpy``: what a careful NumPy programmer writes: the recurrence in a Python loop, the output
  layer and its gradient as whole-sentence matrix products, BPTT as in the tutorial (per-term
  truncation ``bptt_truncate=k``: for each t, the delta goes back to ``max(0, t - k)``).
- ``numpy-tutorial``: the tutorial's code as written (softmax and ``np.outer`` per step).

Run: ``python benchmarks/bench_rnn_step.py [--steps N] [--quick]``. Prints medians and ratios
(symgraph time / NumPy time; below 1 means symgraph is faster).

BLAS runs on one thread unless ``BLAS_THREADS`` says otherwise: with these small products,
OpenBLAS's thread hand-offs on a busy 2-core machine cost more than they save (a 20 x 8000 by
8000 x 100 product measured 0.6 ms on one thread and up to 145 ms on two under load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("BLAS_THREADS", "1"))

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

C, H = 8000, 100
DT = np.float32


def make_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "U": rng.uniform(-np.sqrt(1 / C), np.sqrt(1 / C), (H, C)).astype(DT),
        "V": rng.uniform(-np.sqrt(1 / H), np.sqrt(1 / H), (C, H)).astype(DT),
        "W": rng.uniform(-np.sqrt(1 / H), np.sqrt(1 / H), (H, H)).astype(DT),
    }


# -- symgraph -------------------------------------------------------------------------------------


def symgraph_step(params: dict, bptt_truncate: int, profile: bool = False):
    U = sg.shared(params["U"], name="U")
    V = sg.shared(params["V"], name="V")
    W = sg.shared(params["W"], name="W")
    x, y, lr = T.ivector("x"), T.ivector("y"), T.scalar("lr")

    def forward_prop_step(x_t, s_t_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + W.dot(s_t_prev))
        o_t = T.nnet.softmax(V.dot(s_t))[0]
        return [o_t, s_t]

    [o, s], _ = sg.scan(
        forward_prop_step,
        sequences=x,
        outputs_info=[None, dict(initial=T.zeros(H))],
        non_sequences=[U, V, W],
        bptt_truncate=bptt_truncate,
    )
    cost = T.sum(T.nnet.categorical_crossentropy(o, y))
    dU, dV, dW = T.grad(cost, [U, V, W])
    t0 = time.perf_counter()
    fn = sg.function(
        [x, y, lr],
        cost,
        updates=[(U, U - lr * dU), (V, V - lr * dV), (W, W - lr * dW)],
        profile=profile,
    )
    # the loops compile their steps for the per-step shapes at the first call: count it too
    fn(np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32), 0.0)
    compile_s = time.perf_counter() - t0
    step = fn if profile else (lambda xs, ys, rate: fn(xs, ys, rate))
    return step, compile_s, (U, V, W)


# -- NumPy ----------------------------------------------------------------------------------------


class NumpyRNN:
    """The same model and SGD step, hand-written with whole-sentence output-layer products."""

    def __init__(self, params: dict, bptt_truncate: int):
        self.U, self.V, self.W = (params[k].copy() for k in "UVW")
        self.k = bptt_truncate

    def forward(self, x):
        n = len(x)
        s = np.zeros((n + 1, H), dtype=self.U.dtype)  # s[-1]: the zero initial state
        U, W = self.U, self.W
        for t in range(n):
            s[t] = np.tanh(U[:, x[t]] + W.dot(s[t - 1]))
        z = s[:n].dot(self.V.T)
        z -= z.max(axis=1, keepdims=True)
        o = np.exp(z)
        o /= o.sum(axis=1, keepdims=True)
        return o, s

    def sgd_step(self, x, y, lr):
        n = len(y)
        o, s = self.forward(x)
        cost = -np.log(o[np.arange(n), y]).sum()
        do = o
        do[np.arange(n), y] -= 1
        dV = do.T.dot(s[:n])
        ds = do.dot(self.V)
        dU = np.zeros_like(self.U)
        dW = np.zeros_like(self.W)
        Wt = self.W.T
        if self.k < 0 or self.k >= n:  # full BPTT: one backward sweep
            carry = np.zeros(H, dtype=self.U.dtype)
            dz = np.empty((n, H), dtype=self.U.dtype)
            for t in range(n - 1, -1, -1):
                dz[t] = (ds[t] + carry) * (1 - s[t] ** 2)
                carry = Wt.dot(dz[t])
            dW = dz.T.dot(np.concatenate([s[-1:], s[: n - 1]]))
            np.add.at(dU.T, x, dz)
        else:  # the tutorial's truncated BPTT
            for t in range(n - 1, -1, -1):
                delta = ds[t] * (1 - s[t] ** 2)
                for b in range(t, max(0, t - self.k) - 1, -1):
                    dW += np.outer(delta, s[b - 1])
                    dU[:, x[b]] += delta
                    delta = Wt.dot(delta) * (1 - s[b - 1] ** 2)
        self.U -= lr * dU
        self.V -= lr * dV
        self.W -= lr * dW
        return cost


class TutorialRNN(NumpyRNN):
    """The tutorial's NumPy code as written (softmax and outer products per step)."""

    def forward(self, x):
        n = len(x)
        s = np.zeros((n + 1, H), dtype=self.U.dtype)
        o = np.zeros((n, C), dtype=self.U.dtype)
        for t in range(n):
            s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
            z = self.V.dot(s[t])
            e = np.exp(z - z.max())
            o[t] = e / e.sum()
        return o, s

    def sgd_step(self, x, y, lr):
        n = len(y)
        o, s = self.forward(x)
        cost = -np.log(o[np.arange(n), y]).sum()
        dU, dV, dW = np.zeros_like(self.U), np.zeros_like(self.V), np.zeros_like(self.W)
        delta_o = o
        delta_o[np.arange(n), y] -= 1.0
        k = n if self.k < 0 else self.k
        for t in np.arange(n)[::-1]:
            dV += np.outer(delta_o[t], s[t].T)
            delta_t = self.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
            for b in np.arange(max(0, t - k), t + 1)[::-1]:
                dW += np.outer(delta_t, s[b - 1])
                dU[:, x[b]] += delta_t
                delta_t = self.W.T.dot(delta_t) * (1 - s[b - 1] ** 2)
        self.U -= lr * dU
        self.V -= lr * dV
        self.W -= lr * dW
        return cost


# -- timing ---------------------------------------------------------------------------------------


def median_ms(step, sentences, repeats: int) -> float:
    for x, y in sentences[:3]:  # warm up
        step(x, y, DT(0.005))
    times = []
    for r in range(repeats):
        x, y = sentences[r % len(sentences)]
        t0 = time.perf_counter()
        step(x, y, DT(0.005))
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def check_same(params, k, sentence) -> float:
    """Largest difference between symgraph's and NumPy's weight changes after one SGD step,
    relative to the change, computed in float64 (so it measures the math, not the rounding)."""
    params = {name: v.astype(np.float64) for name, v in params.items()}
    with sg.config.change_flags(floatX="float64"):
        step, _, (U, V, W) = symgraph_step(params, k)
    ref = NumpyRNN(params, k)
    x, y = sentence
    step(x, y, 0.005)
    ref.sgd_step(x, y, 0.005)
    err = 0.0
    for var, want in ((U, ref.U), (V, ref.V), (W, ref.W)):
        moved = want - params[var.name]
        err = max(err, float(np.abs(var.get_value() - want).max() / np.abs(moved).max()))
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="timed SGD steps per configuration")
    ap.add_argument("--quick", action="store_true", help="few steps, skip the tutorial code")
    ap.add_argument("--profile", action="store_true", help="time per op of the 45-word steps")
    args = ap.parse_args()
    steps = 20 if args.quick else args.steps
    sg.config.floatX = "float32"
    params = make_params()
    rng = np.random.default_rng(1)
    print(f"tutorial RNN, C={C}, H={H}, float32, SGD step medians over {steps} steps")
    header = f"{'words':>5} {'bptt':>5} {'symgraph':>10} {'numpy':>10} {'ratio':>6}"
    if not args.quick:
        header += f" {'np-tutorial':>12} {'ratio':>6}"
    print(header + f" {'compile':>8} {'f64 rel diff':>12}")
    for n_words in (20, 45):
        sentences = [
            (
                rng.integers(0, C, n_words).astype(np.int32),
                rng.integers(0, C, n_words).astype(np.int32),
            )
            for _ in range(16)
        ]
        for k in (4, -1):
            step, compile_s, _ = symgraph_step(params, k)
            t_sg = median_ms(step, sentences, steps)
            t_np = median_ms(NumpyRNN(params, k).sgd_step, sentences, steps)
            line = f"{n_words:>5} {('full' if k < 0 else k):>5} {t_sg:>8.2f}ms {t_np:>8.2f}ms"
            line += f" {t_sg / t_np:>6.2f}"
            if not args.quick:
                t_tut = median_ms(TutorialRNN(params, k).sgd_step, sentences, max(steps // 10, 5))
                line += f" {t_tut:>10.2f}ms {t_sg / t_tut:>6.2f}"
            err = check_same(params, k, sentences[0])
            print(line + f" {compile_s:>7.2f}s {err:>12.1e}")
            if args.profile and n_words == 45:
                profile_step(params, k, sentences, steps)


def profile_step(params: dict, k: int, sentences: list, steps: int) -> None:
    """Where the time of one symgraph step goes (the scan loops against the rest)."""
    fn, _, _ = symgraph_step(params, k, profile=True)
    prof = fn.profile
    median_ms(fn, sentences, 3)
    prof.times[:] = [0.0] * len(prof.times)
    prof.calls[:] = [0] * len(prof.calls)
    median_ms(fn, sentences, steps)
    from symgraph.scan import Scan

    loops = sum(t for n, t in zip(prof.nodes, prof.times) if isinstance(n.op, Scan))
    print(f"      scan loops: {100 * loops / sum(prof.times):.1f}% of the time in ops")
    print("      " + prof.summary(8).replace("\n", "\n      "))


if __name__ == "__main__":
    main()
