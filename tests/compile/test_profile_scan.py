"""profile=True reaches inside scan loops: each step's ops are timed and listed."""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T


def test_profile_lists_the_inner_step_of_each_scan():
    x = T.dmatrix("x")
    w = sg.shared(np.eye(3) * 0.5, name="w")

    def step(x_t, h):
        return T.tanh(T.dot(h, w) + x_t)

    h, _ = sg.scan(step, sequences=x, outputs_info=T.zeros(3, dtype="float64"))
    cost = T.sum(h)
    f = sg.function([x], [cost, T.grad(cost, w)], profile=True)
    for _ in range(4):
        f(np.ones((5, 3)))
    text = f.profile.summary()
    assert "inner step of node" in text
    assert text.count("inner step of node") == 2  # the forward loop and the backward loop
    inner = [p for ps in f.profile.inner.values() for p in ps]
    assert max(max(p.calls) for p in inner) == 4 * 5  # 4 calls x 5 steps
    assert any("Dot" in line for line in text.splitlines() if "test_profile_scan.py" in line)
    # an unprofiled function of the same graph does not pay for timers
    g = sg.function([x], cost)
    assert g.profile is None
    np.testing.assert_allclose(g(np.ones((5, 3))), f(np.ones((5, 3)))[0])


def test_reset_forgets_the_warm_up_calls_of_the_function_and_its_loops():
    x = T.dmatrix("x")
    h, _ = sg.scan(lambda x_t, h: T.tanh(h + x_t), sequences=x, outputs_info=T.zeros(3, "float64"))
    f = sg.function([x], T.sum(h), profile=True)
    f(np.ones((5, 3)))  # the first call also compiles the loop's step
    f.profile.reset()
    assert not any(f.profile.calls) and not any(f.profile.times)
    f(np.ones((4, 3)))
    (inner,) = [p for ps in f.profile.inner.values() for p in ps]
    assert max(inner.calls) == 4 and max(f.profile.calls) == 1  # the timers still count
