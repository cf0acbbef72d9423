"""Multi-output fusion (device only): elementwise kernels that feed each other become one kernel
with several results.

``fusion.py`` stops at a value read by several nodes: it must be stored, so it ends a kernel. A
GRU's backward step then runs ``d = g + g_next``, ``dm = d * mask``, and kernels for the gate
gradients that read ``dm`` (six per time step). On a GPU every kernel costs a launch and reads its
inputs from memory again. Here an elementwise producer joins the kernel of an elementwise consumer
even when other nodes read it too: its value becomes one more result of the joined kernel (a
multi-output ``Composite``), and the consumer reads it from a register. The GRU step above runs
three kernels, an LSTM's backward step two instead of eleven. Siblings join too: the kernels that
read one product's result become one kernel, which reads it once.

Rules that keep every result exactly what it was:

- only nodes whose results have one number of dimensions, the same for producer and consumer,
  are joined. Each result keeps the shape it had alone: the broadcast shape of the inputs it
  depends on (``Elemwise``'s rule for several results). When those shapes agree at run time,
  as they do in a loop step and in an optimizer's update of one weight, one kernel writes all
  results over that shape; when they do not (a result that depends only on a bias row), the
  launcher runs one kernel per result (``backends/cupy.py``);
- never a cycle: a group never holds two nodes with a path between them through a node outside
  it (a kernel cannot run both before and after the matrix product between them);
- at most ``MAX_FUSED_INPUTS`` distinct inputs and ``MAX_RESULTS`` results per kernel.

Not on the CPU: there each fused node is a NumPy program whose buffer planning assumes one result,
and a launch costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import codegen
from ..graph import Apply, Variable, toposort
from ..ops.elemwise import Elemwise
from .fusion import MAX_FUSED_INPUTS, _describe, outside_inputs, reinput

MAX_RESULTS = 16
# The cycle check walks the nodes between a group's first and last member; a producer and a
# consumer further apart than this (a forward value read late in the backward pass) are left
# apart, which keeps compiling a large graph fast and loses little (they run once per call).
MAX_WINDOW = 400


def _rank_of(node: Apply) -> int | None:
    """The number of dimensions of all the node's results, if it is a candidate."""
    if not isinstance(node.op, Elemwise):
        return None
    ranks = {o.ndim for o in node.outputs}
    if len(ranks) != 1 or 0 in ranks or not codegen.renderable(node):
        return None
    return ranks.pop()


def _one_known_shape(nodes: list[Apply]) -> bool:
    shapes = {o.type.shape for n in nodes for o in n.outputs}
    return len(shapes) == 1 and None not in next(iter(shapes))


class _Groups:
    """Disjoint groups of nodes, by node id, with the graph facts the merge checks need."""

    def __init__(self, nodes: list[Apply], outputs: Sequence[Variable]):
        self.nodes = nodes
        self.index = {id(n): k for k, n in enumerate(nodes)}
        self.group: dict[int, list[Apply]] = {}  # node id -> its group's member list
        self.readers: dict[int, list[Apply]] = {}  # variable id -> nodes reading it
        for n in nodes:
            for v in n.inputs:
                self.readers.setdefault(id(v), []).append(n)
        self.graph_outputs = {id(v) for v in outputs}

    def members(self, node: Apply) -> list[Apply]:
        return self.group.get(id(node), [node])

    def results(self, members: list[Apply]) -> list[Variable]:
        """The members' outputs that must be stored: read outside the group, or graph outputs."""
        ids = {id(m) for m in members}
        return [
            o
            for m in members
            for o in m.outputs
            if id(o) in self.graph_outputs
            or any(id(r) not in ids for r in self.readers.get(id(o), ()))
        ]

    def has_cycle(self, members: list[Apply]) -> bool:
        """True when a node outside ``members`` lies on a path between two of them."""
        ids = {id(m) for m in members}
        lo = min(self.index[i] for i in ids)
        hi = max(self.index[i] for i in ids)
        tainted: set[int] = set()  # outside nodes reached from the group
        for node in self.nodes[lo + 1 : hi + 1]:
            fed = any(
                v.owner is not None and (id(v.owner) in ids or id(v.owner) in tainted)
                for v in node.inputs
            )
            if not fed:
                continue
            if id(node) in ids:
                if any(v.owner is not None and id(v.owner) in tainted for v in node.inputs):
                    return True
            else:
                tainted.add(id(node))
        return False

    def try_merge(self, a: Apply, b: Apply) -> bool:
        ga, gb = self.members(a), self.members(b)
        if ga is gb:
            return False
        merged = ga + gb
        span = max(self.index[id(m)] for m in merged) - min(self.index[id(m)] for m in merged)
        if span > MAX_WINDOW:
            return False
        if (
            len(outside_inputs(merged)) > MAX_FUSED_INPUTS
            or len(self.results(merged)) > MAX_RESULTS
        ):
            return False
        if self.has_cycle(merged):
            return False
        for m in merged:
            self.group[id(m)] = merged
        return True


