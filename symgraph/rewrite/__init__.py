"""The rewrite pipeline: one explicit, ordered list of graph rewrites run before linking.

FAST_RUN:      merge/CSE + constant folding + canonicalize -> stabilize -> fusion
FAST_COMPILE:  merge/CSE only
DEBUG_MODE:    as FAST_RUN; ``function`` then checks every node against the original graph
"""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Apply, Variable, toposort
from .canonicalize import CANONICALIZE, transpose_dot_products
from .engine import RewriteStats, rewrite_graph
from .lift import LIFT
from .scan_merge import merge_equal_scans
from .stabilize import STABILIZE, share_softmax_with_crossentropy


def optimize(
    inputs: Sequence[Variable],
    outputs: Sequence[Variable],
    mode: str,
    stats: RewriteStats | None = None,
    memo: dict[int, Variable] | None = None,
) -> tuple[list[Variable], list[Apply]]:
    """Rewrite the graph of ``outputs`` for ``mode``; return the new outputs and their nodes.

    ``memo`` receives the mapping from original variables to rewritten ones (first pass only,
    before fusion, which replaces whole chains).
    """
    outputs = list(outputs)
    if mode == "FAST_COMPILE":
        outputs = rewrite_graph(outputs, [], stats=stats, memo=memo)
        return outputs, toposort(outputs)
    outputs = rewrite_graph(outputs, CANONICALIZE + STABILIZE + LIFT, stats=stats, memo=memo)
    outputs = merge_equal_scans(outputs)
    # a second walk sees the nodes the first one created (and merges what they duplicate)
    outputs = rewrite_graph(outputs, CANONICALIZE + STABILIZE + LIFT, stats=stats)
    outputs = transpose_dot_products(outputs)
    outputs = rewrite_graph(outputs, CANONICALIZE, stats=stats)  # merge the new transposes
    outputs = share_softmax_with_crossentropy(outputs)
    outputs = _fuse(outputs)
    return outputs, toposort(outputs)


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
