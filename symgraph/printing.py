"""``debugprint``: a text picture of a graph (or of a compiled function's optimised graph)."""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO

from .graph import Constant, SharedVariable, Variable


def debugprint(
    obj: Any, file: TextIO | str | None = None, print_type: bool = False, ids: bool = True
) -> str | None:
    """Print the graph of a variable, a list of variables, or a compiled ``Function``.

    With ``file='str'`` the text is returned instead of printed.
    """
    from .compile.function import Function

    if isinstance(obj, Function):
        roots = obj.program.outputs
        inner_scans = []
    else:
        roots = [obj] if isinstance(obj, Variable) else list(obj)
        inner_scans = []
    out = io.StringIO()
    labels: dict[int, str] = {}
    done: set[int] = set()

    def label(v: Variable) -> str:
        if id(v) not in labels:
            labels[id(v)] = chr(ord("A") + len(labels) % 26) + (
                str(len(labels) // 26) if len(labels) >= 26 else ""
            )
        return labels[id(v)]

    def show(v: Variable, depth: int) -> None:
        pad = " |" * depth
        t = f" {v.type}" if print_type else ""
        if v.owner is None:
            kind = (
                "shared "
                if isinstance(v, SharedVariable)
                else ("" if not isinstance(v, Constant) else "")
            )
            out.write(f"{pad}{kind}{v}{t}\n")
            return
        node = v.owner
        tag = f" [id {label(v)}]" if ids else ""
        name = f" '{v.name}'" if v.name else ""
        index = f".{v.index}" if len(node.outputs) > 1 else ""
        if id(node) in done:
            out.write(f"{pad}{node.op}{index}{tag}{name}{t} ...\n")
            return
        done.add(id(node))
        out.write(f"{pad}{node.op}{index}{tag}{name}{t}\n")
        if hasattr(node.op, "inner_outputs"):
            inner_scans.append(node)
        for i in node.inputs:
            show(i, depth + 1)

    for r in roots:
        show(r, 0)
    seen_inner = set()
    while inner_scans:
        node = inner_scans.pop(0)
        if id(node) in seen_inner:
            continue
        seen_inner.add(id(node))
        out.write(f"\nInner graph of {node.op} [id {label(node.outputs[0])}]:\n")
        for r in node.op.inner_outputs:
            show(r, 1)
    text = out.getvalue()
    if file == "str":
        return text
    (file or sys.stdout).write(text)
    return None


pp = debugprint
