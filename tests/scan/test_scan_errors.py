"""Mistakes in a scan are reported with the scan's name and the user's line."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError, SymgraphError

HERE = __file__.rsplit("/", 1)[-1]


def line_of(marker: str) -> int:
    """The line number of the source line containing ``marker`` in this file."""
    with open(__file__) as f:
        lines = f.read().splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text and "line_of" not in text)


def assert_points_here(err: Exception, marker: str, name: str) -> None:
    msg = str(err)
    assert f"scan {name!r}" in msg, msg
    assert f'{HERE}", line {line_of(marker)}' in msg, msg


def test_wrong_number_of_outputs():
    x = T.dvector("x")

    def two_outputs(x_t, s):
        return [s + x_t, s * x_t]

    with pytest.raises(ValueError) as e:
        sg.scan(two_outputs, sequences=x, outputs_info=[T.constant(0.0)])  # MARK-outputs
    assert_points_here(e.value, "MARK-outputs", "two_outputs")
    assert "returned 2 output(s)" in str(e.value) and "describes 1" in str(e.value)
    assert "def two_outputs" in str(e.value) or "two_outputs" in str(e.value)


def test_state_dtype_changes():
    x = T.dvector("x")  # float64 data

    def step(x_t, s):
        return s + x_t

    with pytest.raises(GraphTypeError) as e:
        sg.scan(step, sequences=x, outputs_info=T.zeros((), dtype="float32"))  # MARK-dtype
    assert_points_here(e.value, "MARK-dtype", "step")
    assert "float32" in str(e.value) and "float64" in str(e.value)


def test_state_shape_changes_at_run_time():
    W = T.dmatrix("W")
    s0 = T.dvector("s0")

    def grow(s, W):
        return W.dot(s)

    s, _ = sg.scan(grow, outputs_info=s0, non_sequences=W, n_steps=3)  # MARK-shape
    f = sg.function([W, s0], s)
    np.testing.assert_allclose(f(np.eye(2), np.ones(2)), np.ones((3, 2)))
    with pytest.raises(ShapeError) as e:
        f(np.ones((4, 2)), np.ones(2))
    assert_points_here(e.value, "MARK-shape", "grow")
    assert "(4,)" in str(e.value) and "(2,)" in str(e.value)


def test_sequence_shorter_than_n_steps():
    x, n = T.dvector("x"), T.iscalar("n")

    def step(x_t):
        return x_t * 2

    out, _ = sg.scan(step, sequences=x, n_steps=n)  # MARK-short
    f = sg.function([x, n], out)
    with pytest.raises(ShapeError) as e:
        f(np.arange(3.0), 5)
    assert_points_here(e.value, "MARK-short", "step")
    assert "3 rows" in str(e.value) and "n_steps is 5" in str(e.value)


def test_error_inside_the_step_names_the_step_line_and_the_scan():
    x = T.dmatrix("x")
    M = T.dmatrix("M")

    def project(x_t, M):
        return M.dot(x_t)  # MARK-inner

    out, _ = sg.scan(project, sequences=x, non_sequences=M, mode="FAST_COMPILE")  # MARK-outer
    f = sg.function([x, M], out)
    with pytest.raises(SymgraphError) as e:
        f(np.ones((2, 3)), np.ones((4, 5)))
    assert_points_here(e.value, "MARK-outer", "project")
    assert f"line {line_of('MARK-inner')}" in str(e.value)
    assert "step 0" in str(e.value)


def test_strict_names_the_implicit_variables():
    W = sg.shared(np.eye(2), name="W_hidden")
    x = T.dmatrix("x")

    def step(x_t):
        return W.dot(x_t)

    with pytest.raises(GraphTypeError) as e:
        sg.scan(step, sequences=x, strict=True)  # MARK-strict
    assert_points_here(e.value, "MARK-strict", "step")
    assert "W_hidden" in str(e.value)
    out, _ = sg.scan(lambda x_t, W: W.dot(x_t), sequences=x, non_sequences=W, strict=True)
    np.testing.assert_allclose(sg.function([x], out)(np.ones((1, 2))), [[1.0, 1.0]])


def test_no_steps_information():
    with pytest.raises(ValueError) as e:
        sg.scan(lambda s: s * 2, outputs_info=T.constant(1.0))  # MARK-nsteps
    assert_points_here(e.value, "MARK-nsteps", "scan_fn")


def test_negative_constant_n_steps():
    with pytest.raises(ValueError, match="go_backwards"):
        sg.scan(lambda s: s * 2, outputs_info=T.constant(1.0), n_steps=-3)


def test_both_truncations_rejected():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="not both"):
        sg.scan(lambda v: v, sequences=x, truncate_gradient=2, bptt_truncate=2)


def test_updates_from_the_step_are_refused():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="updates"):
        sg.scan(lambda v: (v * 2, {x: x}), sequences=x)


def test_bptt_truncate_needs_tap_minus_one():
    x, f0 = T.dvector("x"), T.dvector("f0")
    with pytest.raises(ValueError, match="tap -1") as e:
        sg.scan(
            lambda x_t, a, b: a + b * x_t,
            sequences=x,
            outputs_info=dict(initial=f0, taps=[-2, -1]),
            bptt_truncate=2,
        )  # MARK-bptt
    assert HERE in str(e.value)
