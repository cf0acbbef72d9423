"""The rewrite engine: one forward walk over a graph that rebuilds each node on its rewritten
inputs, applies local rewrites (``node -> replacement outputs | None``) until none applies, and
merges identical nodes (CSE: same op, same inputs) and identical constants.

Rewrites are pure functions, device-blind, and never mutate nodes. Nodes a rewrite creates inherit
the user's source line of the node they replace, so errors still point at what the user wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import SymgraphError
from ..graph import Apply, Constant, Variable, toposort

LocalRewrite = Callable[[Apply], "Sequence[Variable] | None"]


class RewriteStats:
    def __init__(self) -> None:
        self.applied: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.applied[name] = self.applied.get(name, 0) + 1


def rewrite_graph(
    outputs: Sequence[Variable],
    rewrites: Sequence[LocalRewrite],
    cse: bool = True,
    stats: RewriteStats | None = None,
    memo: dict[int, Variable] | None = None,
) -> list[Variable]:
    """Return new outputs computing the same values as ``outputs`` after the rewrites.

    ``memo`` (old variable id -> new variable) is filled in, so callers can map the original
    graph's variables to their counterparts (the debug mode uses this).
    """
    memo = {} if memo is None else memo
    done: set[int] = set()  # ids of variables in the rewritten graph so far
    table: dict[tuple, list[Variable]] = {}
    constants: dict[tuple, Constant] = {}

    def merge_constant(v: Variable) -> Variable:
        if cse and isinstance(v, Constant):
            return constants.setdefault(v.signature(), v)
        return v

    for node in toposort(outputs):
        new_inputs = [merge_constant(memo.get(id(i), i)) for i in node.inputs]
        for v in new_inputs:
            done.add(id(v))
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            current = node
        else:
            current = node.clone_with_new_inputs(new_inputs)
        outs: list[Variable] = list(current.outputs)
        for _ in range(50):  # rewrites must terminate; 50 is far more than any chain needs
            owner = _whole_node(outs)
            if owner is None:
                break
            for rw in rewrites:
                replacement = rw(owner)
                if replacement is None:
                    continue
                replacement = [merge_constant(r) for r in replacement]
                _check_replacement(rw, owner, replacement)
                _inherit_trace(replacement, owner, done)
                if stats is not None:
                    stats.count(rw.__name__)
                outs = replacement
                break
            else:
                break
        owner = _whole_node(outs)
        if cse and owner is not None:
            key = (owner.op, tuple(id(i) for i in owner.inputs))
            prev = table.get(key)
            if prev is not None:
                outs = prev
            else:
                table[key] = outs
        for old, new in zip(node.outputs, outs):
            memo[id(old)] = new
            done.add(id(new))
    return [merge_constant(memo.get(id(o), o)) for o in outputs]


def _whole_node(outs: Sequence[Variable]) -> Apply | None:
    """The node whose outputs are exactly ``outs`` (all of them, in order), else None.

    A rewrite may replace a node by ONE output of a multi-output node (``x ** 1`` -> output 2 of
    a Scan): that variable is not the Scan node itself, so neither rewriting nor CSE may treat it
    as such (CSE would hand back the Scan's output list, and output 0 would take its place).
    """
    owner = outs[0].owner
    if owner is None or len(outs) != len(owner.outputs):
        return None
    return owner if all(o is p for o, p in zip(outs, owner.outputs)) else None


def _check_replacement(rw: LocalRewrite, node: Apply, replacement: Sequence[Variable]) -> None:
    if len(replacement) != len(node.outputs):
        raise SymgraphError(f"rewrite {rw.__name__} returned {len(replacement)} outputs for {node}")
    for old, new in zip(node.outputs, replacement):
        if old.dtype != new.dtype or old.ndim != new.ndim:
            raise SymgraphError(
                f"rewrite {rw.__name__} changed the type of {node.op}'s output from {old.type} "
                f"to {new.type}"
            )


def _inherit_trace(replacement: Sequence[Variable], old: Apply, done: set[int]) -> None:
    """Give nodes that a rewrite just created the user's line of the node they replace."""
    stack = [v for v in replacement]
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if v.owner is None or id(v) in done or id(v.owner) in seen:
            continue
        if any(id(i) == id(v) for i in old.inputs):
            continue
        seen.add(id(v.owner))
        v.owner.trace = old.trace
        for o in v.owner.outputs:
            o.trace = old.trace
        origin = old.tag.get("fused_from")
        if origin and "fused_from" not in v.owner.tag:
            v.owner.tag["fused_from"] = origin
        stack.extend(v.owner.inputs)
