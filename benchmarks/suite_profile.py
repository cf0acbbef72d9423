"""Where symgraph's training step spends its time: ``function(..., profile=True)`` for the outer
graph, plus a profile of every scan's inner step (which ``profile=True`` does not yet reach: the
loop links its inner graph without a profiler). For the inner profiles this module wraps
``symgraph.compile.linker.link`` while the profiled function is built and run, so it relies on
symgraph internals; it is a measuring tool of the benchmark suite, not part of the library's API.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import suite_graph
from suite_configs import Config


@contextlib.contextmanager
def profiled_scan_steps() -> Iterator[list]:
    """While active, every scan step that gets linked (scans link their step lazily, on first
    use and per distinct step shape) is linked with a profiler; yields the profilers."""
    import symgraph.compile.linker as linker
    from symgraph.profiling import Profiler

    found: list = []
    original = linker.link

    def link(inputs, outputs, nodes, backend, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", "")
        if name.startswith("scan_") and kwargs.get("profiler") is None:
            kwargs["profiler"] = Profiler(f"inner step {name}", nodes)
            found.append(kwargs["profiler"])
        return original(inputs, outputs, nodes, backend, *args, **kwargs)

    linker.link = link
    try:
        yield found
    finally:
        linker.link = original


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
    with profiled_scan_steps() as scans:
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
    lines.append(fn.profile.summary(top))
    for prof in scans:
        if any(prof.calls):
            lines.append(prof.summary(top))
    return "\n".join(lines)