def fuse_multi_output(outputs: Sequence[Variable]) -> list[Variable]:
    """The graph of ``outputs`` with elementwise producers joined into their consumers' kernels."""
    nodes = toposort(outputs)
    groups = _Groups(nodes, outputs)
    rank = {id(n): r for n in nodes if (r := _rank_of(n)) is not None}
    for node in nodes:
        if id(node) not in rank:
            continue
        for v in node.inputs:
            p = v.owner
            if p is not None and rank.get(id(p)) == rank[id(node)]:
                groups.try_merge(p, node)
    # siblings: the kernels that read one product's result (a GRU's backward step reads the
    # candidate's gradient product in two) become one, which reads it once. Unrelated inputs
    # need not broadcast together, so only where every result has one known shape (a loop
    # step compiled for its shapes)
    for node in nodes:
        if id(node) in rank:
            continue
        for o in node.outputs:
            readers = [r for r in groups.readers.get(id(o), ()) if id(r) in rank]
            for r in readers[1:]:
                if _one_known_shape(groups.members(readers[0]) + groups.members(r)):
                    groups.try_merge(readers[0], r)
    units = _units(nodes, groups)
    if all(len(u) == 1 for u in units):
        return list(outputs)
    return _rebuild(outputs, _unit_order(units, groups), groups)


def _units(nodes: list[Apply], groups: _Groups) -> list[list[Apply]]:
    seen: set[int] = set()
    units = []
    for n in nodes:
        members = groups.members(n)
        if id(members[0]) in seen:
            continue
        seen.add(id(members[0]))
        units.append(sorted(members, key=lambda m: groups.index[id(m)]))
    return units


def _unit_order(units: list[list[Apply]], groups: _Groups) -> list[list[Apply]]:
    """The units (single nodes and groups) in an order where each comes after those it reads
    (the nodes' own order need not be one: a group's last member may come after a node that
    reads its first)."""
    unit_of = {id(m): k for k, u in enumerate(units) for m in u}
    deps = [
        {unit_of[id(v.owner)] for m in u for v in m.inputs if v.owner is not None} - {k}
        for k, u in enumerate(units)
    ]
    order: list[int] = []
    state = [0] * len(units)  # 0 new, 1 on the stack, 2 placed
    for start in range(len(units)):
        if state[start]:
            continue
        stack = [(start, iter(sorted(deps[start])))]
        state[start] = 1
        while stack:
            k, it = stack[-1]
            nxt = next((d for d in it if state[d] != 2), None)
            if nxt is None:
                stack.pop()
                state[k] = 2
                order.append(k)
            elif state[nxt] == 1:
                raise AssertionError("internal: multi-output fusion made a cycle")
            else:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(deps[nxt]))))
    return [units[k] for k in order]


def _rebuild(
    outputs: Sequence[Variable], units: list[list[Apply]], groups: _Groups
) -> list[Variable]:
    memo: dict[int, Variable] = {}
    for unit in units:
        results = groups.results(unit) if len(unit) > 1 else []
        fused = _fused_node(unit, results, memo) if results else None
        if fused is None:  # a single node, or a group kept apart (see _fused_node)
            for node in unit:
                reinput(node, memo)
            continue
        for old, new_out in zip(results, fused.outputs):
            if old.dtype != new_out.dtype or old.type.shape != new_out.type.shape:
                raise AssertionError(
                    f"multi-output fusion changed {old.dtype}{old.type.shape} into "
                    f"{new_out.dtype}{new_out.type.shape}"
                )
            memo[id(old)] = new_out
    return [memo.get(id(o), o) for o in outputs]


def _fused_node(members: list[Apply], results: list[Variable], memo: dict) -> Apply | None:
    """One Elemwise node computing ``results`` from the members' programs inlined in order;
    None when two results are one value (a program returning its input twice)."""
    from .. import codegen
    from ..ops.composite import Composite

    leaves = outside_inputs(members)
    # variable id -> value number in the joined program
    value_of = {id(v): k for k, v in enumerate(leaves)}
    steps: list = []
    n_in = len(leaves)
    for m in members:
        program, _ = codegen.program_of(m)
        local = [value_of[id(v)] for v in m.inputs]  # the member's value numbers -> joined ones
        for op, args in program.steps:
            local.append(n_in + len(steps))
            steps.append((op, tuple(local[a] for a in args)))
        for o, number in zip(m.outputs, program.outputs):
            value_of[id(o)] = local[number]
    numbers = [value_of[id(r)] for r in results]
    if len(set(numbers)) != len(numbers):
        return None
    origin = [_describe(m) for m in members]
    composite = Composite([v.dtype for v in leaves], steps, numbers, origin=origin)
    fused = Elemwise(composite).make_node(*[memo.get(id(v), v) for v in leaves])
    fused.trace = members[-1].trace
    fused.tag["fused_from"] = [o for m in members for o in m.tag.get("fused_from", [_describe(m)])]
    return fused
