"""Walks over graphs: topological order, free inputs, ancestors, and cloning with replacements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import GraphTypeError, where

if TYPE_CHECKING:  # graph.py imports this module; the types are for annotations only
    from .graph import Apply, Variable


def toposort(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> list[Apply]:
    """Apply nodes needed for ``outputs`` in an order where inputs come first.

    Variables in ``stop`` are treated as graph inputs (their owners are not visited).
    """
    stop_ids = {id(v) for v in stop}
    order: list[Apply] = []
    seen: set[int] = set()
    for out in outputs:
        if out.owner is None or id(out) in stop_ids or id(out.owner) in seen:
            continue
        stack = [(out.owner, iter(out.owner.inputs))]
        seen.add(id(out.owner))
        while stack:
            node, it = stack[-1]
            for inp in it:
                o = inp.owner
                if o is not None and id(inp) not in stop_ids and id(o) not in seen:
                    seen.add(id(o))
                    stack.append((o, iter(o.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def graph_inputs(outputs: Iterable[Variable], stop: Iterable[Variable] = ()) -> list[Variable]:
    """The owner-less variables (and ``stop`` variables) that ``outputs`` depend on, in order."""
    outputs = list(outputs)
    stop_ids = {id(v) for v in stop}
    result, seen = [], set()

    def visit(v: Variable) -> None:
        if id(v) not in seen and (v.owner is None or id(v) in stop_ids):
            seen.add(id(v))
            result.append(v)

    for out in outputs:
        visit(out)
    for node in toposort(outputs, stop):
        for v in node.inputs:
            visit(v)
    return result


def ancestors(outputs: Iterable[Variable]) -> set[int]:
    """ids of every variable ``outputs`` depend on (themselves included)."""
    outputs = list(outputs)
    ids = {id(v) for v in outputs}
    for node in toposort(outputs):
        ids.update(id(v) for v in node.inputs)
        ids.update(id(v) for v in node.outputs)
    return ids


def clone_replace(
    outputs: Sequence[Variable], replace: dict[Variable, Variable] | None = None
) -> list[Variable]:
    """New graphs computing ``outputs`` with the variables in ``replace`` substituted.

    Input variables that are not replaced are kept (not copied), as are shared variables and
    constants, so the result still refers to the same state.
    """
    memo: dict[int, Variable] = {id(k): v for k, v in (replace or {}).items()}
    for k, v in (replace or {}).items():
        if k.type.ndim != v.type.ndim:
            raise GraphTypeError(
                f"cannot replace {k.describe()} ({k.type}) with {v.describe()} ({v.type}): "
                f"different number of dimensions{where(v.trace)}"
            )
    for node in toposort(outputs, stop=[k for k in (replace or {})]):
        new_inputs = [memo.get(id(v), v) for v in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            for o in node.outputs:
                memo.setdefault(id(o), o)
            continue
        new = node.clone_with_new_inputs(new_inputs)
        for o, n in zip(node.outputs, new.outputs):
            memo[id(o)] = n
    return [memo.get(id(o), o) for o in outputs]
