"""Sparse gradients stay sparse: ``W - lr * inc_subtensor(zeros_like(W)[idx], v)``.

The gradient of an embedding lookup ``E[:, x]`` (or ``E[x]``) is a zero matrix the size of the
whole vocabulary with a few columns (rows) filled in. Written the natural way, the SGD update
then allocates that matrix, scatters into it, and makes a full pass over ``E`` to subtract it,
although only the looked-up columns change. These rewrites move the scale and the add into the
scatter:

- ``X + inc_subtensor(zeros[idx], v)``  ->  ``inc_subtensor(X[idx], v)``, and ``X - ...`` with
  ``-v``, when the zeros have exactly X's shape and dtype. X may itself be such a gradient: the
  gradient of ``W`` used as ``W[0]``, ``W[1]``, ... is then one zeros array incremented slice by
  slice, in place, instead of a sum of one zeros-sized array per slice. A scalar scale of the
  gradient (``X - lr * g``, ``X + -g``) moves into ``v``.

Only ``inc`` is moved, never ``set``: with repeated indices, ``X + set(zeros[idx], v)`` adds the
last value once while ``inc`` would add all of them. Outside ``idx`` the results are identical
(``X + 0`` is ``X``); inside, the sum is formed in a different order, which may differ in the
last bit. The update then writes into the parameter's own array (see ``compile/inplace.py``).
"""

from __future__ import annotations

from ..graph import Apply, Constant, Variable
from ..ops.elemwise import Elemwise, elemwise
from ..ops.shape import Alloc, DimShuffle, Shape
from ..ops.subtensor import IncSubtensor, Subtensor, constant_fill


def _zeros_inc(v: Variable) -> Apply | None:
    """The node of ``inc_subtensor(zeros[idx], ...)``, else None."""
    node = v.owner
    if node is None or not isinstance(node.op, IncSubtensor) or node.op.set_instead_of_inc:
        return None
    fill = constant_fill(node.inputs[0])
    return node if fill is not None and fill == 0 else None


def _scalar_like(c: Variable, out: Variable) -> Variable | None:
    """``c`` as a 0-d variable when it is a scalar broadcast to ``out`` (else None)."""
    if c.ndim > out.ndim or any(s != 1 for s in c.type.shape):
        return None
    while c.ndim and c.owner is not None and isinstance(c.owner.op, DimShuffle):
        c = c.owner.inputs[0]
    if c.ndim == 0:
        return c
    return DimShuffle(c.ndim, ())(c) if all(s == 1 for s in c.type.shape) else None


def scalar_times(v: Variable, match) -> tuple[Variable, object] | None:
    """``(c, match(w))`` when ``v`` is ``c * w`` or ``w * c`` with ``c`` a broadcast scalar (as
    a 0-d variable) and ``match(w)`` not None; else None."""
    node = v.owner
    if node is None or not isinstance(node.op, Elemwise) or node.op.scalar_op.name != "mul":
        return None
    if len(node.inputs) != 2:
        return None
    for a, b in (node.inputs, node.inputs[::-1]):
        found = match(b)
        c = _scalar_like(a, v) if found is not None else None
        if c is not None:
            return c, found
    return None


def _as_value_of(c: Variable, value: Variable) -> Variable:
    return DimShuffle(0, ("x",) * value.ndim)(c) if value.ndim else c


def _rebuild_inc(inc: Apply, base: Variable, value: Variable) -> Variable:
    parts = inc.inputs[2:]
    return IncSubtensor(inc.op.spec)(base, value, *parts)


def _scaled_sparse(g: Variable) -> Variable | None:
    """``g`` as one ``inc(zeros[idx], value)`` when it is one, or ``c * inc(...)`` (c a
    scalar), or ``-inc(...)``; the scale moves into the value. None otherwise.

    Used only where the result is added into a same-shaped array (below): on its own, moving
    the scale would build a second scattered array when the gradient has other readers (the
    RMSProp cache reads ``g``, the step reads ``lr * g``).
    """
    inc = _zeros_inc(g)
    if inc is not None:
        return g
    node = g.owner
    if node is None or not isinstance(node.op, Elemwise):
        return None
    if node.op.scalar_op.name == "neg":
        inc = _zeros_inc(node.inputs[0])
        if inc is None:
            return None
        value = elemwise("neg")(inc.inputs[1])
    else:
        scaled = scalar_times(g, _zeros_inc)
        if scaled is None:
            return None
        c, inc = scaled
        value = elemwise("mul")(_as_value_of(c, inc.inputs[1]), inc.inputs[1])
    zeros = inc.inputs[0]
    if value.dtype != g.dtype or zeros.dtype != g.dtype or zeros.ndim != g.ndim:
        return None
    return _rebuild_inc(inc, zeros, value)


def _same_shape(zeros: Variable, x: Variable) -> bool:
    """The Alloc ``zeros`` has exactly ``x``'s shape (symbolic ``shape(x)[i]`` or known)."""
    dims = zeros.owner.inputs[1:]
    if len(dims) != x.ndim:
        return False
    base = x
    while base.owner is not None and isinstance(base.owner.op, IncSubtensor):
        base = base.owner.inputs[0]  # an inc has the shape of what it increments
    if base.owner is not None and isinstance(base.owner.op, Alloc):
        other = base.owner.inputs[1:]
        if len(other) == len(dims) and all(a is b for a, b in zip(dims, other)):
            return True  # the gradient of W[0] plus the gradient of W[1]: same Alloc shape
    for i, d in enumerate(dims):
        known = x.type.shape[i]
        if isinstance(d, Constant):
            if known is None or int(d.data) != known:
                return False
            continue
        sub = d.owner
        if sub is None or not isinstance(sub.op, Subtensor) or sub.op.spec != (("int", i),):
            return False
        shp = sub.inputs[0].owner
        if shp is None or not isinstance(shp.op, Shape) or shp.inputs[0] is not x:
            return False
    return True


def add_sparse_gradient(node: Apply) -> list[Variable] | None:
    """``X + inc(zeros[idx], v)`` -> ``inc(X[idx], v)``; ``X - inc(...)`` -> ``inc(X[idx], -v)``."""
    op = node.op
    if not isinstance(op, Elemwise) or op.scalar_op.name not in ("add", "sub"):
        return None
    if len(node.inputs) != 2:
        return None
    out = node.outputs[0]
    a, b = node.inputs
    pairs = [(a, b), (b, a)] if op.scalar_op.name == "add" else [(a, b)]  # (X, inc)
    for x, g in pairs:
        g = _scaled_sparse(g)
        inc = None if g is None else _zeros_inc(g)
        if inc is None or x.dtype != out.dtype or x.type.shape != out.type.shape:
            continue
        if not _same_shape(inc.inputs[0], x):
            continue
        value = inc.inputs[1]
        if op.scalar_op.name == "sub":
            value = elemwise("neg")(value)
        return [_rebuild_inc(inc, x, value)]
    return None


SPARSE_UPDATES = [add_sparse_gradient]
