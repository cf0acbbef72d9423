"""Loop fission: one Scan whose recurrent states form a chain of layers becomes a chain of Scans.

A stacked RNN written as one step (layer 2 reads layer 1's new state ``s1_t``) keeps all of its
work inside one loop, although layer 1 never reads layer 2. Split in two, the first loop computes
layer 1 and stores it as a sequence; the second loop reads that sequence, and
``push_out_sequence_work`` then turns layer 2's input projection ``U . s1_t`` into one matrix
product over all steps before the second loop (as a hand-written stacked RNN does, layer by
layer). The gradient is built from the split loops, so the backward pass is split the same way.

The split keeps the loop's meaning exactly:

- Both loops run the same ``n_steps`` over the same sequences (``go_backwards`` already reversed
  them in ``scan()``); the second loop reads the first one's values row by row.
- ``truncate_gradient=k`` (Theano's: the backward loop covers the last ``k`` steps) gives the same
  gradients: the second loop's backward pass sends gradients to the first one's rows for the last
  ``k`` steps only, which is what the first loop's backward pass covers.
- Not split: the tutorial's per-term ``bptt_truncate`` (a term's gradient would get ``k`` steps in
  each loop), loops with random draws (both loops would draw), and loops where the second loop
  would not lose any work (an extra loop only adds per-step overhead).
"""

from __future__ import annotations

from ..graph import Apply, Variable, ancestors, clone_replace, toposort
from .op import OutSpec, Scan
from .parts import Out, ScanParts, fresh
from .utils import dependents


def split_scan(node: Apply) -> list[tuple[Apply, list[int | None]]] | None:
    """Split ``node`` into a chain of loops; ``None`` when it does not split or does not pay.

    Returns, per new loop, the node and, for each output of ``node``, the position of the new
    node's output that replaces it (``None`` where another loop of the chain provides it).
    """
    op: Scan = node.op
    if op.bptt_truncate >= 0 or op.n_states < 2 or _draws_random(op.inner_outputs):
        return None
    taps_of = {j: op.inner_taps(j) for j in op.state_outs}
    reach = _state_reach(op, taps_of)
    first = _first_group(op.state_outs, reach)
    if first is None:
        return None
    second_taps = [ph for j in op.state_outs if j not in first for ph in taps_of[j]]
    late = dependents(op.inner_outputs, second_taps)  # needs the second group's state
    # the first loop: the first group's states, and the outputs that need no other state
    group1 = [
        j
        for j, spec in enumerate(op.outs)
        if j in first or (spec.kind != "state" and id(op.inner_outputs[j]) not in late)
    ]
    group2 = [j for j in range(len(op.outs)) if j not in group1]

    parts = ScanParts.of(node)
    first_taps = {id(ph): (j, k) for j in first for k, ph in zip(op.outs[j].taps, taps_of[j])}
    reads = _read_by_second(op, group2, late, first, first_taps)

    # the first loop: its outputs, plus a stored sequence per value the second loop reads
    outs1 = [parts.outs[j] for j in group1]
    value_pos = {id(op.inner_outputs[j]): k for k, j in enumerate(group1)}
    for v in reads:
        if id(v) not in first_taps and id(v) not in value_pos:
            value_pos[id(v)] = len(outs1)
            outs1.append(Out(OutSpec("seq"), v))
    node1 = _build(parts, outs1)

    # the second loop reads those values (and the first group's past states) as sequences
    seqs2 = list(parts.seqs)
    same_len = set(parts.same_len)
    replace = {}
    for v in reads:
        if id(v) in first_taps:
            j, tap = first_taps[id(v)]
            k = group1.index(j)
            L = op.outs[j].window
            outer = node1.outputs[k][L + tap : (tap or None)]
        else:
            k = value_pos[id(v)]
            outer = node1.outputs[k]
            if node1.op.outs[k].kind == "state":
                outer = outer[node1.op.outs[k].window :]
        ph = fresh(v, v.name or f"out{k}[t]")
        seqs2.append((outer, ph))
        same_len.add(id(outer))
        replace[v] = ph
    inners2 = clone_replace([op.inner_outputs[j] for j in group2], replace)
    outs2 = []
    for j, inner in zip(group2, inners2):
        o = parts.outs[j]
        outs2.append(Out(o.spec, inner, o.init, list(o.taps), o.like))
    parts2 = _copy_parts(parts, seqs2, outs2)
    parts2.same_len = same_len
    node2 = parts2.build()
    if not _pays(node2, [replace[v] for v in reads]):
        return None
    pos1 = [group1.index(j) if j in group1 else None for j in range(len(op.outs))]
    pos2 = [group2.index(j) if j in group2 else None for j in range(len(op.outs))]
    rest = split_scan(node2)
    chain = [(node1, pos1)]
    if rest is None:
        return chain + [(node2, pos2)]
    for sub, sub_pos in rest:  # the second loop split again: map through its outputs
        chain.append((sub, [None if p is None else sub_pos[p] for p in pos2]))
    return chain


