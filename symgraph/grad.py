"""Reverse-mode differentiation. ``grad`` returns new graphs: the backward pass is a graph too,
so it is rewritten, fused and compiled like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import DisconnectedInputError, GraphTypeError, SymgraphError, report, where
from .graph import Apply, Constant, Variable, toposort
from .ops.basic import as_tensor_variable
from .ops.scalar import is_float


def _T():
    from . import graph

    return graph._api


def grad(
    cost: Variable | None,
    wrt: Variable | Sequence[Variable],
    consider_constant: Sequence[Variable] | None = None,
    known_grads: dict[Variable, Any] | None = None,
    disconnected_inputs: str = "raise",
    return_disconnected: str = "zero",
) -> Variable | list[Variable]:
    """Gradient of the scalar ``cost`` with respect to each variable in ``wrt``.

    ``consider_constant``: variables through which no gradient flows. ``known_grads``: a dict
    ``{variable: gradient}`` to back-propagate from (instead of, or in addition to, ``cost``).
    ``disconnected_inputs``: ``'raise'`` (default), ``'warn'`` or ``'ignore'`` when a ``wrt`` is
    not used by the cost; its gradient is then zeros (or ``None`` with
    ``return_disconnected='none'``).
    """
    single = isinstance(wrt, Variable)
    wrt_list = [wrt] if single else list(wrt)
    T = _T()
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise GraphTypeError(f"grad: wrt must be symbolic variables, got {type(w).__name__}")
        if not is_float(w.dtype):
            raise GraphTypeError(
                f"grad: cannot differentiate with respect to {w.describe()} of integer dtype "
                f"{w.dtype}{where(w.trace)}"
            )
    seeds: dict[int, list[Variable]] = {}
    outputs: list[Variable] = []
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.ndim != 0:
            raise GraphTypeError(
                f"grad: cost must be a scalar, got {cost.describe()} with {cost.ndim} dimensions "
                f"(sum or average it first){where(cost.trace)}"
            )
        seeds[id(cost)] = [T.ones_like(cost) if not is_float(cost.dtype) else _one(cost)]
        outputs.append(cost)
    for v, g in (known_grads or {}).items():
        g = as_tensor_variable(g)
        seeds.setdefault(id(v), []).append(g)
        outputs.append(v)
    if not outputs:
        raise ValueError("grad needs a cost or known_grads")

    constant_ids = {id(v) for v in (consider_constant or [])}
    topo = toposort(outputs, stop=[v for v in (consider_constant or [])])
    # Only nodes on a path from some wrt to the outputs matter.
    connected = {id(w) for w in wrt_list}
    for node in topo:
        # gradients flow only through float values: an integer output (a shape, an index)
        # depends on wrt without carrying any gradient back to it
        if any(id(i) in connected for i in node.inputs):
            connected.update(id(o) for o in node.outputs if is_float(o.dtype))
    contributions = seeds
    for node in reversed(topo):
        if not any(id(o) in contributions for o in node.outputs):
            continue
        if not any(id(i) in connected and id(i) not in constant_ids for i in node.inputs):
            continue
        out_grads = [_total(contributions.get(id(o)), o) for o in node.outputs]
        in_grads = _call_grad(node, out_grads)
        for inp, g in zip(node.inputs, in_grads):
            if g is None or id(inp) not in connected or id(inp) in constant_ids:
                continue
            if isinstance(inp, Constant):
                continue
            contributions.setdefault(id(inp), []).append(g)

    result = []
    for w in wrt_list:
        contribs = contributions.get(id(w))
        if not contribs:
            msg = (
                f"grad: the cost does not depend on {w.describe()}{where(w.trace)}\n"
                f"(pass disconnected_inputs='ignore' or 'warn' to get zeros instead)"
            )
            report(disconnected_inputs, DisconnectedInputError, msg)
            result.append(None if return_disconnected == "none" else T.zeros_like(w))
            continue
        g = _total(contribs, w)
        if g.dtype != w.dtype:
            g = T.cast(g, w.dtype)
        result.append(g)
    return result[0] if single else result


def _one(cost: Variable) -> Variable:
    from .ops.basic import constant

    return constant(1, dtype=cost.dtype)


def _total(contribs: list[Variable] | None, like: Variable) -> Variable:
    T = _T()
    if not contribs:
        return T.zeros_like(like)
    total = contribs[0]
    for c in contribs[1:]:
        total = total + c
    return total


def _call_grad(node: Apply, out_grads: list[Variable]) -> list:
    op = node.op
    if not getattr(op, "differentiable", True):
        raise SymgraphError(f"grad: {op} is not differentiable; it was created{where(node.trace)}")
    try:
        grads = op.grad(node.inputs, out_grads)
    except NotImplementedError as e:
        raise SymgraphError(f"grad: {op} has no gradient ({e}){where(node.trace)}") from e
    if len(grads) != len(node.inputs):
        raise SymgraphError(
            f"{op}.grad returned {len(grads)} gradients for {len(node.inputs)} inputs"
        )
    return grads


def jacobian(expression: Variable, wrt: Variable) -> Variable:
    """Rows of d expression[i] / d wrt, for a vector expression (an unrolled loop)."""
    T = _T()
    n = expression.type.shape[0]
    if n is None:
        raise ValueError("jacobian needs a vector of static length")
    return T.stack([grad(expression[i], wrt) for i in range(n)])
