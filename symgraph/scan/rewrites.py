"""Rewrites that move work out of a Scan loop. Each is a pure function ``node -> replacements``:
a list with one variable per output of ``node`` (to substitute for it), or ``None`` when the
rewrite does not apply. ``scan()`` applies them when it builds the op (and ``Scan.grad`` applies
them to the backward loop), so gradients are built from the lean loop; the pipeline in
``symgraph.rewrite`` may call them again (they are idempotent: a second call returns ``None``).

- :func:`hoist_invariants`: work that depends only on non-sequences (``W.T``, ``2 * W``) is done
  once before the loop and passed in as a new non-sequence.
- :func:`push_out_sequence_work`: per-step work that depends only on sequences and
  non-sequences (the embedding lookup ``U[:, x_t]``, an input projection ``W.dot(x_t)``) is
  vectorized over the whole sequence before the loop (``U[:, x].T``, ``x.dot(W.T)``) and read as a
  new sequence.
- :func:`push_out_outputs`: per-step work whose result is not fed back (the output layer
  ``softmax(V.dot(s_t))``) is vectorized over the stored ``[T, ...]`` states after the loop.
  Sums over steps (gradients of non-sequences in a backward loop) become one reduction, and a sum
  of per-step outer products ``sum_t outer(a_t, b_t)`` one matrix product ``A.T . B``.
"""

from __future__ import annotations

from ..graph import Apply, Constant, Variable, ancestors, clone_replace, toposort
from ..ops.blas import Dot, contiguous
from ..ops.elemwise import Elemwise
from ..ops.shape import DimShuffle
from .op import OutSpec, Scan
from .parts import Out, ScanParts, fresh
from .truncation import keep_last_rows_grad
from .utils import dependents
from .vectorize import BatchSumToShape, vectorize


def hoist_invariants(node: Apply) -> list[Variable] | None:
    """Compute loop-invariant work before the loop (see the module docstring)."""
    r = _hoist_invariants(node)
    return None if r is None else r[1]


def push_out_sequence_work(node: Apply) -> list[Variable] | None:
    """Vectorize per-step work on sequences before the loop (see the module docstring)."""
    r = _push_out_sequence_work(node)
    return None if r is None else r[1]


def push_out_outputs(node: Apply) -> list[Variable] | None:
    """Vectorize per-step work on outputs after the loop (see the module docstring)."""
    r = _push_out_outputs(node)
    return None if r is None else r[1]


def optimize_scan(node: Apply) -> list[Variable]:
    """All three rewrites in order; the replacements for ``node.outputs``."""
    steps = [_hoist_invariants, _push_out_sequence_work, _hoist_invariants, _push_out_outputs]
    current, results = node, list(node.outputs)
    for step in steps:
        r = step(current)
        if r is None:
            continue
        new_node, reps = r
        results = clone_replace(results, dict(zip(current.outputs, reps)))
        current = new_node
    return results


def _inner_phs(op: Scan) -> tuple[list, list, list]:
    taps = [ph for j in op.state_outs for ph in op.inner_taps(j)]
    return op.inner_seqs, taps, op.inner_nonseqs


def _boundary(outputs: list[Variable], movable: set[int]) -> list[Variable]:
    """Movable computed variables read by non-movable nodes or returned as outputs."""
    chosen: dict[int, Variable] = {}
    for node in toposort(outputs):
        if id(node.outputs[0]) in movable:
            continue
        for v in node.inputs:
            if id(v) in movable and v.owner is not None:
                chosen.setdefault(id(v), v)
    for v in outputs:
        if id(v) in movable and v.owner is not None:
            chosen.setdefault(id(v), v)
    return list(chosen.values())


def _rebuild(node: Apply, parts: ScanParts, replace: dict) -> tuple[Apply, list[Variable]]:
    # one clone for all outputs, so the work they share stays shared
    inners = clone_replace([o.inner for o in parts.outs], replace)
    for o, v in zip(parts.outs, inners):
        o.inner = v
    new = parts.build()
    return new, list(new.outputs)


