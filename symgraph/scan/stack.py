"""Stacking a loop's products that share an operand (for device backends).

``A . h`` and ``B . h`` with weights that are loop invariants (a GRU's update and reset gates, an
LSTM's four gates, all reading the previous state) become one product ``[A; B] . h`` whose row
blocks are the results. The weights are concatenated once per call, before the loop; each step
then runs one taller matrix product instead of several small ones. On a GPU every op left in a
loop is a kernel launch per time step, and a taller product keeps more of the device busy. On the
CPU stacked gate products were measured without gain, so the
pipeline applies this for devices only (``optimize(..., device=)``).

When the loop stores several blocks of one product for the gradient (``scan/store.py``), it
stores the product once instead (one copy per step, not one per block), and the blocks are
sliced from it after the loop.

The rewrite runs when a function is compiled, after gradients are built, so it changes what runs,
not what is differentiated. The blocks are cut at the weights' own row counts. The loop's step is
compiled for the shapes it sees, so those counts are constants there and cutting costs nothing.
"""

from __future__ import annotations

from ..graph import Apply, Variable, clone_replace, toposort
from ..ops.blas import Dot, dot
from ..ops.shape import concatenate, shape
from .op import OutSpec, Scan
from .parts import Out, ScanParts, fresh


def stack_shared_operand_products(node: Apply) -> list[Variable] | None:
    """The replacements for ``node``'s outputs, or None when no two products share an operand."""
    if not isinstance(node.op, Scan):
        return None
    op: Scan = node.op
    invariant = {id(i) for i in op.inner_nonseqs}
    groups: dict[int, list[Apply]] = {}
    for n in toposort(op.inner_outputs):
        if (
            isinstance(n.op, Dot)
            and id(n.inputs[0]) in invariant
            and n.inputs[0].ndim == 2
            and n.inputs[1].ndim in (1, 2)
        ):
            groups.setdefault(id(n.inputs[1]), []).append(n)
    stackable = []
    for dots in groups.values():
        weights = list({id(n.inputs[0]): n.inputs[0] for n in dots}.values())
        if len(weights) >= 2 and len({w.dtype for w in weights}) == 1:
            stackable.append((dots, weights))
    if not stackable:
        return None
    parts = ScanParts.of(node)
    outer_of = {id(i): o for o, i in parts.nonseqs}
    replace: dict[Variable, Variable] = {}
    blocks: dict[int, tuple[Variable, Variable, Variable]] = {}  # block -> product, outer rows
    for dots, weights in stackable:
        outers = [outer_of[id(w)] for w in weights]
        stacked = concatenate(outers)  # [sum H, E], once per call
        ph = fresh(stacked, "hoisted(stacked weights)")
        parts.nonseqs.append((stacked, ph))
        product = dot(ph, dots[0].inputs[1])  # [sum H, B]: one product per step
        block, start, outer_start = {}, 0, 0
        for w, outer in zip(weights, outers):  # the weights stay step inputs for their shapes
            end, outer_end = start + w.shape[0], outer_start + shape(outer)[0]
            block[id(w)] = product[start:end]
            blocks[id(block[id(w)])] = (product, outer_start, outer_end)
            start, outer_start = end, outer_end
        for n in dots:
            replace[n.outputs[0]] = block[id(n.inputs[0])]
    inners = clone_replace([o.inner for o in parts.outs], replace)
    for o, v in zip(parts.outs, inners):
        o.inner = v
    return _store_products_once(node, parts, blocks)


def _store_products_once(node: Apply, parts: ScanParts, blocks: dict) -> list[Variable]:
    """Rebuild the loop; where it stores two or more blocks of one product per step, it stores
    the product instead and the blocks are sliced from it after the loop."""
    stored: dict[int, list[Out]] = {}
    for o in parts.outs:
        if o.spec.kind == "seq" and id(o.inner) in blocks:
            stored.setdefault(id(blocks[id(o.inner)][0]), []).append(o)
    stored = {k: outs for k, outs in stored.items() if len(outs) >= 2}
    sliced = {o.origin: blocks[id(o.inner)] for outs in stored.values() for o in outs}
    parts.outs = [o for o in parts.outs if o.origin not in sliced]
    products = {id(p): p for p, _, _ in sliced.values()}
    parts.outs += [Out(OutSpec("seq"), p) for p in products.values()]
    new = parts.build()
    position = {o.origin: k for k, o in enumerate(parts.outs) if o.origin is not None}
    position.update({id(o.inner): k for k, o in enumerate(parts.outs) if o.origin is None})
    reps = []
    for j in range(len(node.outputs)):
        if j in sliced:
            product, start, end = sliced[j]
            reps.append(new.outputs[position[id(product)]][:, start:end])
        else:
            reps.append(new.outputs[position[j]])
    return reps
