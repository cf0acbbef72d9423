"""Rewrites for numerical stability: the forms users write naturally, computed safely."""

from __future__ import annotations

from ..graph import Apply, Constant, Variable, clone_replace, toposort
from ..ops.elemwise import Elemwise, elemwise
from ..ops.nnet import (
    CrossentropyCategorical1Hot,
    CrossentropyCategorical1HotGrad,
    LogSoftmax,
    Softmax,
    SoftmaxGrad,
    log_softmax_op,
)
from ..ops.stable import (
    CrossentropySoftmax1Hot,
    crossentropy_softmax_dx_op,
    crossentropy_softmax_op,
    softmax_and_crossentropy_op,
)
from ..ops.subtensor import Subtensor


def _owner_op(v: Variable, cls) -> Apply | None:
    if v.owner is not None and isinstance(v.owner.op, cls):
        return v.owner
    return None


def _scalar_name(v: Variable) -> str | None:
    if v.owner is not None and isinstance(v.owner.op, Elemwise):
        return v.owner.op.scalar_op.name
    return None


def _is_const(v: Variable, value: float) -> bool:
    return isinstance(v, Constant) and v.data.size == 1 and float(v.data.reshape(())) == value


def log_softmax_rewrite(node: Apply) -> list[Variable] | None:
    """log(softmax(x)) -> log_softmax(x)."""
    if _scalar_name(node.outputs[0]) != "log":
        return None
    sm = _owner_op(node.inputs[0], Softmax)
    if sm is None:
        return None
    return [log_softmax_op(sm.inputs[0])]


def crossentropy_softmax(node: Apply) -> list[Variable] | None:
    """categorical_crossentropy(softmax(x), y) -> one op: logsumexp(x) - x[y]."""
    if not isinstance(node.op, CrossentropyCategorical1Hot):
        return None
    p, y = node.inputs
    sm = _owner_op(p, Softmax)
    if sm is None:
        return None
    return [crossentropy_softmax_op(sm.inputs[0], y)]


def crossentropy_softmax_grad(node: Apply) -> list[Variable] | None:
    """The backward of the above as built by grad (``SoftmaxGrad(-gz/sm[y], sm)``) ->
    ``(sm - onehot(y)) * gz``, which has no division by a probability that may be 0.

    Also on the same rows of both (``SoftmaxGrad(ce_grad[a:b], sm[a:b])``, what a gradient
    restricted to some rows leaves): every op here is row-wise, so the rows are taken from
    ``gz`` and ``y`` instead.
    """
    if not isinstance(node.op, SoftmaxGrad):
        return None
    g, sm = node.inputs
    ce = _owner_op(g, CrossentropyCategorical1HotGrad)
    if ce is not None and ce.inputs[1] is sm:
        gz, _, y = ce.inputs
        return [crossentropy_softmax_dx_op(gz, sm, y)]
    rows = _same_row_slice(g, sm)
    if rows is None:
        return None
    ce = _owner_op(g.owner.inputs[0], CrossentropyCategorical1HotGrad)
    if ce is None or ce.inputs[1] is not sm.owner.inputs[0] or sm.ndim < 2:
        return None
    gz, _, y = ce.inputs
    return [crossentropy_softmax_dx_op(rows(gz), sm, rows(y))]


def _same_row_slice(a: Variable, b: Variable):
    """A function applying the same slice to another tensor, when ``a`` and ``b`` are the same
    basic slice along axis 0 only (``x[s:e]``, ``y[s:e]`` with the very same bounds)."""
    oa, ob = _owner_op(a, Subtensor), _owner_op(b, Subtensor)
    if oa is None or ob is None or oa.op != ob.op:
        return None
    if any(x is not y for x, y in zip(oa.inputs[1:], ob.inputs[1:])):
        return None
    spec = oa.op.spec
    if spec[0][0] != "slice" or any(s != ("slice", None, None, None) for s in spec[1:]):
        return None
    first = Subtensor(spec[:1])
    parts = oa.inputs[1:]
    return lambda v: first(v, *parts)


def log1p_rewrite(node: Apply) -> list[Variable] | None:
    """log(1 + x) -> log1p(x)."""
    if _scalar_name(node.outputs[0]) != "log":
        return None
    inner = node.inputs[0]
    if _scalar_name(inner) != "add":
        return None
    a, b = inner.owner.inputs
    for one, x in ((a, b), (b, a)):
        if _is_const(one, 1.0) and x.ndim == inner.ndim:
            r = elemwise("log1p")(x)
            if r.dtype == node.outputs[0].dtype:
                return [r]
    return None


def log_sigmoid_rewrite(node: Apply) -> list[Variable] | None:
    """log(sigmoid(x)) -> -softplus(-x); log(1 - sigmoid(x)) -> -softplus(x)."""
    if _scalar_name(node.outputs[0]) != "log":
        return None
    inner = node.inputs[0]
    out_dtype = node.outputs[0].dtype
    if _scalar_name(inner) == "sigmoid":
        (x,) = inner.owner.inputs
        r = elemwise("neg")(elemwise("softplus")(elemwise("neg")(x)))
    elif _scalar_name(inner) == "sub" and _is_const(inner.owner.inputs[0], 1.0):
        s = inner.owner.inputs[1]
        if _scalar_name(s) != "sigmoid":
            return None
        (x,) = s.owner.inputs
        r = elemwise("neg")(elemwise("softplus")(x))
    else:
        return None
    if r.dtype != out_dtype or r.ndim != node.outputs[0].ndim:
        return None
    return [r]


def share_softmax_with_crossentropy(outputs: list[Variable]) -> list[Variable]:
    """A graph pass: ``softmax(x)`` and ``crossentropy_softmax(x, y)`` (the loss and the
    softmax its gradient needs) become the two outputs of one node that exponentiates once."""
    nodes = toposort(outputs)
    softmax_of = {id(n.inputs[0]): n for n in nodes if isinstance(n.op, Softmax)}
    replace: dict[Variable, Variable] = {}
    for n in nodes:
        if not isinstance(n.op, CrossentropySoftmax1Hot):
            continue
        sm = softmax_of.pop(id(n.inputs[0]), None)
        if sm is None:
            continue
        nll, probs = softmax_and_crossentropy_op(*n.inputs)
        nll.owner.trace = n.trace
        replace[n.outputs[0]] = nll
        replace[sm.outputs[0]] = probs
    return clone_replace(outputs, replace) if replace else outputs


STABILIZE = [
    log_softmax_rewrite,
    crossentropy_softmax,
    crossentropy_softmax_grad,
    log1p_rewrite,
    log_sigmoid_rewrite,
]
__all__ = ["STABILIZE", "LogSoftmax"]