def _hoist_invariants(node: Apply):
    op: Scan = node.op
    seqs, taps, nonseqs = _inner_phs(op)
    outputs = op.inner_outputs
    variant = dependents(outputs, seqs + taps)
    uses_nonseq = dependents(outputs, nonseqs)
    movable = {i for i in uses_nonseq if i not in variant}
    hoist = _boundary(outputs, movable)
    if not hoist:
        return None
    parts = ScanParts.of(node)
    outer_of = {id(i): o for o, i in parts.nonseqs}
    values = clone_replace(hoist, {i: outer_of[id(i)] for i in nonseqs})
    right_of_matmul = {
        id(n.inputs[1])
        for n in toposort(outputs)
        if isinstance(n.op, Dot) and n.inputs[0].ndim == 2 and n.inputs[1].ndim == 2
    }
    replace = {}
    for v, outer in zip(hoist, values):
        if id(v) in right_of_matmul and _transposes(v):
            outer = contiguous(outer)  # copied once per call, read at every step
        ph = fresh(v, _label(v, "hoisted"))
        parts.nonseqs.append((outer, ph))
        replace[v] = ph
    return _rebuild(node, parts, replace)


def _transposes(v: Variable) -> bool:
    """``v`` is a matrix transposed by a DimShuffle (a Fortran-ordered view)."""
    return (
        v.owner is not None
        and isinstance(v.owner.op, DimShuffle)
        and v.ndim == 2
        and [a for a in v.owner.op.new_order if a != "x"] == [1, 0]
    )


def _push_out_sequence_work(node: Apply):
    op: Scan = node.op
    seqs, taps, nonseqs = _inner_phs(op)
    if not seqs:
        return None
    outputs = op.inner_outputs
    variant = dependents(outputs, taps)
    uses_seq = dependents(outputs, seqs)
    movable = {i for i in uses_seq if i not in variant}
    candidates = _boundary(outputs, movable)
    if not candidates:
        return None
    parts = ScanParts.of(node)
    batched = {i: parts.aligned(o) for o, i in parts.seqs}
    unbatched = {i: o for o, i in parts.nonseqs}
    replace = {}
    while candidates:
        results = vectorize(candidates, batched, unbatched)
        retry = []
        for v, r in zip(candidates, results):
            if r is not None and r[1]:
                ph = fresh(v, _label(v, "per_step"))
                parts.seqs.append((r[0], ph))
                parts.same_len.add(id(r[0]))
                replace[v] = ph
            elif r is not None:  # the same for every step (e.g. a slice's shape)
                ph = fresh(v, _label(v, "hoisted"))
                parts.nonseqs.append((r[0], ph))
                replace[v] = ph
            elif v.owner is not None:
                # it cannot run on the whole sequence: try the work feeding it
                retry += [i for i in v.owner.inputs if id(i) in movable and i.owner is not None]
        done = {id(v) for v in replace}
        candidates = list({id(v): v for v in retry if id(v) not in done}.values())
    if not replace:
        return None
    return _rebuild(node, parts, replace)


