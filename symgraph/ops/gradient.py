"""Ops that change what flows backwards, not what flows forwards (Theano's
``theano.gradient.grad_clip``, ``zero_grad``, ``disconnected_grad``).

Their gradient is defined, not derived: a numeric check against finite differences does not
apply (it would see the identity), so they carry ``overrides_gradient`` and are tested directly.
"""

from __future__ import annotations

from typing import Any

from ..graph import Apply, Op, Variable
from .basic import as_tensor_variable


class _Identity(Op):
    overrides_gradient = True

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        return lambda x: x


class GradClip(_Identity):
    """Identity forward; the gradient passing through is clipped to ``[lower, upper]``."""

    __props__ = ("lower", "upper")

    def __init__(self, lower: float, upper: float):
        if lower > upper:
            raise ValueError(f"grad_clip: lower bound {lower} is above upper bound {upper}")
        self.lower, self.upper = float(lower), float(upper)

    def grad(self, inputs, output_grads):
        from .elemwise import apply

        return [apply("clip", output_grads[0], self.lower, self.upper)]


class ZeroGrad(_Identity):
    """Identity forward; no gradient passes (the variable is treated as a constant)."""

    def grad(self, inputs, output_grads):
        from .shape import zeros_like

        return [zeros_like(inputs[0])]


def grad_clip(x: Any, lower_bound: float, upper_bound: float) -> Variable:
    """``x``, whose gradient is clipped elementwise to ``[lower_bound, upper_bound]``."""
    return GradClip(lower_bound, upper_bound)(x)


def zero_grad(x: Any) -> Variable:
    """``x``, through which no gradient flows back (Theano's ``zero_grad``)."""
    return ZeroGrad()(x)


disconnected_grad = zero_grad
