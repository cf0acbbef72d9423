"""Elementwise fusion: chains of Elemwise nodes become one ``Elemwise(Composite)`` node.

A fused node evaluates its scalar program in one pass: on NumPy into reused buffers, on CUDA as
one generated kernel. A node is absorbed into its consumer when its only client is that consumer
(so nothing else needs the intermediate) and it is not a graph output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..graph import Apply, Variable, toposort
from ..ops.elemwise import Elemwise

MAX_FUSED_INPUTS = 32  # CUDA kernels take their arguments by value; keep the list modest


def _fusable(node: Apply) -> bool:
    return (
        isinstance(node.op, Elemwise)
        and len(node.outputs) == 1
        and not getattr(node.op.scalar_op, "is_composite", False)
    )


def _describe(node: Apply) -> str:
    t = node.trace
    where = f" at {os.path.basename(t.filename)}:{t.lineno}" if t is not None else ""
    return f"{node.op}{where}"


def _n_leaves(members: list[Apply]) -> int:
    outs = {id(m.outputs[0]) for m in members}
    return len({id(v) for m in members for v in m.inputs if id(v) not in outs})


def outside_inputs(members: Sequence[Apply]) -> list[Variable]:
    """The distinct inputs of a group of nodes that no member computes, in order of first
    use: the inputs of the kernel the group becomes."""
    inside = {id(o) for m in members for o in m.outputs}
    leaves = {id(v): v for m in members for v in m.inputs if id(v) not in inside}
    return list(leaves.values())


def reinput(node: Apply, memo: dict[int, Variable]) -> None:
    """Rebuild ``node`` over the replacements ``memo`` holds for its inputs (recording its new
    outputs there); nothing when none of its inputs was replaced."""
    new_inputs = [memo.get(id(i), i) for i in node.inputs]
    if all(a is b for a, b in zip(new_inputs, node.inputs)):
        return
    new = node.clone_with_new_inputs(new_inputs)
    for o, n in zip(node.outputs, new.outputs):
        memo[id(o)] = n


def fuse_elemwise(outputs: Sequence[Variable]) -> list[Variable]:
    from ..ops.composite import Composite

    nodes = toposort(outputs)
    clients: dict[int, int] = {}
    for node in nodes:
        for v in node.inputs:
            clients[id(v)] = clients.get(id(v), 0) + 1
    for v in outputs:
        clients[id(v)] = clients.get(id(v), 0) + 2  # outputs must be materialised

    consumers: dict[int, list[Apply]] = {}
    for node in nodes:
        for v in node.inputs:
            consumers.setdefault(id(v), []).append(node)

    group_of: dict[int, list[Apply]] = {}  # root node id -> members (unordered)
    absorbed: set[int] = set()
    for node in reversed(nodes):
        if not _fusable(node) or id(node) in absorbed:
            continue
        members = [node]
        member_ids = {id(node)}
        grown = True
        while grown:  # until no input of the group can join it
            grown = False
            for m in list(members):
                for v in m.inputs:
                    o = v.owner
                    if o is None or id(o) in member_ids or id(o) in absorbed or not _fusable(o):
                        continue
                    if v.ndim != node.outputs[0].ndim:
                        continue
                    # every reader of v must be in the group (a value read twice inside the
                    # group, like a GRU's update gate z, is computed once in the fused program)
                    readers = consumers.get(id(v), [])
                    if len(readers) != clients.get(id(v)) or any(
                        id(r) not in member_ids for r in readers
                    ):
                        continue
                    if _n_leaves(members + [o]) > MAX_FUSED_INPUTS:
                        continue
                    members.append(o)
                    member_ids.add(id(o))
                    absorbed.add(id(o))
                    grown = True
        if len(members) > 1:
            group_of[id(node)] = members

    if not group_of:
        return list(outputs)

    order = {id(n): k for k, n in enumerate(nodes)}
    memo: dict[int, Variable] = {}
    for node in nodes:
        if id(node) in absorbed:
            continue
        members = group_of.get(id(node))
        if members is None:
            reinput(node, memo)
            continue
        members.sort(key=lambda n: order[id(n)])
        member_out = {id(m.outputs[0]): k for k, m in enumerate(members)}
        leaves = outside_inputs(members)
        leaf_index = {id(v): k for k, v in enumerate(leaves)}
        n_in = len(leaves)
        steps = []
        for m in members:
            args = tuple(
                n_in + member_out[id(v)] if id(v) in member_out else leaf_index[id(v)]
                for v in m.inputs
            )
            steps.append((m.op.scalar_op, args))
        composite = Composite(
            [v.dtype for v in leaves],
            steps,
            n_in + len(members) - 1,
            origin=[_describe(m) for m in members],
        )
        fused = Elemwise(composite).make_node(*[memo.get(id(v), v) for v in leaves])
        fused.trace = node.trace
        fused.tag["fused_from"] = [_describe(m) for m in members]
        out = fused.outputs[0]
        if out.dtype != node.outputs[0].dtype:
            raise AssertionError(f"fusion changed dtype {node.outputs[0].dtype} -> {out.dtype}")
        memo[id(node.outputs[0])] = out
    return [memo.get(id(o), o) for o in outputs]
