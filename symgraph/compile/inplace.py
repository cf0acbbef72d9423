"""Buffer reuse: a node may write its result into an input that dies there.

- Elementwise nodes (plain ufuncs and fused programs) take ``out=``: when an input is an
  intermediate whose last use is this node, has the output's dtype, and is not a view of (or viewed
  by) anything else, the result overwrites it. Length-1 axes broadcast at run time, so the shapes
  are compared at run time: ``v = f(a, b, out=a) if a.shape == b.shape else f(a, b)``.
- Ops with ``destroyable_input`` (``inc_subtensor``, the fused softmax + crossentropy and its
  gradient) skip their defensive copy of that input, or compute in place in it; a multi-output op
  says with ``destroyed_into_output`` which output the input becomes.
- An update ``p <- f(p, ...)`` of a shared variable writes into p's own array when nothing reads
  p after that node (the SGD step ``W - lr * gW`` then allocates nothing).

On a device only the ops with ``destroyable_input`` are planned (see ``plan_inplace``).

State handed to the loop of a scan (its step inputs) is never overwritten: step inputs are graph
inputs of the inner function, and only intermediates and updated shared values are candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Apply, SharedVariable, Variable
from ..ops.blas import BatchedMatMul, Dot
from ..ops.elemwise import Elemwise
from ..ops.nnet import LogSoftmax, Softmax
from ..ops.reduce import ArgReduce, Reduce
from ..ops.shape import Alloc, Join, MakeVector, Shape
from ..ops.stable import (
    CrossentropySoftmax1Hot,
    CrossentropySoftmax1HotDx,
    SoftmaxAndCrossentropy1Hot,
)
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
    SoftmaxAndCrossentropy1Hot,
    MakeVector,
    Shape,
)


def returns_fresh(node: Apply) -> bool:
    return isinstance(node.op, FRESH) or getattr(node.op, "fresh_outputs", False)


def _takes_out(node: Apply, impl: Any) -> bool:
    return isinstance(node.op, Elemwise) and (
        isinstance(impl, np.ufunc) or getattr(impl, "accepts_out", False)
    )


def plan_inplace(
    nodes: Sequence[Apply],
    outputs: Sequence[Variable],
    impls: Sequence[Any],
    backend: Any,
    updates: Sequence[tuple[Variable, SharedVariable]] = (),
) -> dict[int, int]:
    """node index -> position of the input its result may overwrite.

    On a device only ops with ``destroyable_input`` are planned: skipping their copy saves a
    kernel and a pass over memory, while an elementwise kernel writing into a dying input
    saves nothing there (CuPy's memory pool recycles the block)."""
    on_device = backend.name != "cpu"
    keep = {id(v) for v in outputs}
    update_of = {id(expr): target for expr, target in updates}
    output_ids = [id(v) for v in outputs]
    last_use = _last_use_through_views(nodes, keep)
    plan = {}
    for k, node in enumerate(nodes):
        # a multi-output op names the output its destroyed input becomes
        out = node.outputs[getattr(node.op, "destroyed_into_output", 0)]
        if out.ndim == 0 or (len(node.outputs) != 1 and not hasattr(node.op, "destroyable_input")):
            continue
        if not on_device and _takes_out(node, impls[k]):
            # a shared value being updated first: its pages are resident, while writing into a
            # fresh temporary would fault its pages in
            positions = sorted(
                range(len(node.inputs)),
                key=lambda p: not isinstance(node.inputs[p], SharedVariable),
            )
        elif hasattr(node.op, "destroyable_input"):
            positions = [node.op.destroyable_input]
        else:
            continue
        for pos in positions:
            v = node.inputs[pos]
            if v.dtype != out.dtype or v.ndim != out.ndim or last_use.get(id(v)) != k:
                continue  # (a view of v read later counts as a later use of v)
            if v.owner is not None:
                ok = id(v) not in keep and returns_fresh(v.owner)
            else:
                # a shared variable updated by this very node, read nowhere else afterwards
                ok = (
                    isinstance(v, SharedVariable)
                    and update_of.get(id(out)) is v
                    and output_ids.count(id(out)) == 1
                    and id(v) not in keep
                )
            if ok:
                plan[k] = pos
                break
    return plan


def plan_kept_buffers(
    nodes: Sequence[Apply],
    outputs: Sequence[Variable],
    inplace: dict[int, int],
    backend: Any,
) -> set[int]:
    """Indices of the nodes whose result may live in a buffer kept across calls: matrix
    products (``Dot`` with a matrix on the right) whose memory never leaves the call.

    The memory of a result is shared by every view of it (ops not known to return fresh
    arrays) and by every in-place result written into it; if any of those is an output of the
    function (an update included) or is tied to memory the function does not own (an input, a
    shared value), the buffer would be visible after the call, and the next call would change
    it. Otherwise the whole class is dead when the call returns.
    """
    if backend.name != "cpu":
        return set()
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.get(i, i) != i:
            parent[i] = parent.get(parent[i], parent[i])
            i = parent[i]
        return i

    def union(a: Variable, b: Variable) -> None:
        ra, rb = find(id(a)), find(id(b))
        if ra != rb:
            parent[ra] = rb

    for k, node in enumerate(nodes):
        if not returns_fresh(node):
            for o in node.outputs:
                for i in node.inputs:
                    union(o, i)
        if k in inplace:
            out = node.outputs[getattr(node.op, "destroyed_into_output", 0)]
            union(out, node.inputs[inplace[k]])
    escaping = {find(id(v)) for v in outputs}
    for node in nodes:
        escaping.update(find(id(v)) for v in node.inputs if v.owner is None)
    return {
        k
        for k, node in enumerate(nodes)
        if isinstance(node.op, Dot)
        and node.inputs[1].ndim == 2
        and node.inputs[0].ndim >= 2
        and find(id(node.outputs[0])) not in escaping
    }


_FOREVER = 1 << 60


def _last_use_through_views(nodes: Sequence[Apply], keep: set[int]) -> dict[int, int]:
    """Index of the last node that reads each variable, directly or through views of it.

    Any op not known to return fresh arrays may return a view of (or its very) input, so the
    input stays in use as long as that output does. Function outputs live forever.
    """
    last: dict[int, int] = {}
    for k, node in enumerate(nodes):
        for v in node.inputs:
            last[id(v)] = k
    for i in keep:
        last[i] = _FOREVER
    for node in reversed(nodes):
        if returns_fresh(node):
            continue
        alive = max((last.get(id(o), -1) for o in node.outputs), default=-1)
        for v in node.inputs:
            if alive > last.get(id(v), -1):
                last[id(v)] = alive
    return last


def inplace_line(
    outs: str,
    fname: str,
    args: list[str],
    pos: int,
    node: Apply,
    shapes_allow: bool | None = None,
) -> str:
    """The generated line for an in-place call, with its run-time shape guard.

    ``shapes_allow``: None when the shapes are only known at run time (the guard compares
    them); True or False when the static shapes already decide (only the type is checked, or
    the call is not made in place)."""
    target = args[pos]
    if not isinstance(node.op, Elemwise):
        return f"{outs} = {fname}_inplace({', '.join(args)})"
    call = f"{fname}({', '.join(args)})"
    if shapes_allow is False:
        return f"{outs} = {call}"
    ndim = node.outputs[0].ndim
    checks = []
    for a, v in zip(args, node.inputs):
        if shapes_allow or v.ndim == 0 or a == target:
            continue
        # The result has the target's shape when every other operand broadcasts against it:
        # an axis the operand is known to have length 1 on does (a bias row added to a batch);
        # every other axis must match at run time. Fewer axes align with the trailing ones.
        lead = ndim - v.ndim
        axes = [i for i, n in enumerate(v.type.shape) if n != 1]
        if v.ndim == ndim and len(axes) == ndim:
            checks.append(f"{target}.shape == {a}.shape")
        else:
            checks += [f"{target}.shape[{lead + i}] == {a}.shape[{i}]" for i in axes]
    guard = " and ".join([f"type({target}) is __ndarray", *checks])
    return f"{outs} = {fname}({', '.join(args)}, out={target}) if {guard} else {call}"
