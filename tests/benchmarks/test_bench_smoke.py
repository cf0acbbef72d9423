"""Smoke test of the benchmark suite: the runner in --quick mode (tiny sizes) must produce the
documented JSON, and every reference must agree with symgraph's training step. PyTorch and
PyTensor parts are checked only where installed (PyTensor is always skipped: it compiles for
tens of seconds)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    sys.path.insert(0, str(BENCH))
    import run_benchmarks

    out = tmp_path_factory.mktemp("bench") / "quick.json"
    result = run_benchmarks.main(
        ["--quick", "--skip-pytensor", "--threads", "1", "--json", str(out)]
    )
    return result, json.loads(out.read_text()), run_benchmarks


def test_json_has_every_configuration_and_the_documented_keys(quick_run):
    result, written, rb = quick_run
    assert set(written) == {"meta", "implementations", "configs"}
    assert set(written["configs"]) == {"rnn", "rnn_trunc4", "gru", "gru_batched"}
    assert written["implementations"][:2] == ["numpy", "symgraph"]
    assert ("torch_cell" in written["implementations"]) == HAS_TORCH
    for name, entry in written["configs"].items():
        assert set(entry) >= {"config", "checks", "results"}, name
        assert entry["config"]["name"] == name
        for key in written["implementations"]:
            r = entry["results"][key]
            assert "error" not in r, (name, key, r.get("error"))
            for field in (
                "label",
                "median_s",
                "min_s",
                "q1_s",
                "q3_s",
                "vs_numpy",
                "vs_numpy_best",
                "first_call_s",
                "rss_peak_mb",
            ):
                assert field in r, (name, key, field)
            assert r["median_s"] > 0
        assert entry["results"]["numpy"]["vs_numpy"] == pytest.approx(1.0)
        assert entry["results"]["symgraph"]["compile_s"] >= 0
        assert entry["results"]["numpy"]["traced_peak_mb"] >= 0
    assert written["configs"].keys() == result["configs"].keys()


def test_hand_numpy_references_are_right(quick_run):
    _, written, rb = quick_run
    for name, entry in written["configs"].items():
        checks = entry["checks"]
        # the reference against finite differences of its own loss (float64)
        assert checks["numpy_vs_finite_diff"] < 1e-6, name
        # symgraph's training step (float64, tiny) moves every parameter as the reference does
        assert checks["symgraph"]["ok"], (name, checks["symgraph"])
        assert checks["symgraph"]["rel_err"] < rb.TOL64
        # and at the benchmark's own size and dtype (float32)
        assert entry["results"]["symgraph"]["matches_numpy"], name
        if HAS_TORCH:
            assert checks["torch_cell"]["ok"], (name, checks["torch_cell"])
            assert entry["results"]["torch_cell"]["matches_numpy"], name


def test_a_wrong_reference_is_caught(quick_run):
    """The comparison is not vacuous: a perturbed step shows up as a large relative error."""
    _, _, rb = quick_run
    import numpy as np
    import suite_numpy
    from suite_configs import FULL, check_size, init_params, make_data

    cfg = check_size(FULL["rnn"])
    p = init_params(cfg, "float64")
    x, y = make_data(cfg, 1)[0]
    a, b = suite_numpy.make(cfg, p), suite_numpy.make(cfg, p)
    _, d_a = suite_numpy.step_delta(a.step, a.params, x, y)
    b.p["W"] *= 1.01  # a different model: its step must not pass as the same
    _, d_b = suite_numpy.step_delta(b.step, b.params, x, y)
    assert rb.rel_error(d_a, d_b) > 1e-3
    assert rb.rel_error(d_a, {k: np.copy(v) for k, v in d_a.items()}) == 0.0


def test_unknown_configuration_is_refused(quick_run):
    _, _, rb = quick_run
    with pytest.raises(SystemExit, match="unknown configuration"):
        rb.main(["--quick", "--only", "lstm", "--skip-pytensor", "--skip-torch"])


def test_launch_benchmark_runs_and_reports_every_case(capsys):
    sys.path.insert(0, str(BENCH))
    import bench_launch

    assert bench_launch.main(["--quick"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 5
    for row in rows:
        ours, least, ratio = row.split()[-3:]
        assert float(ours) > 0 and float(least) > 0
        assert abs(float(ours) / float(least) - float(ratio)) < 0.01 + 0.01 * float(ratio)
    assert rows[3].split()[1] == "4"  # the multi-output case is one node with four results
    assert rows[4].startswith("matrix product (direct cuBLAS)")
