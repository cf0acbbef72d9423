"""Timing and memory measurement for the benchmark suite.

Timing: implementations run in rounds; in each round every implementation runs a chunk of
training steps, in a freshly shuffled order, so that drift (other processes, CPU frequency)
lands on all of them alike. The figure per implementation is the median over rounds of
(chunk time / steps in the chunk).

Memory: ``traced_peak`` is the peak of memory allocated through Python's allocator hooks
(tracemalloc) during one warm training step, above what was allocated before the step. NumPy
reports its array buffers to tracemalloc, so this covers hand NumPy, symgraph and PyTensor's C
backend; it does not see PyTorch's or Numba's allocators. ``rss_peak`` is the growth of the
resident set at its peak during one warm step (the kernel's high-water mark, reset just before),
which covers every framework but counts pages.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence


def calibrate(step: Callable[[], object], target_s: float) -> int:
    """How many steps make a chunk of about ``target_s`` seconds (at least 1)."""
    t0 = time.perf_counter()
    step()
    dt = max(time.perf_counter() - t0, 1e-6)
    return max(1, int(round(target_s / dt)))


def interleaved(
    steps: dict[str, Callable[[], object]],
    rounds: int,
    target_s: float,
    seed: int = 0,
) -> dict[str, dict]:
    """Median seconds per step of each callable, measured in shuffled, interleaved rounds."""
    inner = {k: calibrate(f, target_s) for k, f in steps.items()}
    samples: dict[str, list[float]] = {k: [] for k in steps}
    order = list(steps)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            f, n = steps[k], inner[k]
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[k].append((time.perf_counter() - t0) / n)
    out = {}
    for k, s in samples.items():
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
        out[k] = {
            "median_s": statistics.median(s),
            "q1_s": q[0],
            "q3_s": q[2],
            "min_s": min(s),
            "rounds": len(s),
            "steps_per_round": inner[k],
        }
    return out


def traced_peak(step: Callable[[], object]) -> float:
    """Bytes allocated at the peak of one call of ``step``, above the level before it."""
    gc.collect()
    tracemalloc.start()
    try:
        step()  # a warm call first: buffers a function keeps are not per-step memory
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return float(max(0, peak - base))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def rss_peak(step: Callable[[], object]) -> float | None:
    """Growth of the resident set at its peak during one warm call of ``step`` (Linux only).

    Free heap memory is handed back first (glibc ``malloc_trim``), so memory the step needs is
    counted even when an earlier call had it; the kernel's high-water mark (VmHWM) is reset
    through ``/proc/self/clear_refs``. Covers every allocator (NumPy, PyTorch, Numba), but
    counts pages, so it is coarse (4 KiB) and includes anything else the process touches.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        step()
        gc.collect()
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        base = _status_kib("VmRSS")
        step()
        return float(max(0, _status_kib("VmHWM") - base) * 1024)
    except (OSError, AttributeError):
        return None


def fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, columns right-aligned except the first."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for r in [headers, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
