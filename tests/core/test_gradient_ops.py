"""grad_clip and zero_grad: the identity forward, a defined (not derived) gradient backward."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.gradient import disconnected_grad, grad_clip, zero_grad


def test_grad_clip_clips_only_the_gradient():
    x = T.dvector("x")
    y = grad_clip(x * 3, -1.0, 2.0)
    f = sg.function([x], [y, T.grad(T.sum(y * np.array([-5.0, 0.5, 5.0])), x)])
    value, g = f(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(value, [3.0, 6.0, 9.0])
    np.testing.assert_array_equal(g, [-3.0, 1.5, 6.0])  # upstream -5, .5, 5 -> -1, .5, 2; times 3
    with pytest.raises(ValueError, match="above upper"):
        grad_clip(x, 1.0, -1.0)


def test_zero_grad_blocks_the_gradient():
    x = T.dvector("x")
    y = x**2 + zero_grad(x**3)
    g = sg.function([x], T.grad(T.sum(y), x))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 4.0])  # d(x^2) only
    assert disconnected_grad is zero_grad
    assert sg.function([x], zero_grad(x) + 1)(np.array([1.0]))[0] == 2.0
