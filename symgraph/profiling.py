"""``function(..., profile=True)``: time per node and per op type, and compile time by phase.

f = sg.function([x], y, profile=True)
for _ in range(100): f(data)
print(f.profile.summary())
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

from .graph import Apply


class Profiler:
    def __init__(self, name: str, nodes: Sequence[Apply]):
        self.name = name
        self.nodes = list(nodes)
        self.times = [0.0] * len(self.nodes)
        self.calls = [0] * len(self.nodes)
        self.compile_times: dict[str, float] = {}
        self.inner: dict[int, list[Profiler]] = {}  # node index -> profiles of its inner steps

    def node_timer(self, k: int) -> Callable[[float], None]:
        times, calls = self.times, self.calls

        def record(dt: float) -> None:
            times[k] += dt
            calls[k] += 1

        return record

    def summary(self, top: int = 15) -> str:
        total = sum(self.times) or 1e-12
        lines = [f"Profile of {self.name}"]
        if self.compile_times:
            parts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.compile_times.items())
            lines.append(f"  compile: {parts}")
        lines.append(f"  time in ops: {total * 1e3:.3f} ms over {max(self.calls, default=0)} calls")
        by_type: dict[str, list[float]] = {}
        for node, t, c in zip(self.nodes, self.times, self.calls):
            key = type(node.op).__name__ if not hasattr(node.op, "scalar_op") else str(node.op)
            entry = by_type.setdefault(key, [0.0, 0, 0])
            entry[0] += t
            entry[1] += c
            entry[2] += 1
        lines.append("  by op type:   share    time(ms)   calls  nodes  op")
        for key, (t, c, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:top]:
            lines.append(
                f"               {100 * t / total:5.1f}%  {t * 1e3:10.3f}  {c:6d}  {n:5d}  {key}"
            )
        lines.append("  by node:      share    time(ms)   calls  node (created at)")
        order = sorted(range(len(self.nodes)), key=lambda k: -self.times[k])[:top]
        for k in order:
            node = self.nodes[k]
            tr = node.trace
            where = f"{os.path.basename(tr.filename)}:{tr.lineno}" if tr else "?"
            lines.append(
                f"               {100 * self.times[k] / total:5.1f}%  {self.times[k] * 1e3:10.3f}"
                f"  {self.calls[k]:6d}  {node.op} ({where})"
            )
        for k, inners in self.inner.items():
            for inner in inners:
                if not any(inner.calls):
                    continue
                share = 100 * self.times[k] / total
                lines.append(
                    f"  inner step of node {k}, {self.nodes[k].op} ({share:.1f}% of the time; "
                    f"{max(inner.calls)} steps):"
                )
                lines.extend("    " + line for line in inner.summary(top).splitlines()[2:])
        return "\n".join(lines)

    def reset(self) -> None:
        """Forget the times and calls so far (after warm-up calls, whose first compiles the
        steps of loops), inner steps' included; compile times stay."""
        self.times[:] = [0.0] * len(self.nodes)  # in place: the compiled timers hold them
        self.calls[:] = [0] * len(self.nodes)
        for inners in self.inner.values():
            for inner in inners:
                inner.reset()

    def attach_inner(self, k: int, name: str, nodes: Sequence[Apply]) -> Profiler:
        """A profiler for an inner program (a scan's step) run by node ``k``."""
        inner = Profiler(name, nodes)
        self.inner.setdefault(k, []).append(inner)
        return inner


_parent: tuple[Profiler, int] | None = None


@contextlib.contextmanager
def building_node(profiler: Profiler | None, k: int) -> Iterator[None]:
    """While node ``k`` of a profiled function builds its implementation, ops that compile
    inner programs (scan) can find the profiler to attach theirs to."""
    global _parent
    old, _parent = _parent, (profiler, k) if profiler is not None else None
    try:
        yield
    finally:
        _parent = old


def parent() -> tuple[Profiler, int] | None:
    return _parent

    def __str__(self) -> str:
        return self.summary()
