"""benchmarks/gpu_check.py must stay runnable for the next GPU lease: its model parts run here on
the CPU at tiny sizes (--dry-run-cpu), its whole device path runs on emulated CuPy (--emulate),
and without a device it stops with the reason in its JSON."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_on_the_cpu_measures_every_model_part(tmp_path):
    out = tmp_path / "gpu.json"
    assert load_script().main(["--dry-run-cpu", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    for part in ("tutorial_gru_batch1", "batched_lstm"):
        r = results[part]["symgraph"]
        assert r["step_ms"] > 0 and r["tokens_per_s"] > 0 and r["ops_per_step"] > 10


def test_emulated_rehearsal_runs_the_device_path_of_every_part(tmp_path):
    out = tmp_path / "gpu.json"
    assert load_script().main(["--emulate", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["device_ok"] is True and "emulated" in results["device"]
    for part in ("tutorial_gru_batch1", "batched_gru", "batched_lstm"):
        r = results[part]["symgraph"]
        assert r["tokens_per_s"] > 0 and r["ops_per_step"] > 10
        # a step copies x, y and the mask in, waits only to return the loss and the word count
        assert r["per_step"]["to_device"] == 3 and r["per_step"]["syncs"] == 2, r
        assert r["per_step"]["launches"] > 0 and r["per_step"]["cublas"] > 0
        assert r["host_ms_in_ops"] > 0 and r["host_share"] > 0
        # each node waited for: the whole training step, both loops' steps included
        profile = "\n".join(r["device_profile_3_steps"])
        assert "Scan{grad_of_" in profile and profile.count("inner step of node") >= 2
    for size in ("batch64_h512_gru", "batch1_h128_gru"):  # product overheads, both ways
        p = results["products"][size]
        assert p["agree"] is True and p["cupy_dot_host_us"] > 0 and p["cublas_direct_host_us"] > 0
    import emulated_cupy

    assert emulated_cupy.installed() == (os.environ.get("SYMGRAPH_TEST_DEVICE") == "emulated-cuda")


def test_without_a_device_it_says_why(tmp_path, monkeypatch):
    import symgraph.backends.cupy as cupy_backend

    monkeypatch.setattr(cupy_backend, "probe", lambda: (False, "no CUDA device answered (test)"))
    out = tmp_path / "gpu.json"
    assert load_script().main(["--out", str(out)]) == 2
    results = json.loads(out.read_text())
    assert results["device_ok"] is False and "no CUDA device" in results["device_why"]
