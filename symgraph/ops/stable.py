"""Numerically stable fused ops that the stabilize rewrites introduce (users rarely call them)."""

from __future__ import annotations

from typing import Any

from ..graph import Apply, Op, TensorType
from .basic import as_tensor_variable


class CrossentropySoftmax1Hot(Op):
    """``-log(softmax(x)[..., y])`` computed as ``logsumexp(x) - x[y]``: finite for any logits."""

    def make_node(self, x: Any, y: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        return Apply(self, [x, y], [TensorType(x.dtype, y.type.shape)])

    def make_impl(self, node, backend):
        xp = backend.xp

        def crossentropy_softmax(x, y):
            m = x.max(axis=-1, keepdims=True)
            lse = xp.log(xp.exp(x - m).sum(axis=-1)) + m[..., 0]
            picked = xp.take_along_axis(x, y[..., None].astype("int64", copy=False), axis=-1)
            return lse - picked[..., 0]

        return crossentropy_softmax

    def grad(self, inputs, output_grads):
        from .nnet import softmax_op

        x, y = inputs
        return [crossentropy_softmax_dx_op(output_grads[0], softmax_op(x), y), None]


class CrossentropySoftmax1HotDx(Op):
    """Gradient of the above w.r.t. the logits: ``(softmax - onehot(y)) * gz``."""

    differentiable = False

    def make_node(self, gz: Any, sm: Any, y: Any) -> Apply:
        gz, sm, y = (as_tensor_variable(v) for v in (gz, sm, y))
        return Apply(self, [gz, sm, y], [sm.type])

    # The softmax usually dies here: the linker may then let the gradient overwrite it.
    destroyable_input = 1

    def make_impl(self, node, backend, inplace: bool = False):
        xp = backend.xp

        def crossentropy_softmax_dx(gz, sm, y):
            if inplace:
                out = sm
                out *= gz[..., None]
            else:
                out = sm * gz[..., None]
            yi = y[..., None].astype("int64", copy=False)
            picked = xp.take_along_axis(out, yi, axis=-1)
            xp.put_along_axis(out, yi, picked - gz[..., None], axis=-1)
            return out

        return crossentropy_softmax_dx


crossentropy_softmax_op = CrossentropySoftmax1Hot()
crossentropy_softmax_dx_op = CrossentropySoftmax1HotDx()


class SoftmaxAndCrossentropy1Hot(Op):
    """Both ``softmax(x)`` and ``-log(softmax(x)[y])`` from one pass over the logits.

    A training graph needs the loss (forward) and the softmax (for the gradient); computing them
    separately exponentiates the logits twice.
    """

    def make_node(self, x: Any, y: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        return Apply(self, [x, y], [TensorType(x.dtype, y.type.shape), x.type])

    # The logits usually die here (a fresh product): the linker may then let the softmax
    # overwrite them, which saves allocating (and faulting in) a second logits-sized array.
    destroyable_input = 0
    destroyed_into_output = 1

    def make_impl(self, node, backend, inplace: bool = False):
        xp = backend.xp

        def softmax_and_crossentropy(x, y):
            m = x.max(axis=-1, keepdims=True)
            picked = xp.take_along_axis(x, y[..., None].astype("int64", copy=False), axis=-1)
            if inplace:
                e = xp.subtract(x, m, out=x)
                xp.exp(e, out=e)
            else:
                e = xp.exp(x - m)
            s = e.sum(axis=-1, keepdims=True)
            nll = (xp.log(s) + m - picked)[..., 0]
            e /= s
            return nll, e

        return softmax_and_crossentropy

    def grad(self, inputs, output_grads):
        from .nnet import softmax_grad

        x, y = inputs
        g_nll, g_sm = output_grads
        sm = self(x, y)[1]
        return [crossentropy_softmax_dx_op(g_nll, sm, y) + softmax_grad(g_sm, sm), None]


softmax_and_crossentropy_op = SoftmaxAndCrossentropy1Hot()
