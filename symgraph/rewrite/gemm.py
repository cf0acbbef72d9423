"""``z ± c * dot(x, y)`` -> ``gemm(z, ±c, x, y)``: the product is added into ``z`` by BLAS.

Matches the SGD step of a weight matrix (``W - lr * gW`` with ``gW = dot(a.T, b)``): ``z`` is a
shared variable, matrices of one float dtype, and ``z`` is not broadcast up by the sum, so that
``gemm`` can accumulate into the weight's own array when the sum is its update. Elsewhere (``z`` an
intermediate that lives on, a step input of a loop) the copy of ``z`` would cost more than the
pass it saves, and the add is better fused with the elementwise work around it.
"""

from __future__ import annotations

from ..graph import Apply, SharedVariable, Variable
from ..ops.basic import constant
from ..ops.blas import Dot
from ..ops.elemwise import Elemwise, elemwise
from ..ops.gemm import gemm
from .sparse_update import scalar_times


def _scaled_product(v: Variable, out: Variable) -> tuple[Variable, Variable, Variable] | None:
    """``(c, x, y)`` when ``v`` is ``dot(x, y)``, ``c * dot(x, y)`` or ``dot(x, y) * c``."""
    node = v.owner
    if node is None:
        return None
    if isinstance(node.op, Dot):
        x, y = node.inputs
        return constant(1.0, dtype=out.dtype), x, y
    scaled = scalar_times(v, _dot_node)
    if scaled is None:
        return None
    c, product = scaled
    x, y = product.inputs
    return c, x, y


def _dot_node(v: Variable) -> Apply | None:
    return v.owner if v.owner is not None and isinstance(v.owner.op, Dot) else None


def gemm_products(node: Apply) -> list[Variable] | None:
    """``z + c * dot(x, y)``, ``c * dot(x, y) + z`` and ``z - c * dot(x, y)`` -> ``gemm``."""
    op = node.op
    if not isinstance(op, Elemwise) or op.scalar_op.name not in ("add", "sub"):
        return None
    if len(node.inputs) != 2:
        return None
    out = node.outputs[0]
    if out.ndim != 2 or out.dtype not in ("float32", "float64"):
        return None
    a, b = node.inputs
    pairs = [(a, b), (b, a)] if op.scalar_op.name == "add" else [(a, b)]  # (z, product)
    for z, p in pairs:
        if (
            not isinstance(z, SharedVariable)  # an update: z dies here and takes the sum
            or z.ndim != 2
            or z.dtype != out.dtype
            or any(zs == 1 and os != 1 for zs, os in zip(z.type.shape, out.type.shape))
        ):
            continue  # z must not be known to broadcast up
        found = _scaled_product(p, out)
        if found is None:
            continue
        c, x, y = found
        if x.ndim != 2 or y.ndim != 2 or {c.dtype, x.dtype, y.dtype} != {out.dtype}:
            continue
        if op.scalar_op.name == "sub":
            c = elemwise("neg")(c)
        return [gemm(z, c, x, y)]
    return None
