"""symgraph's training step against hand-written NumPy, PyTorch and PyTensor, in one process.

    python benchmarks/run_benchmarks.py [--quick] [--json out.json] [--only rnn,gru]
                                        [--skip-torch] [--skip-pytensor] [--pytensor-modes c,numba]
                                        [--rounds N] [--threads N] [--malloc-keep] [--profile]
                                        [--no-rss]

Configurations (benchmarks/suite_configs.py): the WildML tutorial RNN (full BPTT, and Theano's
``truncate_gradient=4`` as the tutorial's Theano code passes it), the tutorial's two-layer GRU with
RMSProp, and a minibatched GRU. For each, every implementation starts from the same parameters;
before timing, one training step of each is compared with the hand NumPy reference (and the
reference itself with finite differences; symgraph and the PyTorch cell loop also in float64 at a
tiny size). Timings are medians over interleaved rounds, with the best round beside them (on a
shared machine interference only adds time); ratios are against hand NumPy. Memory: tracemalloc's
peak during one step (NumPy-based implementations) and the resident-set peak growth (all). Compile
columns: graph building with ``T.grad``, ``function()``, and the first call (symgraph compiles
each scan's step there, PyTensor's Numba backend compiles everything there). PyTorch and PyTensor
are optional: missing ones are skipped. ``--quick`` runs every model at a tiny size (seconds; the
smoke test uses it). On a busy machine multi-threaded BLAS and PyTorch slow down by factors;
``--threads 1`` gives stable figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import suite_graph  # noqa: E402
import suite_numpy  # noqa: E402
import suite_timing  # noqa: E402
from suite_configs import FULL, Config, check_size, init_params, make_data, quick  # noqa: E402

LABELS = {
    "numpy": "hand NumPy",
    "symgraph": "symgraph",
    "torch_cell": "PyTorch cell loop",
    "torch_nn": "PyTorch nn.*",
    "pytensor_c": "PyTensor C (CVM)",
    "pytensor_numba": "PyTensor Numba",
}
# implementations computing exactly the reference's maths (compared number for number)
EXACT = {"symgraph", "torch_cell", "pytensor_c", "pytensor_numba"}
# allocations visible to tracemalloc (NumPy's buffers); PyTorch's and Numba's are not
TRACED = {"numpy", "symgraph", "pytensor_c"}
PYTENSOR_MODES = {"c": "CVM", "numba": "NUMBA"}
# glibc hands large freed blocks back to the kernel, so a step that allocates big temporaries
# pays page faults again on every call (expensive in a VM); these keep freed memory in the heap
MALLOC_KEEP = {
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_MMAP_THRESHOLD_": str(1 << 25),  # glibc's largest accepted value (32 MiB)
    "MALLOC_TOP_PAD_": str(1 << 27),
}
# float32 one-step agreement considered correct (relative to the largest parameter change)
TOL32, TOL64 = 5e-3, 1e-7


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def implementations(args: argparse.Namespace) -> list[str]:
    impls = ["numpy", "symgraph"]
    if not args.skip_torch and _has("torch"):
        impls += ["torch_cell", "torch_nn"]
    if not args.skip_pytensor and _has("pytensor"):
        impls += ["pytensor_" + m for m in args.pytensor_modes]
    return impls


def make_impl(key: str, cfg: Config, params: dict, profile: bool = False) -> Any:
    if key == "numpy":
        return suite_numpy.make(cfg, params)
    if key == "symgraph":
        th, T = suite_graph.symgraph_modules()
        return suite_graph.build(th, T, key, cfg, params, {"profile": True} if profile else None)
    if key.startswith("torch"):
        import suite_torch

        return (suite_torch.TorchCell if key == "torch_cell" else suite_torch.TorchNN)(cfg, params)
    if key.startswith("pytensor_"):
        _pytensor_blas()
        th, T = suite_graph.pytensor_modules()
        mode = PYTENSOR_MODES[key.split("_", 1)[1]]
        return suite_graph.build(th, T, key, cfg, params, {"mode": mode})
    raise ValueError(f"unknown implementation {key!r}")


def _pytensor_blas() -> None:
    """PyTensor's C backend finds no BLAS in a pip install and falls back to slow NumPy C-API
    calls; point it at a system OpenBLAS when there is one, as a user would (recorded in meta)."""
    import ctypes.util

    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "blas__ldflags" in flags or "pytensor" in sys.modules:
        return
    if ctypes.util.find_library("openblas"):
        os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "blas__ldflags=-lopenblas"]))


def rel_error(ref: dict, other: dict) -> float:
    """Largest |difference| of parameter changes over the largest |change|, per parameter."""
    worst = 0.0
    for k, d in ref.items():
        scale = max(float(np.abs(d).max()), 1e-30)
        worst = max(worst, float(np.abs(np.asarray(other[k]) - d).max()) / scale)
    return worst


def _error_text(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"


def gradient_checks(cfg: Config, impls: list[str]) -> dict:
    """float64, tiny size: the reference against finite differences, then symgraph and the
    PyTorch cell loop against the reference (one training step from the same parameters)."""
    c = check_size(cfg)
    p = init_params(c, "float64", bias_scale=0.3)
    x, y = make_data(c, 1, seed=7)[0]
    out: dict[str, Any] = {"size": {k: getattr(c, k) for k in ("vocab", "hidden", "steps")}}
    out["numpy_vs_finite_diff"] = suite_numpy.finite_difference_check(c, p, x, y)
    ref = suite_numpy.make(c, p)
    loss0, d0 = suite_numpy.step_delta(ref.step, ref.params, x, y)
    for key in ("symgraph", "torch_cell"):
        if key not in impls:
            continue
        try:
            m = make_impl(key, c, p)
            loss1, d1 = suite_numpy.step_delta(m.step, m.params, x, y)
            err = rel_error(d0, d1)
            out[key] = {"rel_err": err, "loss_diff": abs(loss1 - loss0), "ok": err < TOL64}
        except Exception as e:  # a failing framework is a result, not a crash of the suite
            out[key] = {"error": _error_text(e), "ok": False}
    return out


def _cycling_step(model: Any, data: list) -> Any:
    it = itertools.cycle(data)

    def step() -> Any:
        x, y = next(it)
        return model.step(x, y)

    return step


def run_config(cfg: Config, impls: list[str], args: argparse.Namespace) -> dict:
    size = f"vocab {cfg.vocab}, hidden {cfg.hidden}, {cfg.steps} steps, batch {cfg.batch}"
    print(f"\n== {cfg.name}: {cfg.description} [{size}]", flush=True)
    res: dict[str, Any] = {"config": cfg.as_dict(), "results": {}}
    res["checks"] = gradient_checks(cfg, impls)
    params = init_params(cfg, "float32")
    data = make_data(cfg, 4)
    x0, y0 = data[0]
    models: dict[str, Any] = {}
    d_ref = None
    for key in impls:
        r = res["results"][key] = {"label": LABELS[key]}
        try:
            t0 = time.perf_counter()
            m = make_impl(key, cfg, params)
            r["build_s"] = getattr(m, "build_s", None)
            r["compile_s"] = getattr(m, "compile_s", None)
            r["construct_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            loss, delta = suite_numpy.step_delta(m.step, m.params, x0, y0)
            r["first_call_s"] = time.perf_counter() - t0
            r["first_loss"] = loss
            if key == "numpy":
                d_ref, loss_ref = delta, loss
            elif key in EXACT and d_ref is not None:
                r["rel_err_vs_numpy"] = rel_error(d_ref, delta)
                r["loss_diff_vs_numpy"] = abs(loss - loss_ref)
                r["matches_numpy"] = r["rel_err_vs_numpy"] < TOL32
            models[key] = m
        except Exception as e:
            r["error"] = _error_text(e)
            print(f"  {LABELS[key]} failed: {r['error']}", file=sys.stderr, flush=True)
            if args.verbose:
                traceback.print_exc()
    steps = {k: _cycling_step(m, data) for k, m in models.items()}
    for f in steps.values():  # warm-up
        f()
        f()
    timings = suite_timing.interleaved(steps, args.rounds, args.target_ms / 1e3)
    base = timings.get("numpy", {}).get("median_s")
    best = timings.get("numpy", {}).get("min_s")
    for k, t in timings.items():
        r = res["results"][k]
        r.update(t)
        r["vs_numpy"] = t["median_s"] / base if base else None
        # the best round of each: on a shared machine, interference only ever adds time
        r["vs_numpy_best"] = t["min_s"] / best if best else None
        if k in TRACED:
            r["traced_peak_mb"] = suite_timing.traced_peak(steps[k]) / 2**20
    if args.rss:
        for k in models:
            peak = suite_timing.rss_peak(steps[k])
            res["results"][k]["rss_peak_mb"] = None if peak is None else peak / 2**20
    sg = res["results"].get("symgraph", {})
    slower = sg.get("vs_numpy") is not None and sg["vs_numpy"] > 1.0 and not args.quick
    if "symgraph" in models and (args.profile or slower):
        sg["profile"] = profile_symgraph(cfg, params, data)
    print(report(res), flush=True)
    if "profile" in sg:
        print(sg["profile"], flush=True)
    return res


def profile_symgraph(cfg: Config, params: dict, data: list, n: int = 20) -> str:
    try:
        import suite_profile

        return suite_profile.profile_symgraph(cfg, params, data, n)
    except Exception as e:
        return f"profile failed: {_error_text(e)}"


def report(res: dict) -> str:
    ch = res["checks"]
    parts = [f"checks (float64, {ch['size']}): hand NumPy vs finite differences "
             f"{ch['numpy_vs_finite_diff']:.1e}"]  # fmt: skip
    for k in ("symgraph", "torch_cell"):
        if k in ch:
            c = ch[k]
            parts.append(f"{k} vs NumPy " + (c["error"] if "error" in c else f"{c['rel_err']:.1e}"))
    rows = []
    for k, r in res["results"].items():
        if "error" in r:
            rows.append([r["label"], "FAILED", *[""] * 7, r["error"][:60], "", ""])
            continue
        iqr = (r["q3_s"] - r["q1_s"]) / r["median_s"] if r["median_s"] else 0
        check = "reference" if k == "numpy" else "timed only"
        if "rel_err_vs_numpy" in r:
            check = f"{r['rel_err_vs_numpy']:.1e}" + ("" if r["matches_numpy"] else " WRONG")
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        rows.append(
            [
                r["label"],
                suite_timing.fmt_ms(r["median_s"]),
                f"{100 * iqr:.0f}%",
                f(r.get("vs_numpy"), ".2f"),
                suite_timing.fmt_ms(r["min_s"]),
                f(r.get("vs_numpy_best"), ".2f"),
                f(r.get("build_s"), ".2f"),
                f(r.get("compile_s"), ".2f"),
                f(r.get("first_call_s"), ".2f"),
                check,
                f(r.get("traced_peak_mb"), ".1f"),
                f(r.get("rss_peak_mb"), ".1f"),
            ]
        )
    head = ["implementation", "ms/step", "IQR", "vs NumPy", "best ms", "best vs", "graph s",
            "compile s", "1st call s", "step vs NumPy", "traced MB", "rss MB"]  # fmt: skip
    return "  " + "; ".join(parts) + "\n" + suite_timing.table(head, rows)


def machine_info(args: argparse.Namespace) -> dict:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "start_env": {
            k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", *MALLOC_KEEP)
        },
        "torch_threads": args.threads,
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in fh if "model name" in ln)
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    info["pytensor_flags"] = os.environ.get("PYTENSOR_FLAGS")
    for mod in ("symgraph", "torch", "pytensor"):
        if _has(mod):
            try:
                info[mod] = __import__(mod).__version__
            except Exception as e:
                info[mod] = f"import failed: {_error_text(e)}"
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few rounds (seconds)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(FULL)}")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-pytensor", action="store_true")
    ap.add_argument("--pytensor-modes", default="c,numba", help="PyTensor linkers: c, numba")
    ap.add_argument("--rounds", type=int, help="timing rounds (default 15, quick 2)")
    ap.add_argument("--target-ms", type=float, help="time per chunk of steps (default 60 ms)")
    ap.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: all CPUs)")
    ap.add_argument(
        "--malloc-keep",
        action="store_true",
        help="keep freed memory in the heap (glibc): measures compute without the page faults "
        "that fresh large temporaries cost",
    )
    ap.add_argument("--profile", action="store_true", help="always profile symgraph's step")
    ap.add_argument("--rss", action=argparse.BooleanOptionalAction, default=None,
                    help="peak resident-set growth during one step (default on)")  # fmt: skip
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = ap.parse_args(argv)
    args.pytensor_modes = [m for m in args.pytensor_modes.split(",") if m]
    for m in args.pytensor_modes:
        if m not in PYTENSOR_MODES:
            ap.error(f"--pytensor-modes: {m!r} is not one of {sorted(PYTENSOR_MODES)}")
    if args.rounds is None:
        args.rounds = 2 if args.quick else 15
    if args.target_ms is None:
        args.target_ms = 5.0 if args.quick else 60.0
    if args.rss is None:
        args.rss = True
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.threads = args.threads or ncpu
    if args.malloc_keep and any(os.environ.get(k) != v for k, v in MALLOC_KEEP.items()):
        print("note: --malloc-keep works from the command line only (it restarts Python)")
    if _has("torch") and not args.skip_torch:
        import suite_torch

        suite_torch.set_threads(args.threads)
    names = list(FULL) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in FULL]
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {unknown}; choose from {list(FULL)}")
    impls = implementations(args)
    load = os.getloadavg()[0]
    if load > 0.5 * ncpu:
        print(
            f"note: the machine is busy (load {load:.1f} on {ncpu} CPUs); timings will be noisy, "
            "and multi-threaded BLAS/PyTorch suffer most (compare with --threads 1)",
            flush=True,
        )
    if any(k.startswith("pytensor") for k in impls):
        _pytensor_blas()  # before anything imports pytensor
    out: dict[str, Any] = {"meta": machine_info(args), "implementations": impls, "configs": {}}
    for name in names:
        cfg = quick(FULL[name]) if args.quick else FULL[name]
        out["configs"][name] = run_config(cfg, impls, args)
    out["meta"]["loadavg_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=float)
        print(f"\nwrote {args.json}")
    return out


def _environment_for(argv: list[str]) -> dict[str, str]:
    """Variables read only at start-up (BLAS threads, the allocator) that the flags ask for."""
    env = {}
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
        env.update({k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    if "--malloc-keep" in argv:
        env.update(MALLOC_KEEP)
    return env


def _reexec_if_needed(argv: list[str]) -> None:
    """Restart the interpreter when start-up variables must change (NumPy is loaded by now)."""
    env = _environment_for(argv)
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.environ.update(env)
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *argv])


if __name__ == "__main__":
    _reexec_if_needed(sys.argv[1:])
    main()
