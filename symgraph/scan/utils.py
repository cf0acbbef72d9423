"""Small graph helpers for scan: zero detection, merging equal nodes, dependency sets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..graph import Constant, Variable, toposort
from ..ops.shape import Alloc, DimShuffle


def is_zero(v: Variable | None) -> bool:
    """True for graphs known to be all zeros (``zeros_like`` and friends): nothing flows."""
    while v is not None and v.owner is not None and isinstance(v.owner.op, DimShuffle):
        v = v.owner.inputs[0]
    if v is None:
        return True
    if isinstance(v, Constant):
        return not np.any(v.data)
    if v.owner is not None and isinstance(v.owner.op, Alloc):
        fill = v.owner.inputs[0]
        return isinstance(fill, Constant) and not np.any(fill.data)
    return False


def merge_equal(outputs: Sequence[Variable], reference: Sequence[Variable]) -> list[Variable]:
    """``outputs`` with every node equal to an earlier one (same op, same inputs) merged into it.

    Nodes of the ``reference`` graph are registered first, so that a gradient graph reuses the
    forward values it recomputes (``Elemwise.grad`` rebuilds ``tanh(x)`` to differentiate it, and
    that becomes the forward node again, whose value the backward loop reads from storage).
    """
    table: dict[tuple, list[Variable]] = {}
    memo: dict[int, Variable] = {}

    def key_of(v: Variable):
        v = memo.get(id(v), v)
        if isinstance(v, Constant):
            return ("c", v.signature())
        return id(v)

    def register(node) -> None:
        key = (node.op, tuple(key_of(v) for v in node.inputs))
        table.setdefault(key, node.outputs)

    for node in toposort(reference):
        register(node)
    for node in toposort(outputs):
        key = (node.op, tuple(key_of(v) for v in node.inputs))
        hit = table.get(key)
        if hit is not None and hit is not node.outputs:
            for o, h in zip(node.outputs, hit):
                memo[id(o)] = h
            continue
        new_inputs = [memo.get(id(v), v) for v in node.inputs]
        if any(a is not b for a, b in zip(new_inputs, node.inputs)):
            new = node.clone_with_new_inputs(new_inputs)
            for o, n in zip(node.outputs, new.outputs):
                memo[id(o)] = n
            table.setdefault(key, new.outputs)
        else:
            table.setdefault(key, node.outputs)
    return [memo.get(id(o), o) for o in outputs]


def dependents(outputs: Sequence[Variable], sources: Iterable[Variable]) -> set[int]:
    """ids of the variables in the graph of ``outputs`` that depend on any of ``sources``."""
    dep = {id(v) for v in sources}
    for node in toposort(outputs):
        if any(id(i) in dep for i in node.inputs):
            dep.update(id(o) for o in node.outputs)
    return dep


def users(outputs: Sequence[Variable]) -> dict[int, list]:
    """For each variable id, the nodes (of the graph of ``outputs``) that read it."""
    out: dict[int, list] = {}
    for node in toposort(outputs):
        for v in node.inputs:
            out.setdefault(id(v), []).append(node)
    return out


def graph_key(variables: Sequence[Variable]) -> tuple | None:
    """A hashable key equal for graphs equal node for node (same ops, same leaves, same
    constants); ``None`` if something in them is not a graph variable."""
    ids: dict[int, int] = {}  # variable id -> small int naming its structure
    table: dict[tuple, int] = {}

    def leaf(v) -> int:
        k = ("c", v.signature()) if isinstance(v, Constant) else ("v", id(v))
        return table.setdefault(k, len(table))

    if not all(isinstance(v, Variable) for v in variables):
        return None
    for v in variables:
        if v.owner is None:
            ids[id(v)] = leaf(v)
    for node in toposort(variables):
        args = []
        for i in node.inputs:
            if id(i) not in ids:
                ids[id(i)] = leaf(i)
            args.append(ids[id(i)])
        try:
            k = (node.op, tuple(args))
            hash(k)
        except TypeError:
            return None
        base = table.setdefault(k, len(table))
        for j, o in enumerate(node.outputs):
            ids[id(o)] = table.setdefault(("o", base, j), len(table))
    return tuple(ids[id(v)] for v in variables)
