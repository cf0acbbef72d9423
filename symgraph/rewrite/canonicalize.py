"""Algebraic simplifications and constant folding (local rewrites)."""

from __future__ import annotations

import numpy as np

from ..backends.numpy import BACKEND as NUMPY
from ..graph import Apply, Constant, Variable
from ..ops.basic import NotConstantError, constant, get_scalar_constant_value
from ..ops.elemwise import Elemwise, elemwise
from ..ops.reduce import BroadcastLike, SumToShape
from ..ops.shape import Alloc, DimShuffle, MakeVector, Shape
from ..ops.subtensor import Subtensor
from .gemm import gemm_products
from .sparse_update import SPARSE_UPDATES

# Ops whose constant result may be large (an Alloc of zeros of shape (H, V)) are not folded:
# a folded constant would be stored in the function and copied on every use.
_NO_FOLD = (Alloc, BroadcastLike)
_FOLD_MAX_SIZE = 4096


def constant_folding(node: Apply) -> list[Variable] | None:
    if isinstance(node.op, _NO_FOLD) or getattr(node.op, "no_fold", False):
        return None
    if not node.inputs or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    if any(i.data.size > _FOLD_MAX_SIZE for i in node.inputs):
        return None
    impl = node.op.make_impl(node, NUMPY)
    with np.errstate(all="ignore"):
        result = impl(*[i.data for i in node.inputs])
    results = result if len(node.outputs) > 1 else (result,)
    out = []
    for o, r in zip(node.outputs, results):
        arr = np.asarray(r)
        if arr.dtype.name != o.dtype or arr.ndim != o.ndim:
            return None
        out.append(constant(arr.copy(), dtype=o.dtype))
    return out


def _const(v: Variable):
    try:
        return get_scalar_constant_value(v)
    except NotConstantError:
        return None


def _same_type_as(out: Variable, candidate: Variable) -> bool:
    """``candidate`` can stand for ``out``: same dtype and static shape (nothing broadcast up)."""
    return candidate.dtype == out.dtype and candidate.type.shape == out.type.shape


def _scalar_const_operand(v: Variable, out: Variable) -> bool:
    return isinstance(v, Constant) and v.ndim <= out.ndim and v.data.size == 1


def algebra(node: Apply) -> list[Variable] | None:
    """x*1, 1*x, x+0, 0+x, x-0, x/1, x**1, x**2 -> sqr(x), --x, x-x."""
    op = node.op
    if not isinstance(op, Elemwise):
        return None
    name = op.scalar_op.name
    out = node.outputs[0]
    ins = node.inputs
    if name in ("mul", "add"):
        unit = 1 if name == "mul" else 0
        for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _scalar_const_operand(b, out) and b.data.reshape(()).item() == unit:
                if _same_type_as(out, a):
                    return [a]
    if name in ("sub", "true_div", "pow"):
        a, b = ins
        unit = 0 if name == "sub" else 1
        if _scalar_const_operand(b, out) and b.data.reshape(()).item() == unit:
            if _same_type_as(out, a):
                return [a]
        if name == "pow" and _scalar_const_operand(b, out) and b.data.reshape(()).item() == 2:
            r = elemwise("sqr")(a)
            if r.type.dtype == out.dtype:
                return [r]
        if name == "sub" and a is b and a.dtype == out.dtype:
            from ..ops.shape import zeros_like

            return [zeros_like(a)]
    if name == "neg":
        (x,) = ins
        if x.owner is not None and isinstance(x.owner.op, Elemwise):
            if x.owner.op.scalar_op.name == "neg":
                return [x.owner.inputs[0]]
    if name.startswith("cast_") and ins[0].dtype == out.dtype:
        return [ins[0]]
    return None