def _draws_random(outputs: list[Variable]) -> bool:
    from ..ops.random import RandomOp

    return any(isinstance(n.op, RandomOp) for n in toposort(outputs))


def _state_reach(op: Scan, taps_of: dict[int, list[Variable]]) -> dict[int, set[int]]:
    """For each state, the states whose past values it reads, directly or through others."""
    direct: dict[int, set[int]] = {j: set() for j in op.state_outs}
    for k in op.state_outs:
        dep = dependents(op.inner_outputs, taps_of[k])
        for j in op.state_outs:
            if id(op.inner_outputs[j]) in dep:
                direct[j].add(k)
    reach = {}
    for j in op.state_outs:
        seen, stack = set(), [j]
        while stack:
            for k in direct[stack.pop()]:
                if k not in seen:
                    seen.add(k)
                    stack.append(k)
        reach[j] = seen | {j}
    return reach


def _first_group(states: list[int], reach: dict[int, set[int]]) -> set[int] | None:
    """The smallest set of states closed under "reads", other than all of them."""
    closed = [reach[j] for j in states if len(reach[j]) < len(states)]
    return min(closed, key=len) if closed else None


def _read_by_second(op: Scan, group2: list[int], late: set[int], first: set[int], first_taps):
    """What the second loop reads from the first: the first group's states (their new values
    and past values, as stored sequences) and, where the second group's work needs other
    per-step values the first loop computes anyway (a gate, say), those values. Other work
    (``U . s1_t``, or ``U . (s1_t * r1_t)``) moves to the second loop, where it is vectorized."""
    values = {id(op.inner_outputs[j]) for j in first}
    # per-step work of the first loop that reads past states other than through a new state
    stepwork: set[int] = set()
    for n in toposort(op.inner_outputs):
        if any(id(i) in first_taps or (id(i) in stepwork and id(i) not in values)
               for i in n.inputs):  # fmt: skip
            stepwork.update(id(o) for o in n.outputs)
    kept = ancestors([op.inner_outputs[j] for j in first])  # work the first loop does anyway
    found: dict[int, Variable] = {}
    stack = [op.inner_outputs[j] for j in group2]
    stack += [i for n in toposort(stack) if id(n.outputs[0]) in late for i in n.inputs]
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if id(v) in seen or id(v) in late:
            continue
        seen.add(id(v))
        if id(v) in values or id(v) in first_taps or (id(v) in stepwork and id(v) in kept):
            found[id(v)] = v
        elif v.owner is not None:
            stack.extend(v.owner.inputs)
    return list(found.values())


def _copy_parts(parts: ScanParts, seqs, outs) -> ScanParts:
    return ScanParts(
        parts.n,
        parts.n_from_seqs,
        seqs,
        outs,
        list(parts.nonseqs),
        name=parts.name,
        mode=parts.mode,
        truncate_gradient=parts.truncate_gradient,
        bptt_truncate=parts.bptt_truncate,
        trace=parts.trace,
        same_len=set(parts.same_len),
    )


def _build(parts: ScanParts, outs: list[Out]) -> Apply:
    return _copy_parts(parts, list(parts.seqs), outs).build()


def _pays(node: Apply, read_phs: list[Variable]) -> bool:
    """Whether moving per-step work out of the second loop takes work that reads the first
    loop's values with it (otherwise the split only adds a loop)."""
    from .rewrites import _hoist_invariants, _push_out_sequence_work

    r = _hoist_invariants(node)
    if r is not None:
        node, reps = r
        read_phs = _carried(read_phs, node)
    phs = [ph for ph in read_phs if ph is not None]
    before = len(dependents(node.op.inner_outputs, phs)) - len(phs)
    r = _push_out_sequence_work(node)
    if r is None:
        return False
    after_node = r[0]
    kept = [v for v in after_node.op.inner_seqs if any(v is ph for ph in phs)]
    after = len(dependents(after_node.op.inner_outputs, kept)) - len(kept)
    return after < before


def _carried(phs: list[Variable], node: Apply) -> list[Variable | None]:
    # hoisting rebuilds the op but keeps sequence placeholders (it clones only computed work)
    inner = {id(v) for v in node.op.inner_seqs}
    return [ph if id(ph) in inner else None for ph in phs]