def _push_out_outputs(node: Apply):
    op: Scan = node.op
    outs = op.outs
    cands = [j for j, s in enumerate(outs) if s.kind in ("seq", "sum")]
    if not cands:
        return None
    state_vals = [op.inner_outputs[j] for j in op.state_outs]
    kept_seq = {id(op.inner_outputs[j]) for j in cands if outs[j].kind == "seq"}
    needed = ancestors(state_vals) if state_vals else set()
    parts = ScanParts.of(node)
    seq_outer = {id(i): parts.aligned(o) for o, i in parts.seqs}
    unbatched = {i: o for o, i in parts.nonseqs}
    stored: dict[int, tuple[int, int | None]] = {}  # var id -> (state out, tap or None)
    for j in op.state_outs:
        if outs[j].store == "all":
            stored.setdefault(id(op.inner_outputs[j]), (j, None))
            for k, ph in zip(outs[j].taps, op.inner_taps(j)):
                stored.setdefault(id(ph), (j, k))
    inputs = {id(v) for v in op.inner_inputs}
    emitted: dict[int, tuple[Variable, Variable]] = {}  # var id -> (inner var, batched ph)
    loop_refs: dict[int, tuple[Variable, int, int | None]] = {}  # batched ph id -> how to fill
    rep_graphs: dict[int, Variable] = {}
    moved = 0

    def batched_ph(v: Variable) -> Variable | None:
        if id(v) in seq_outer:
            return seq_outer[id(v)]
        if v in unbatched or isinstance(v, Constant):
            return None
        if id(v) in stored:
            ph = fresh(v, lead=1)
            loop_refs[id(ph)] = (ph, *stored[id(v)])
            return ph
        if id(v) not in emitted:
            emitted[id(v)] = (v, fresh(v, lead=1))
        return emitted[id(v)][1]

    for j in cands:
        y = op.inner_outputs[j]
        if outs[j].kind == "seq" and id(y) in needed and id(y) not in stored:
            continue  # computed in the loop anyway; already stored per step
        stop = needed | inputs
        boundary = [y] if id(y) in stop else _tail_inputs(y, stop)
        batched = {}
        for b in boundary:
            ph = batched_ph(b)
            if ph is not None:
                batched[b] = ph
        (res,) = vectorize([y], batched, unbatched)
        if res is None or not res[1]:
            continue
        value = res[0]
        if op.truncate_gradient != -1:
            # Theano's truncation lets work inside the loop pass gradients for the last k steps
            # only; moved out, the work keeps exactly that through this gradient mask
            value = keep_last_rows_grad(value, op.truncate_gradient)
        if outs[j].kind == "sum":
            value = sum_over_batch(value)
        rep_graphs[j] = value
        moved += 1
    if not moved:
        return None
    # an output that is itself emitted keeps its slot instead of being stored twice
    new_outs = [o for o in parts.outs if o.origin not in rep_graphs or o.spec.kind == "state"]
    for var_id, (v, _ph) in emitted.items():
        if var_id in kept_seq and any(
            o.inner is v and o.spec.kind == "seq" and o.origin not in rep_graphs for o in new_outs
        ):
            continue
        new_outs.append(Out(OutSpec("seq"), v))
    parts.outs = new_outs
    new = parts.build()
    fill = {}
    for v, ph in emitted.values():
        pos = next(k for k, o in enumerate(new_outs) if o.inner is v and o.spec.kind == "seq")
        fill[ph] = new.outputs[pos]
    for ph, j, tap in loop_refs.values():
        pos = next(k for k, o in enumerate(new_outs) if o.origin == j)
        L = outs[j].window
        buf = new.outputs[pos]
        fill[ph] = buf[L:] if tap is None else buf[L + tap : tap]
    reps = []
    for j in range(len(outs)):
        if j in rep_graphs:
            reps.append(clone_replace([rep_graphs[j]], fill)[0])
        else:
            pos = next(k for k, o in enumerate(new_outs) if o.origin == j)
            reps.append(new.outputs[pos])
    return new, reps


def _label(v: Variable, what: str) -> str:
    """A name for the placeholder that replaces ``v`` in the loop (shown by debugprint)."""
    if v.name:
        return v.name
    return f"{what}({v.owner.op})" if v.owner is not None else what


def _tail_inputs(y: Variable, stop: set[int]) -> list[Variable]:
    """The variables in ``stop`` that the work computing ``y`` (outside ``stop``) reads."""
    found: dict[int, Variable] = {}
    seen: set[int] = set()
    stack = [y]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if id(v) in stop:
            found[id(v)] = v
            continue
        if v.owner is not None:
            stack.extend(v.owner.inputs)
    return list(found.values())


def sum_over_batch(v: Variable) -> Variable:
    """``sum(v, axis=0)`` for a batched ``v``, with sums of outer products turned into products."""
    from .. import tensor as T
    from ..ops.blas import dot

    o = v.owner
    if o is not None and isinstance(o.op, Elemwise):
        name = o.op.scalar_op.name
        if name == "mul" and len(o.inputs) == 2:
            prod = _outer_product(*o.inputs) or _outer_product(*reversed(o.inputs))
            if prod is not None:
                a, b = prod
                return dot(a.T, b)
        if name == "add" and all(i.ndim == v.ndim for i in o.inputs):
            parts = [sum_over_batch(i) for i in o.inputs]
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            return total
        if name.startswith("cast_") or name == "neg":
            return o.op(sum_over_batch(o.inputs[0]))
    if o is not None and isinstance(o.op, BatchSumToShape):
        return T.sum_to_shape_of(sum_over_batch(o.inputs[0]), o.inputs[1])
    return T.sum(v, axis=0)


def _outer_product(x: Variable, y: Variable) -> tuple[Variable, Variable] | None:
    """``(A, B)`` when ``x * y`` is ``A[:, :, None] * B[:, None, :]`` (batched outer products)."""
    if x.owner is None or y.owner is None:
        return None
    if not (isinstance(x.owner.op, DimShuffle) and isinstance(y.owner.op, DimShuffle)):
        return None
    a, b = x.owner.inputs[0], y.owner.inputs[0]
    if a.ndim != 2 or b.ndim != 2:
        return None
    if x.owner.op.new_order == (0, 1, "x") and y.owner.op.new_order == (0, "x", 1):
        return a, b
    return None


__all__ = [
    "hoist_invariants",
    "optimize_scan",
    "push_out_outputs",
    "push_out_sequence_work",
    "sum_over_batch",
]
