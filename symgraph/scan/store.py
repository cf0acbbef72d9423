"""Store what the backward loop would recompute at a price: the per-step products.

The backward step reads forward values. States are stored anyway; anything else the gradient
needs (a gate ``sigmoid(x_t U + h W + b)``) is recomputed from the stored states, and the loop
rewrites then move that recomputation out of the backward loop as one vectorized computation
over all steps. That is cheap for elementwise work, but the products are not: a minibatched
loop's ``h W`` recomputed for all steps costs as much as the forward products themselves
(measured 5.7 ms of 180 ms for a batched GRU step), and even a sentence's ``W h`` products,
redone as ``S W.T`` after the loop, cost about 0.35 ms of a 9 ms tutorial GRU step (a product
with a transposed weight is slow on this BLAS). The elementwise gates are still recomputed:
storing them would split the forward step's fused program.

:func:`store_products` returns the forward loop with those products as extra per-step outputs
(copied into a buffer at each step, 1-2 us), and the gradient reads them from there. The extra
outputs make a new forward node; ``merge_equal_scans`` (``symgraph/rewrite/scan_merge.py``)
then lets the cost use the same node, so the forward loop still runs once.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Apply, Variable, toposort
from ..ops.blas import BatchedMatMul, Dot
from .op import OutSpec, Scan
from .parts import Out, ScanParts
from .utils import dependents


def _matrix_product(node: Apply) -> bool:
    return isinstance(node.op, Dot | BatchedMatMul)


def store_products(
    node: Apply, exprs: Sequence[Variable]
) -> tuple[Apply, list[tuple[Variable, int]]] | None:
    """``(forward node with extra outputs, [(inner product, its output index)])`` for the
    per-step matrix products of ``node``'s step that ``exprs`` (the gradient graph, still in
    terms of the forward step) would recompute; None when there are none."""
    op: Scan = node.op
    forward = {id(n) for n in toposort(op.inner_outputs)}
    taps = [ph for j in op.state_outs for ph in op.inner_taps(j)]
    per_step = dependents(op.inner_outputs, taps)
    already = {id(y) for y in op.inner_outputs}
    products = [
        n.outputs[0]
        for n in toposort(list(exprs))
        if id(n) in forward
        and _matrix_product(n)
        and id(n.outputs[0]) in per_step
        and id(n.outputs[0]) not in already
    ]
    if not products:
        return None
    parts = ScanParts.of(node)
    first = len(parts.outs)
    for k, v in enumerate(products):
        parts.outs.append(Out(OutSpec("seq"), v, origin=first + k))
    extended = parts.build()
    return extended, [(v, first + k) for k, v in enumerate(products)]
