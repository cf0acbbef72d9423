"""The rewrite pipeline: one explicit, ordered list of graph rewrites run before linking."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Apply, Variable, toposort


def optimize(
    inputs: Sequence[Variable], outputs: Sequence[Variable], mode: str
) -> tuple[list[Variable], list[Apply]]:
    """Rewrite the graph of ``outputs`` for ``mode``; return the new outputs and their nodes."""
    outputs = list(outputs)
    return outputs, toposort(outputs)
