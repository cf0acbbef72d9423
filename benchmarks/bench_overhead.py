"""Per-call overhead of a compiled function: a chain of N elementwise ops on a small float32
vector, against the same NumPy ufunc calls written by hand in a Python function (same process,
interleaved repetitions, medians). Prints the ratio symgraph / hand-written NumPy.

    python benchmarks/bench_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import symgraph as sg
import symgraph.tensor as T

UNARY = [T.tanh, T.exp, T.sin, T.cos, T.sqrt]


def build(n_ops: int, mode: str):
    x = T.fvector("x")
    y = x
    for k in range(n_ops):
        y = UNARY[k % 2](y) if k % 3 else y * np.float32(0.5)
    return sg.function([x], y, mode=mode)


def hand_written(n_ops: int):
    # unroll into straight-line code, as a person writing it by hand would
    lines = ["def hand(x):", "    y = x"]
    for k in range(n_ops):
        lines.append(
            f"    y = {'np.tanh' if k % 2 == 0 else 'np.exp'}(y)" if k % 3 else "    y = y * 0.5"
        )
    lines.append("    return y")
    env = {"np": np}
    exec("\n".join(lines), env)
    return env["hand"]


def median_time(fn, arg, reps: int, inner: int) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn(arg)
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    x = np.random.default_rng(0).uniform(0.1, 0.9, args.size).astype(np.float32)
    results = {}
    print(f"{'ops':>5} {'mode':>13} {'hand NumPy (us)':>16} {'symgraph (us)':>14} {'ratio':>7}")
    for n in (10, 100):
        hand = hand_written(n)
        for mode in ("FAST_RUN", "FAST_COMPILE"):
            f = build(n, mode)
            np.testing.assert_allclose(f(x), hand(x), rtol=1e-5)
            inner = max(1, 20000 // n)
            th, ts = [], []
            for _ in range(args.reps):  # interleave so drift hits both equally
                th.append(median_time(hand, x, 1, inner))
                ts.append(median_time(f, x, 1, inner))
            h, s = statistics.median(th), statistics.median(ts)
            results[(n, mode)] = s / h
            print(f"{n:5d} {mode:>13} {h * 1e6:16.2f} {s * 1e6:14.2f} {s / h:7.2f}")
    return results


if __name__ == "__main__":
    main()
