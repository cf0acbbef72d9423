"""Merge scans that compute the same loop over the same inputs.

Code written in the tutorial's style asks for each gradient separately (``T.grad(cost, U)``,
``T.grad(cost, V)``, ...); every call builds its own backward scan. Once CSE has made their outer
inputs the same variables, the loops are identical and one of them is enough. (Scan ops compare
by identity, so plain CSE cannot see this: two loops are merged when their inner graphs are equal
node for node.)
"""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Constant, Variable, clone_replace, toposort


def _scan_class():
    try:
        from ..scan.op import Scan
    except ImportError:  # pragma: no cover
        return None
    return Scan


def structural_key(op) -> tuple | None:
    """A hashable description of a Scan op: its settings and its inner graph, node for node."""
    cached = getattr(op, "_structural_key", False)
    if cached is not False:
        return cached
    Scan = _scan_class()
    ref: dict[int, tuple] = {id(v): ("in", k, v.type) for k, v in enumerate(op.inner_inputs)}
    entries = []
    key: tuple | None = None
    for i, node in enumerate(toposort(op.inner_outputs)):
        args = []
        for v in node.inputs:
            if id(v) in ref:
                args.append(ref[id(v)])
            elif isinstance(v, Constant):
                args.append(("const", v.signature()))
            else:
                break  # a free variable inside the loop: do not try to compare
        else:
            op_key = ("scan", structural_key(node.op)) if isinstance(node.op, Scan) else node.op
            entries.append((op_key, tuple(args)))
            for j, o in enumerate(node.outputs):
                ref[id(o)] = ("node", i, j)
            continue
        break
    else:
        outs = []
        for v in op.inner_outputs:
            if id(v) in ref:
                outs.append(ref[id(v)])
            elif isinstance(v, Constant):
                outs.append(("const", v.signature()))
            else:
                outs = None
                break
        if outs is not None:
            settings = tuple(
                getattr(op, a, None)
                for a in (
                    "n_seqs", "outs", "n_from_seqs", "exact_seqs", "truncate_gradient",
                    "bptt_truncate", "mode",
                )
            )  # fmt: skip
            key = (type(op), settings, tuple(entries), tuple(outs))
    try:
        hash(key)
    except TypeError:
        key = None
    op._structural_key = key
    return key


def _extends(longer: tuple, shorter: tuple) -> bool:
    """``longer`` is the loop ``shorter`` with outputs appended (stored per-step values that
    the loop computes anyway): same settings and inner graph, the same first outputs."""
    if longer[0] is not shorter[0] or longer[2] != shorter[2]:
        return False
    s_long, s_short = longer[1], shorter[1]
    outs_long, outs_short = s_long[1], s_short[1]
    if s_long[:1] + s_long[2:] != s_short[:1] + s_short[2:]:
        return False
    n = len(outs_short)
    return tuple(outs_long[:n]) == tuple(outs_short) and longer[3][:n] == shorter[3]


def merge_equal_scans(outputs: Sequence[Variable]) -> list[Variable]:
    """Loops equal node for node over the same inputs become one; so does a loop whose
    outputs another loop over the same inputs computes too (a forward loop that its gradient
    asked to store some per-step values: see ``symgraph/scan/grad.py``)."""
    Scan = _scan_class()
    outputs = list(outputs)
    if Scan is None:
        return outputs
    first: dict[tuple, list[Variable]] = {}
    by_inputs: dict[tuple, list[tuple]] = {}
    replace: dict[Variable, Variable] = {}
    for node in toposort(outputs):
        if not isinstance(node.op, Scan):
            continue
        skey = structural_key(node.op)
        if skey is None:
            continue
        inputs = tuple(id(i) for i in node.inputs)
        kept = first.setdefault((skey, inputs), node.outputs)
        if kept is not node.outputs:
            replace.update(zip(node.outputs, kept))
        else:
            by_inputs.setdefault(inputs, []).append((skey, node))
    for group in by_inputs.values():
        for skey, node in group:
            longest = max(
                (other for other in group if _extends(other[0], skey)),
                key=lambda other: len(other[1].outputs),
                default=None,
            )
            if longest is not None and longest[1] is not node:
                replace.update(zip(node.outputs, longest[1].outputs))
    return clone_replace(outputs, replace) if replace else outputs
