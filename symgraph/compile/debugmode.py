"""DEBUG_MODE: run the optimised graph beside the original one and name the first node whose
value differs (the original node, with the user's line), so a wrong rewrite is found at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SymgraphError, where
from ..graph import Apply, Variable, toposort
from ..rewrite import optimize
from .linker import LinkedProgram, link


class DebugModeError(SymgraphError, AssertionError):
    """The optimised graph computed a different value than the original graph."""


def link_debug(
    in_vars: Sequence[Variable], targets: Sequence[Variable], backend: Any
) -> tuple[LinkedProgram, list[Apply]]:
    orig_nodes = toposort(targets)
    memo: dict[int, Variable] = {}
    opt_targets, opt_nodes = optimize(in_vars, targets, "FAST_RUN", memo=memo)
    available = {id(o) for n in opt_nodes for o in n.outputs}
    pairs = []
    for node in orig_nodes:
        for old in node.outputs:
            new = memo.get(id(old))
            if new is not None and id(new) in available:
                pairs.append((node, old, new))
    ref = link(in_vars, [o for _, o, _ in pairs] + list(targets), orig_nodes, backend)
    opt = link(in_vars, [n for _, _, n in pairs] + list(opt_targets), opt_nodes, backend)
    k = len(pairs)
    to_host = backend.to_host

    def checked(*args: Any) -> tuple:
        expected = ref.fn(*args)
        got = opt.fn(*args)
        for (node, old, _), a, b in zip(pairs, expected[:k], got[:k]):
            _compare(node, old, to_host(a), to_host(b))
        return got[k:]

    program = LinkedProgram(checked, opt.source, opt.line_to_node, opt.nodes, opt_targets)
    return program, opt_nodes


def _compare(node: Apply, var: Variable, expected: Any, got: Any) -> None:
    e, g = np.asarray(expected), np.asarray(got)
    if e.shape != g.shape or e.dtype != g.dtype:
        raise DebugModeError(
            f"DEBUG_MODE: after rewriting, {node.op} gives shape {g.shape} {g.dtype}, the "
            f"original graph {e.shape} {e.dtype}{where(node.trace)}"
        )
    if e.dtype.kind in "fc":
        tol = 1e-4 if e.dtype == np.float32 else 1e-7
        # where the original overflowed (inf/nan) and a stability rewrite gives a finite value,
        # the rewrite did its job: only values the original computes finitely are compared
        finite = np.isfinite(e)
        ok = np.allclose(g[finite], e[finite], rtol=tol, atol=tol)
        both = ~finite & ~np.isfinite(g)  # non-finite in both: they must be the same value
        ok = ok and np.array_equal(g[both], e[both], equal_nan=True)
    else:
        ok = np.array_equal(g, e)
    if not ok:
        diff = np.max(np.abs(g.astype(np.float64) - e.astype(np.float64))) if e.size else 0.0
        raise DebugModeError(
            f"DEBUG_MODE: the optimised graph disagrees with the original at {node.op} "
            f"(output {var.describe()}, max abs difference {diff:.3g}){where(node.trace)}"
        )
