"""GPU checks in one script, sized for one short lease on an H200 (well under 8 minutes).

    python benchmarks/gpu_check.py --out gpu_results.json

1. the device answers (CuPy, NVRTC) — else it stops with the reason;
2. the op and gradient tests (tests/core, tests/scan, tests/gpu) with ``device=cuda``;
3. the tutorial GRU training step (batch 1, 20 words) — tokens/s;
4. a batched GRU and LSTM language model (batch 64, 32 steps, hidden 512, vocab 8000) — tokens/s,
   against PyTorch on the same GPU (nn.GRU/nn.LSTM with cuDNN, and the same cell written step by
   step) when torch is importable;
5. nodes executed per training step outside loops (a scan counts once; see the profile), and
   the host's time in ops per step (near the step's time: the GPU waits for the host); and a
   profile of three steps with each node waited for (``profile_sync``): where the device's
   time goes, by op type and node, loop steps included;
6. host microseconds per matrix product: ``cupy.dot`` against the direct cuBLAS call.
Everything measured is written to the JSON file, also when a part fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, warmup: int, reps: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run_tests(results: dict, timeout: int) -> None:
    env = {**os.environ, "SYMGRAPH_FLAGS": "device=cuda"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider"]
    cmd += ["tests/core", "tests/scan", "tests/gpu"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\nTIMEOUT"
    summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    results["tests"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        "summary": summary[-1] if summary else out[-500:],
        "failed": [line for line in out.splitlines() if line.startswith("FAILED")][:50],
    }
    print("tests on cuda:", results["tests"]["summary"], flush=True)


def lm_step_rate(
    cell: str,
    batch: int,
    steps: int,
    hidden: int,
    vocab: int,
    preset=None,
    device="cuda",
    emulation=None,
):
    import symgraph as sg
    from models.lm import LanguageModel, LMConfig

    if preset:
        cfg = LMConfig.preset(preset, vocab_size=vocab, hidden_dim=hidden, emb_dim=hidden)
    else:
        cfg = LMConfig(cell=cell, vocab_size=vocab, hidden_dim=hidden, emb_dim=hidden, layers=1,
                       optimizer="rmsprop", objective="token")  # fmt: skip
    if device == "cuda":
        import cupy

        sync = cupy.cuda.Device().synchronize
    else:
        sync = lambda: None  # noqa: E731
    with sg.config.change_flags(device=device):
        t0 = time.perf_counter()
        model = LanguageModel(cfg, seed=0)
        rng = np.random.default_rng(0)
        x = rng.integers(0, cfg.vocab_size, (steps, batch)).astype(np.int32)
        y = rng.integers(0, cfg.vocab_size, (steps, batch)).astype(np.int32)
        mask = np.ones((steps, batch), np.float32)
        model.train_step(x, y, mask)
        compile_s = time.perf_counter() - t0
        dt = timed(lambda: model.train_step(x, y, mask), 3, 20, sync)
        f = model._fn("train")
        # the training step again, profiled: its outputs and its updates (the parameters train on)
        step_graph = dict(
            outputs=f.program.outputs[: f.n_outputs],
            updates=list(zip(f.update_targets, f.program.outputs[f.n_outputs :])),
            profile=True,
            on_unused_input="ignore",
        )
        prof = sg.function(f.inputs, **step_graph)
        prof(x, y, mask, np.float32(cfg.learning_rate))
        ops_per_step = sum(prof.profile.calls)
        # the host's time in ops per step: on a GPU the ops only enqueue work, so a share of
        # the step near 1 means the GPU waits for the host (launch-bound)
        before = sum(prof.profile.times)
        for _ in range(5):
            prof(x, y, mask, np.float32(cfg.learning_rate))
        host_s = (sum(prof.profile.times) - before) / 5
        device_profile = None
        if device == "cuda":  # where the device's time goes: each node waited for in turn
            with sg.config.change_flags(profile_sync=True):
                synced = sg.function(f.inputs, **step_graph)
                synced(x, y, mask, np.float32(cfg.learning_rate))  # compiles the loops' steps
                synced.profile.reset()
                for _ in range(3):
                    synced(x, y, mask, np.float32(cfg.learning_rate))
            device_profile = synced.profile.summary(top=12).splitlines()
    result = {
        "step_ms": dt * 1e3,
        "tokens_per_s": batch * steps / dt,
        "compile_s": compile_s,
        "ops_per_step": ops_per_step,
        "host_ms_in_ops": host_s * 1e3,
        "host_share": host_s / dt,
        "device_profile_3_steps": device_profile,
    }
    if emulation is not None:  # what one step launches, copies and waits for
        emulation.reset_stats()
        model.train_step(x, y, mask)
        keys = ("launches", "cublas", "kernels", "to_device", "syncs")
        result["per_step"] = {k: emulation.STATS[k] for k in keys}
    return result


def product_overheads(reps: int = 300, rounds: int = 5) -> dict:
    """Host microseconds per matrix product, ``cupy.dot`` against the backend's direct cuBLAS
    call, at the sizes of a loop step (the GPU keeps up with neither at batch 1: what the host
    spends per call is what a step costs). Both write into one result; they must agree."""
    import cupy

    from symgraph.backends.cupy import get_backend

    gemm = get_backend(required=True).gemm
    if gemm is None:
        return {"error": "the backend has no direct cuBLAS path (see its stderr line)"}
    out = {}
    rng = np.random.default_rng(0)
    for name, (n, k, m) in {
        "batch64_h512_gru": (64, 512, 1536),
        "batch1_h128_gru": (1, 128, 384),
    }.items():
        a = cupy.asarray(rng.standard_normal((n, k)).astype(np.float32))
        w = cupy.asarray(rng.standard_normal((m, k)).astype(np.float32)).T  # a hoisted transpose
        c = cupy.empty((n, m), np.float32)
        calls = {
            "cupy_dot": lambda a=a, w=w, c=c: cupy.dot(a, w, out=c),
            "cublas_direct": lambda a=a, w=w, c=c: gemm(c, 1.0, a, w, 0.0),
        }
        row = {}
        for how, call in calls.items():
            host = []
            for _ in range(rounds):  # few enough calls per round that the launch queue never fills
                cupy.cuda.Device().synchronize()
                t0 = time.perf_counter()
                for _ in range(reps):
                    call()
                host.append((time.perf_counter() - t0) / reps)
                cupy.cuda.Device().synchronize()
            row[f"{how}_host_us"] = round(min(host) * 1e6, 2)
            row[f"{how}_result"] = cupy.asnumpy(c)
        row["agree"] = bool(np.allclose(row.pop("cupy_dot_result"), row.pop("cublas_direct_result"),
                                        rtol=1e-4, atol=1e-4))  # fmt: skip
        out[name] = row
    return out


def torch_rates(cell: str, batch: int, steps: int, hidden: int, vocab: int) -> dict:
    import torch

    dev = torch.device("cuda")
    emb = torch.nn.Embedding(vocab, hidden).to(dev)
    rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(hidden, hidden).to(dev)
    cellm = (torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell)(hidden, hidden).to(dev)
    out = torch.nn.Linear(hidden, vocab).to(dev)
    x = torch.randint(0, vocab, (steps, batch), device=dev)
    y = torch.randint(0, vocab, (steps, batch), device=dev)
    params = [*emb.parameters(), *rnn.parameters(), *cellm.parameters(), *out.parameters()]
    opt = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-6)

    def cudnn_step():
        opt.zero_grad()
        h, _ = rnn(emb(x))
        loss = torch.nn.functional.cross_entropy(out(h).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        opt.step()

    def eager_step():
        opt.zero_grad()
        e = emb(x)
        h = torch.zeros(batch, hidden, device=dev)
        c = torch.zeros(batch, hidden, device=dev)
        hs = []
        for t in range(steps):
            if cell == "gru":
                h = cellm(e[t], h)
            else:
                h, c = cellm(e[t], (h, c))
            hs.append(h)
        hh = torch.stack(hs)
        loss = torch.nn.functional.cross_entropy(out(hh).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize
    r = {}
    for name, fn in (("cudnn", cudnn_step), ("eager_cell", eager_step)):
        dt = timed(fn, 3, 20, sync)
        r[name] = {"step_ms": dt * 1e3, "tokens_per_s": batch * steps / dt}
    return r


def dry_run(results: dict, save) -> int:
    for name, kw in (
        ("tutorial_gru_batch1", dict(cell="gru", batch=1, steps=5, hidden=8, vocab=50,
                                     preset="tutorial-gru")),
        ("batched_lstm", dict(cell="lstm", batch=4, steps=6, hidden=8, vocab=50)),
    ):  # fmt: skip
        results[name] = {"symgraph": lm_step_rate(**kw, device="cpu")}
        print(name, results[name], flush=True)
    save()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="gpu_results.json")
    ap.add_argument("--test-timeout", type=int, default=200)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument(
        "--dry-run-cpu",
        action="store_true",
        help="run the model parts on the CPU at tiny sizes (checks this script without a GPU)",
    )
    ap.add_argument(
        "--emulate",
        action="store_true",
        help="rehearse the GPU run on CuPy emulated on the CPU (tests/gpu/emulated_cupy.py) at "
        "tiny sizes, without the tests and PyTorch; reports launches, copies and "
        "synchronisations per step",
    )
    args = ap.parse_args(argv)
    results: dict = {"python": platform.python_version(), "started": time.time()}

    def save() -> None:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))

    if args.dry_run_cpu:
        return dry_run(results, save)
    if args.emulate:
        sys.path.insert(0, str(ROOT / "tests" / "gpu"))
        import emulated_cupy

        was_installed = emulated_cupy.installed()
        emulated_cupy.install()
        try:
            return run_on_device(args, results, save, emulated_cupy)
        finally:
            if not was_installed:
                emulated_cupy.uninstall()
    return run_on_device(args, results, save, None)


def run_on_device(args, results: dict, save, emulation) -> int:
    from symgraph.backends.cupy import probe

    ok, why = probe()
    results["device_ok"], results["device_why"] = ok, why
    if not ok:
        print("no usable CUDA device:", why)
        save()
        return 2
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    results["device"] = (
        props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    )
    results["cupy"] = cupy.__version__
    print("device:", results["device"], "cupy", cupy.__version__, flush=True)
    save()
    try:  # emulated: a few calls, which check the code, not the times
        sizes = {} if emulation is None else {"reps": 2, "rounds": 1}
        results["products"] = product_overheads(**sizes)
        print("products:", results["products"], flush=True)
    except Exception:
        results["products_error"] = traceback.format_exc()[-2000:]
    save()
    if not args.skip_tests and emulation is None:
        run_tests(results, args.test_timeout)
        save()
    parts = [
        ("tutorial_gru_batch1", dict(cell="gru", batch=1, steps=20, hidden=128, vocab=8000,
                                     preset="tutorial-gru")),
        ("batched_gru", dict(cell="gru", batch=64, steps=32, hidden=512, vocab=8000)),
        ("batched_lstm", dict(cell="lstm", batch=64, steps=32, hidden=512, vocab=8000)),
    ]  # fmt: skip
    if emulation is not None:  # the same parts at sizes the host runs in a moment
        tiny = dict(steps=5, hidden=8, vocab=50)
        parts = [(name, {**kw, **tiny, "batch": min(kw["batch"], 4)}) for name, kw in parts]
    for name, kw in parts:
        try:
            results[name] = {"symgraph": lm_step_rate(**kw, emulation=emulation)}
            print(name, "symgraph", results[name]["symgraph"], flush=True)
        except Exception:
            results[name] = {"symgraph_error": traceback.format_exc()[-2000:]}
            print(name, "FAILED", results[name]["symgraph_error"], flush=True)
        save()
        if name.startswith("batched") and emulation is None:
            try:
                kw2 = {k: v for k, v in kw.items() if k != "preset"}
                results[name]["torch"] = torch_rates(**kw2)
                sym = results[name].get("symgraph", {}).get("tokens_per_s")
                for r in results[name]["torch"].values():
                    if sym:
                        r["symgraph_speed_ratio"] = sym / r["tokens_per_s"]
                print(name, "torch", results[name]["torch"], flush=True)
            except ImportError:
                results[name]["torch"] = "torch not importable"
            except Exception:
                results[name]["torch_error"] = traceback.format_exc()[-2000:]
            save()
    results["seconds"] = time.time() - results["started"]
    save()
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
