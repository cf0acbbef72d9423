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
    """Identity; its gradient is zero on every row but the last ``k`` (along axis 0).

    The gradient is written as the last rows padded with zeros in front (not as the full
    gradient with its head overwritten), so that the rewrites in ``symgraph.rewrite.lift`` can
    see which rows are zero and compute only the others. Once the gradient is built the op is
    dropped (``identity_forward``).
    """

    __props__ = ("k",)
    identity_forward = True
    overrides_gradient = True  # defined, not derived: finite differences would see the identity

    def __init__(self, k: int):
        self.k = int(k)

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        return lambda x: x

    def grad(self, inputs, output_grads):
        from .. import tensor as T
        from ..rewrite.lift import zero_padded_head

        (gz,) = output_grads
        # the rows counted on the forward value, which exists anyway (gz may not yet)
        dropped = T.maximum(T.shape(inputs[0])[0] - self.k, 0)
        return [zero_padded_head(gz[dropped:], dropped)]


def keep_last_rows_grad(value: Variable, k: int) -> Variable:
    return KeepLastRowsGrad(k)(value)
