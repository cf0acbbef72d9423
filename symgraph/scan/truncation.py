"""Keeping Theano's ``truncate_gradient=k`` exact when per-step output work leaves the loop.

Inside a loop truncated that way, the gradient of an output computed at step t reaches the loop's
inputs only for the last k steps. Computed after the loop on the stored states, the same output
would pass gradients from every step. ``keep_last_rows_grad(value, k)`` is the identity forward
and lets only the last k rows' gradient through, so moving the work out changes nothing but the
speed.
"""

from __future__ import annotations

from typing import Any

from ..graph import Apply, Op, Variable
from ..ops.basic import as_tensor_variable


class KeepLastRowsGrad(Op):
    """Identity; its gradient is zero on every row but the last ``k`` (along axis 0)."""

    __props__ = ("k",)

    def __init__(self, k: int):
        self.k = int(k)

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        return lambda x: x

    def grad(self, inputs, output_grads):
        from .. import tensor as T

        (gz,) = output_grads
        n = T.shape(gz)[0]
        dropped = T.maximum(n - self.k, 0)
        return [T.set_subtensor(gz[:dropped], T.zeros_like(gz[:dropped]))]


def keep_last_rows_grad(value: Variable, k: int) -> Variable:
    return KeepLastRowsGrad(k)(value)