def _dim_of(d: Variable, x: Variable, axis: int) -> bool:
    """The scalar ``d`` is axis ``axis`` of ``x``: ``shape(x)[axis]`` (also as
    ``shape(x)[k:][axis - k]``, as vectorized loop bodies write it), or equal known lengths."""
    known = x.type.shape[axis]
    if isinstance(d, Constant):
        return known is not None and int(d.data) == known
    sub = d.owner
    if sub is None or not isinstance(sub.op, Subtensor) or len(sub.op.spec) != 1:
        return False
    kind, i = sub.op.spec[0]
    if kind != "int" or not isinstance(i, int):
        return False
    src = sub.inputs[0].owner
    while src is not None and isinstance(src.op, Subtensor) and len(src.op.spec) == 1:
        part = src.op.spec[0]  # a constant forward slice [k:] of the shape vector
        start = part[1] if part[0] == "slice" else None
        if not isinstance(start, int) or start < 0 or part[2:] != (None, None):
            return False
        if i < 0:
            return False
        i += start
        src = src.inputs[0].owner
    if src is None or not isinstance(src.op, Shape) or src.inputs[0] is not x:
        return False
    return i == axis or i == axis - x.ndim


def alloc_operand_to_scalar(node: Apply) -> list[Variable] | None:
    """``ones_like(z) - z`` -> ``1 - z``: a filled array that an elementwise op combines with an
    operand of the same shape is its fill value broadcast, with no array made (in a loop body,
    one allocation and fill per step). The other operand must give the result its shape: each
    axis of the Alloc is that operand's (trailing-aligned) axis, symbolically or by known length.
    """
    if not isinstance(node.op, Elemwise) or len(node.inputs) < 2:
        return None
    ins = list(node.inputs)
    changed = False
    for i, a in enumerate(ins):
        if a.owner is None or not isinstance(a.owner.op, Alloc):
            continue
        value, *dims = a.owner.inputs
        if value.ndim != 0 or value.dtype != a.dtype:
            continue
        for j, x in enumerate(ins):
            lead = x.ndim - len(dims)
            if j == i or lead < 0 or x is a:
                continue
            if all(_dim_of(d, x, lead + k) for k, d in enumerate(dims)):
                ins[i] = DimShuffle(0, ("x",) * a.ndim)(value) if a.ndim else value
                changed = True
                break
    if not changed:
        return None
    new = node.op(*ins)
    old = node.outputs[0]
    if new.type.shape != old.type.shape or new.dtype != old.dtype:
        return None  # the Alloc held shape knowledge the other operands lack
    return [new]


def dimshuffle_merge(node: Apply) -> list[Variable] | None:
    """DimShuffle of DimShuffle -> one DimShuffle; an identity DimShuffle -> its input."""
    op = node.op
    if not isinstance(op, DimShuffle):
        return None
    (x,) = node.inputs
    if op.new_order == tuple(range(op.input_ndim)):
        return [x]
    if x.owner is not None and isinstance(x.owner.op, DimShuffle):
        inner = x.owner.op
        order = tuple("x" if a == "x" else inner.new_order[a] for a in op.new_order)
        base = x.owner.inputs[0]
        # dropped axes of the inner op must stay dropped; axes dropped by the outer op were
        # length 1, so dropping them from the base is equally valid.
        if order == tuple(range(base.ndim)):
            return [base]
        try:
            return [DimShuffle(base.ndim, order)(base)]
        except ValueError:
            return None
    return None


def shape_of_known(node: Apply) -> list[Variable] | None:
    """shape(x) when x's static shape is fully known; shape(x)[i] when axis i is known;
    make_vector(...)[i] -> its i-th scalar."""
    op = node.op
    if isinstance(op, Shape):
        shp = node.inputs[0].type.shape
        if None not in shp:
            return [constant(np.array(shp, dtype=np.int64))]
        return None
    if isinstance(op, Subtensor) and len(op.spec) == 1 and op.spec[0][0] == "int":
        i = op.spec[0][1]
        if not isinstance(i, int):
            return None
        src = node.inputs[0]
        if src.owner is not None and isinstance(src.owner.op, Shape):
            s = src.owner.inputs[0].type.shape
            if -len(s) <= i < len(s) and s[i] is not None:
                return [constant(np.int64(s[i]), dtype="int64")]
        if src.owner is not None and isinstance(src.owner.op, MakeVector):
            vals = src.owner.inputs
            if -len(vals) <= i < len(vals) and vals[i].dtype == node.outputs[0].dtype:
                return [vals[i]]
    return None


