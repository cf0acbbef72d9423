"""The rewrite pipeline: one explicit, ordered list of graph rewrites run before linking.

FAST_RUN:      merge/CSE + constant folding + canonicalize -> stabilize -> memory -> fusion
               (on a device, loops' products sharing an operand, and loops' sums of
               products with invariant weights, are stacked first; elementwise kernels
               feeding each other become multi-output kernels last)
FAST_COMPILE:  merge/CSE only (of nodes and of loops)
DEBUG_MODE:    as FAST_RUN; ``function`` then checks every node against the original graph
"""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Apply, Variable, toposort
from ..ops.shape import Shape
from .canonicalize import CANONICALIZE, transpose_dot_products
from .engine import RewriteStats, rewrite_graph
from .lift import LIFT
from .memory import MEMORY
from .scan_merge import merge_equal_scans
from .stabilize import STABILIZE, share_softmax_with_crossentropy


def optimize(
    inputs: Sequence[Variable],
    outputs: Sequence[Variable],
    mode: str,
    stats: RewriteStats | None = None,
    memo: dict[int, Variable] | None = None,
    device: str = "cpu",
) -> tuple[list[Variable], list[Apply]]:
    """Rewrite the graph of ``outputs`` for ``mode`` and the backend named ``device``; return the
    new outputs and their nodes.

    ``memo`` receives the mapping from original variables to rewritten ones (first pass only,
    before fusion, which replaces whole chains).
    """
    outputs = list(outputs)
    if mode == "FAST_COMPILE":
        outputs = rewrite_graph(outputs, [], stats=stats, memo=memo)
        # merging loops is CSE too (a forward loop extended for its gradient: scan/store.py)
        outputs = _merge_loops(outputs, [], stats)
        return outputs, toposort(outputs)
    outputs = rewrite_graph(outputs, CANONICALIZE + STABILIZE + LIFT, stats=stats, memo=memo)
    # the walks after each merge see the nodes it created (and merge what they duplicate)
    outputs = _merge_loops(outputs, CANONICALIZE + STABILIZE + LIFT, stats)
    if device != "cpu":
        from ..scan.stack import stack_shared_operand_products
        from ..scan.stack_sums import stack_summed_products
        from .stack_blocks import stack_blocks

        device_rewrites = [stack_shared_operand_products, stack_summed_products, stack_blocks]
        outputs = rewrite_graph(outputs, device_rewrites, stats=stats)
    outputs = transpose_dot_products(outputs)
    outputs = rewrite_graph(outputs, CANONICALIZE, stats=stats)  # merge the new transposes
    outputs = share_softmax_with_crossentropy(outputs)
    outputs = rewrite_graph(outputs, MEMORY, stats=stats)
    outputs = _fuse(outputs)
    if device != "cpu":
        from .multi_fusion import fuse_multi_output

        outputs = fuse_multi_output(outputs)
    return outputs, shapes_first(toposort(outputs))


def _merge_loops(outputs: list[Variable], rewrites: list, stats: RewriteStats | None):
    """Merge equal (and extended) loops, then walk the graph, until no more loops merge.

    One merge can make the next possible: once layer 1's two forward loops are one, the two
    loops of layer 2 read the same inputs (a chain of loops, ``scan/fission.py``, whose links
    were extended for their gradients, ``scan/store.py``). At most four rounds.
    """
    for round_ in range(4):
        merged = merge_equal_scans(outputs)
        fewer = _count_loops(merged) < _count_loops(outputs)
        # the walk merges what the new loop outputs duplicate (and constants), which can make
        # loops equal that were not before it: stop only after a walk and a merge that did nothing
        outputs = rewrite_graph(merged, rewrites, stats=stats)
        if not fewer and round_ > 0:
            break
    return outputs


def _count_loops(outputs: list[Variable]) -> int:
    return sum(1 for n in toposort(outputs) if hasattr(n.op, "inner_outputs"))


def shapes_first(nodes: list[Apply]) -> list[Apply]:
    """``nodes`` with each ``Shape`` node moved up to just after the node producing its input.

    A shape read late in the backward pass would keep a large array alive until then (and so
    out of the linker's in-place reuse); taken at once, it lets the array die at its last real use.
    """
    shape_of: dict[int, list[Apply]] = {}
    early: list[Apply] = []
    for n in nodes:
        if isinstance(n.op, Shape):
            x = n.inputs[0]
            (early if x.owner is None else shape_of.setdefault(id(x.owner), [])).append(n)
    if not early and not shape_of:
        return nodes
    moved = {id(n) for n in early} | {id(n) for ns in shape_of.values() for n in ns}
    ordered = list(early)
    for n in nodes:
        if id(n) in moved:
            continue
        ordered.append(n)
        ordered.extend(shape_of.get(id(n), ()))
    return ordered


def _fuse(outputs: list[Variable]) -> list[Variable]:
    try:
        from .fusion import fuse_elemwise
    except ImportError:  # pragma: no cover - composite not available
        return outputs
    try:
        import symgraph.ops.composite  # noqa: F401
    except ImportError:
        return outputs
    return fuse_elemwise(outputs)
