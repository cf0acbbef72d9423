"""Neural-network ops: softmax, log-softmax and categorical cross-entropy, with their gradients."""

from __future__ import annotations

from typing import Any

from ..errors import GraphTypeError, ShapeError, user_line, where
from ..graph import Apply, Op, TensorType, Variable, shape_conflict
from .basic import as_tensor_variable
from .scalar import is_float


def _T():
    from .. import graph

    return graph._api


class Softmax(Op):
    """Softmax over the last axis, computed stably (the max is subtracted first)."""

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim < 1 or not is_float(x.dtype):
            raise GraphTypeError(f"softmax needs a float tensor, got {x.type}{where(user_line())}")
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        xp = backend.xp

        def softmax(x):
            e = xp.exp(x - x.max(axis=-1, keepdims=True))
            e /= e.sum(axis=-1, keepdims=True)
            return e

        return softmax

    def grad(self, inputs, output_grads):
        sm = self(inputs[0])
        return [softmax_grad(output_grads[0], sm)]


class LogSoftmax(Op):
    """log(softmax(x)) over the last axis without forming softmax (finite for any logits)."""

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim < 1 or not is_float(x.dtype):
            raise GraphTypeError(f"log_softmax needs a float tensor, got {x.type}")
        return Apply(self, [x], [x.type])

    def make_impl(self, node, backend):
        xp = backend.xp

        def log_softmax(x):
            z = x - x.max(axis=-1, keepdims=True)
            return z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))

        return log_softmax

    def grad(self, inputs, output_grads):
        T = _T()
        (gz,) = output_grads
        # softmax as exp of the forward result (which the merge finds already computed): the
        # gradient is then one fused elementwise pass, not a second softmax over the logits
        # (max, subtract, exp, sum, divide: five passes over the largest array of an LM step)
        sm = T.exp(self(inputs[0]))
        return [gz - T.sum(gz, axis=-1, keepdims=True) * sm]


class SoftmaxGrad(Op):
    """The gradient of softmax: ``(gz - sum(gz * sm, -1)) * sm``."""

    differentiable = False

    def make_node(self, gz: Any, sm: Any) -> Apply:
        gz, sm = as_tensor_variable(gz), as_tensor_variable(sm)
        return Apply(self, [gz, sm], [sm.type])

    def make_impl(self, node, backend):
        def softmax_grad(gz, sm):
            gsm = gz * sm
            return gsm - sm * gsm.sum(axis=-1, keepdims=True)

        return softmax_grad


softmax_op = Softmax()
log_softmax_op = LogSoftmax()
softmax_grad_op = SoftmaxGrad()


def softmax_grad(gz: Variable, sm: Variable) -> Variable:
    return softmax_grad_op(gz, sm)


def softmax(x: Any, axis: int = -1) -> Variable:
    """Softmax over the last axis. A vector gives a 1 x n row, as in Theano (``softmax(v)[0]``)."""
    x = as_tensor_variable(x)
    if axis not in (-1, x.ndim - 1):
        raise ValueError("softmax is taken over the last axis; dimshuffle first")
    if x.ndim == 1:
        x = x.dimshuffle("x", 0)
    return softmax_op(x)


def log_softmax(x: Any, axis: int = -1) -> Variable:
    x = as_tensor_variable(x)
    if axis not in (-1, x.ndim - 1):
        raise ValueError("log_softmax is taken over the last axis; dimshuffle first")
    if x.ndim == 1:
        x = x.dimshuffle("x", 0)
    return log_softmax_op(x)


class CrossentropyCategorical1Hot(Op):
    """``-log(p[..., y])`` for probabilities ``p`` (..., k) and integer targets ``y`` (...)."""

    def make_node(self, p: Any, y: Any) -> Apply:
        p, y = as_tensor_variable(p), as_tensor_variable(y)
        if y.dtype[:3] not in ("int", "uin") or y.ndim != p.ndim - 1:
            raise GraphTypeError(
                f"categorical_crossentropy: targets must be integers with one dimension fewer than "
                f"the distribution ({p.type}), got {y.type}{where(user_line())}"
            )
        conflict = shape_conflict(p.type.shape, y.type.shape)
        if conflict is not None:
            a, sp, sy = conflict
            raise ShapeError(
                f"categorical_crossentropy: {sp} distributions but {sy} targets on axis {a}"
                f"{where(user_line())}"
            )
        return Apply(self, [p, y], [TensorType(p.dtype, y.type.shape)])

    def make_impl(self, node, backend):
        xp = backend.xp

        def crossentropy(p, y):
            picked = xp.take_along_axis(p, y[..., None].astype("int64", copy=False), axis=-1)
            return -xp.log(picked[..., 0])

        return crossentropy

    def grad(self, inputs, output_grads):
        p, y = inputs
        return [crossentropy_1hot_grad_op(output_grads[0], p, y), None]


class CrossentropyCategorical1HotGrad(Op):
    """Gradient of the above w.r.t. ``p``: ``-gz / p[y]`` at the targets, zero elsewhere."""

    differentiable = False

    def make_node(self, gz: Any, p: Any, y: Any) -> Apply:
        return Apply(self, [as_tensor_variable(v) for v in (gz, p, y)], [p.type])

    def make_impl(self, node, backend):
        xp = backend.xp

        def crossentropy_grad(gz, p, y):
            out = xp.zeros_like(p)
            yi = y[..., None].astype("int64", copy=False)
            picked = xp.take_along_axis(p, yi, axis=-1)
            xp.put_along_axis(out, yi, -gz[..., None] / picked, axis=-1)
            return out

        return crossentropy_grad


crossentropy_1hot_op = CrossentropyCategorical1Hot()
crossentropy_1hot_grad_op = CrossentropyCategorical1HotGrad()


def categorical_crossentropy(coding_dist: Any, true_dist: Any) -> Variable:
    """Cross-entropy per row: integer targets (one fewer dimension) or one-hot/soft targets."""
    T = _T()
    p, t = as_tensor_variable(coding_dist), as_tensor_variable(true_dist)
    if t.ndim == p.ndim - 1 and t.dtype[:3] in ("int", "uin"):
        return crossentropy_1hot_op(p, t)
    if t.ndim == p.ndim:
        return -T.sum(t * T.log(p), axis=-1)
    raise GraphTypeError(
        f"categorical_crossentropy: true_dist must be integer labels ({p.ndim - 1}-d) or a "
        f"distribution ({p.ndim}-d), got {t.type}{where(user_line())}"
    )


def binary_crossentropy(output: Any, target: Any) -> Variable:
    T = _T()
    return -(target * T.log(output) + (1 - target) * T.log(1 - output))


def sigmoid_binary_crossentropy(logits: Any, target: Any) -> Variable:
    """Binary cross-entropy computed from logits, stable for any magnitude."""
    T = _T()
    return T.softplus(logits) - target * logits


def relu(x: Any, alpha: float = 0) -> Variable:
    T = _T()
    if alpha == 0:
        return T.elemwise_apply("relu", x)
    return T.switch(T.gt(x, 0), x, alpha * x)


def one_hot(y: Any, n: int, dtype: str | None = None) -> Variable:
    """Rows of an identity matrix picked by integer labels ``y``."""
    T = _T()
    y = as_tensor_variable(y)
    hit = T.eq(T.shape_padright(y), T.arange(n, dtype=y.dtype))
    return T.cast(hit, dtype or T.config.floatX)