def useless_slice(node: Apply) -> list[Variable] | None:
    """``x[0:]``, ``x[:, :]`` -> ``x``: every entry a whole forward slice (a loop's gradient
    reads ``outputs[0:][::-1]``); each such view costs a call, on a device an array object."""
    if not isinstance(node.op, Subtensor) or len(node.inputs) != 1:
        return None
    whole = all(
        part[0] == "slice" and part[1] in (None, 0) and part[2] is None and part[3] in (None, 1)
        for part in node.op.spec
    )
    x = node.inputs[0]
    return [x] if whole and node.outputs[0].type == x.type else None


def useless_broadcast(node: Apply) -> list[Variable] | None:
    """SumToShape / BroadcastLike between variables of the same, fully known static shape."""
    if isinstance(node.op, SumToShape | BroadcastLike):
        g, x = node.inputs
        if g.type.shape == x.type.shape and None not in g.type.shape:
            return [g]
        if g.owner is not None and isinstance(g.owner.op, Elemwise):
            # g computed elementwise from x itself (and scalars) has exactly x's shape
            if any(i is x for i in g.owner.inputs) and all(
                i is x or (i.ndim == 0) for i in g.owner.inputs
            ):
                if g.ndim == x.ndim:
                    return [g]
    return None


def transpose_dot_products(outputs: list[Variable]) -> list[Variable]:
    """A graph pass: ``dot(a, b).T`` -> ``dot(b.T, a.T)`` when nothing else reads ``dot(a, b)``.

    BLAS reads transposed operands for free, while a transposed result is a strided view that
    every later elementwise op (say the SGD update ``V - lr * dV``) walks slowly.
    """
    from ..graph import clone_replace, toposort
    from ..ops.blas import Dot, dot

    nodes = toposort(outputs)
    clients: dict[int, int] = {}
    for n in nodes:
        for v in n.inputs:
            clients[id(v)] = clients.get(id(v), 0) + 1
    for v in outputs:
        clients[id(v)] = clients.get(id(v), 0) + 1
    replace: dict[Variable, Variable] = {}
    for n in nodes:
        if not (isinstance(n.op, DimShuffle) and n.op.new_order == (1, 0)):
            continue
        d = n.inputs[0]
        if d.owner is None or not isinstance(d.owner.op, Dot) or clients.get(id(d)) != 1:
            continue
        a, b = d.owner.inputs
        if a.ndim != 2 or b.ndim != 2:
            continue
        new = dot(DimShuffle(2, (1, 0))(b), DimShuffle(2, (1, 0))(a))
        new.owner.trace = d.owner.trace
        replace[n.outputs[0]] = new
    return clone_replace(outputs, replace) if replace else outputs


def sum_of_batched_products(node: Apply) -> list[Variable] | None:
    """sum over t of X[t] @ Y[t] -> one matrix product over the flattened batch.

    Weight gradients of a batched recurrent step come out of the backward loop as one product
    per step, then a sum: ``sum(matmul(dZ, swap(H)), axis=0)``. Written as
    ``dot(dZ.transpose(1, 0, 2).reshape(M, -1), H'.reshape(-1, N))`` it is a single large BLAS
    call, and the [T, M, N] stack of per-step products is never stored.
    """
    from ..ops.blas import BatchedMatMul, dot
    from ..ops.reduce import Reduce
    from ..ops.shape import make_vector, reshape, shape

    op = node.op
    if not (isinstance(op, Reduce) and op.kind == "sum" and op.axis == (0,) and not op.keepdims):
        return None
    prod = node.inputs[0]
    if prod.owner is None or not isinstance(prod.owner.op, BatchedMatMul) or prod.ndim != 3:
        return None
    x, y = prod.owner.inputs
    if x.dtype != node.outputs[0].dtype:
        return None
    xt = DimShuffle(3, (1, 0, 2))(x)  # [M, T, K]
    x2 = reshape(xt, make_vector(shape(x)[1], -1), ndim=2)  # [M, T*K]
    y2 = reshape(y, make_vector(-1, shape(y)[2]), ndim=2)  # [T*K, N]
    return [dot(x2, y2)]


CANONICALIZE = [
    constant_folding,
    algebra,
    alloc_operand_to_scalar,
    dimshuffle_merge,
    shape_of_known,
    useless_slice,
    useless_broadcast,
    sum_of_batched_products,
    *SPARSE_UPDATES,
    gemm_products,
]
