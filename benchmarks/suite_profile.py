"""Where symgraph's training step spends its time: ``function(..., profile=True)``, whose
summary includes every scan's inner step."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import suite_graph
from suite_configs import Config


def duplicate_scans(fn: Any) -> list[str]:
    """Scan nodes of a compiled function that run the same loop on the same inputs twice."""
    from symgraph.scan.op import Scan

    nodes = [n for n in fn.program.nodes if isinstance(n.op, Scan)]
    keys = Counter((n.op.name, tuple(id(v) for v in n.inputs)) for n in nodes)
    return [f"{name} x{count}" for (name, _), count in keys.items() if count > 1]


def profile_symgraph(cfg: Config, params: dict, data: list, n: int = 20, top: int = 12) -> str:
    """Text report: compile phases, the outer profile, each scan's inner step, duplicates."""
    th, T = suite_graph.symgraph_modules()
    it = itertools.cycle(data)
    model = suite_graph.build(th, T, "symgraph", cfg, params, {"profile": True})
    for _ in range(n):
        model.step(*next(it))
    fn = model.fn
    from symgraph.scan.op import Scan

    n_scans = sum(isinstance(nd.op, Scan) for nd in fn.program.nodes)
    lines = [
        f"symgraph profile of one {cfg.name} training step ({n} calls; node timers add overhead)",
        f"  nodes in the step: {len(fn.program.nodes)}, of which scans: {n_scans}",
    ]
    dups = duplicate_scans(fn)
    if dups:
        lines.append("  the same loop runs more than once on the same inputs: " + ", ".join(dups))
    lines.append(fn.profile.summary(top))  # includes each scan's inner step
    return "\n".join(lines)
