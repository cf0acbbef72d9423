"""Buffer reuse: an elementwise node may write its result into an input that dies there.

NumPy ufuncs take ``out=``; when an input is an intermediate whose last use is this node, has the
output's dtype, and is not a view of (or viewed by) anything else, the result can overwrite it and
no new array is allocated. The shape check stays at run time (length-1 axes broadcast at run time),
so the generated line is ``v = f(a, b, out=a) if a.shape == b.shape else f(a, b)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Apply, Variable
from ..ops.blas import BatchedMatMul, Dot
from ..ops.elemwise import Elemwise
from ..ops.nnet import LogSoftmax, Softmax
from ..ops.reduce import ArgReduce, Reduce
from ..ops.shape import Alloc, Join, MakeVector, Shape
from ..ops.stable import CrossentropySoftmax1Hot, CrossentropySoftmax1HotDx
from ..ops.subtensor import IncSubtensor

# Ops whose outputs are always fresh arrays, never views of their inputs.
FRESH = (
    Elemwise,
    Dot,
    BatchedMatMul,
    Reduce,
    ArgReduce,
    Softmax,
    LogSoftmax,
    Alloc,
    Join,
    IncSubtensor,
    CrossentropySoftmax1Hot,
    CrossentropySoftmax1HotDx,
    MakeVector,
    Shape,
)


def _returns_fresh(node: Apply) -> bool:
    return isinstance(node.op, FRESH)


def plan_inplace(
    nodes: Sequence[Apply], outputs: Sequence[Variable], impls: Sequence[Any], backend: Any
) -> dict[int, int]:
    """node index -> position of the input its result may overwrite."""
    if backend.name != "cpu":
        return {}
    keep = {id(v) for v in outputs}
    clients: dict[int, list[Apply]] = {}
    last_use: dict[int, int] = {}
    for k, node in enumerate(nodes):
        for v in node.inputs:
            clients.setdefault(id(v), []).append(node)
            last_use[id(v)] = k
    plan = {}
    for k, node in enumerate(nodes):
        if not isinstance(node.op, Elemwise) or not isinstance(impls[k], np.ufunc):
            continue
        out = node.outputs[0]
        if out.ndim == 0:
            continue
        for pos, v in enumerate(node.inputs):
            if (
                v.owner is not None
                and id(v) not in keep
                and last_use.get(id(v)) == k
                and v.dtype == out.dtype
                and v.ndim == out.ndim
                and _returns_fresh(v.owner)
                and all(_returns_fresh(c) for c in clients[id(v)])
            ):
                plan[k] = pos
                break
    return plan


def inplace_line(outs: str, fname: str, args: list[str], pos: int, node: Apply) -> str:
    """The generated line for an in-place call, with its run-time shape guard."""
    target = args[pos]
    others = [
        a for a, v in zip(args, node.inputs) if v.ndim == node.outputs[0].ndim and a != target
    ]
    call = f"{fname}({', '.join(args)})"
    if not others:
        guard = f"type({target}) is __ndarray"
    else:
        guard = f"type({target}) is __ndarray and " + " and ".join(
            f"{target}.shape == {o}.shape" for o in others
        )
    return f"{outs} = {fname}({', '.join(args)}, out={target}) if {guard} else {call}"
