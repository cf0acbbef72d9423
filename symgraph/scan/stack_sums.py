"""Stacking a loop's sum of products with invariant left operands (for device backends).

A backward step of a gated cell sums one product per gate: the gradient of the previous state
is ``A_1 . d_1 + A_2 . d_2 + ... (+ other terms)``, where the ``A_k`` are the transposed gate
weights (loop invariants) and the ``d_k`` the gates' gradients at this step. That sum is one
product of the weights side by side and the gradients stacked:
``[A_1 A_2 ...] . [d_1; d_2; ...]``. The weights are put side by side once per call, before the
loop; each step then runs one wider product instead of one product per gate (an LSTM's
backward step: 1 call instead of 4, a GRU's 1 instead of 2). On a GPU every op left in a loop is a
launch per time step; on the CPU this was not measured to pay, so the pipeline applies it for
devices only, after gradients are built (``optimize(..., device=)``).

Two or more products are stacked. The operands are joined by ``BroadcastJoin``, which
broadcasts the other axis first, so the stacked product equals the sum also where the original
sum broadcast a one-row product. The join is a copy per step, unless the loop stores the
operands anyway (a backward step's gate gradients, which the weights' gradients read): it then
stores them in one buffer whose row is the joined operand (``plan_joints`` in ``loop.py``), the
kernels write its blocks and the join reads the row. Where it cannot, two products become a
product and a copy: as many calls as before. The stacked product is added onto the sum's other
terms by ``gemm`` (cuBLAS with beta = 1, into their dying sum), so no kernel runs only to add
them up, unless the loop stores the sum at every step (a kernel writes it into the loop's buffer
there, where gemm's result would be copied).
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..graph import Apply, Op, TensorType, Variable, clone_replace, toposort
from ..ops.basic import as_tensor_variable, constant
from ..ops.blas import Dot, dot
from ..ops.elemwise import Elemwise
from ..ops.gemm import gemm
from .op import Scan
from .parts import ScanParts, fresh

MIN_PRODUCTS = 2


class BroadcastJoin(Op):
    """Concatenate matrices along ``axis`` after broadcasting the other axis to its longest
    length (each is that length or 1); vectors are simply concatenated. Made by the rewrite
    after gradients: not differentiable."""

    __props__ = ("axis",)
    differentiable = False

    def __init__(self, axis: int):
        self.axis = axis

    @property
    def joins_rows(self) -> bool:
        """Whether it concatenates along the first axis: its inputs, when of one shape past
        that axis, can be written straight into the blocks of its result (see the linker)."""
        return self.axis == 0

    def make_node(self, *tensors: Any) -> Apply:
        ts = [as_tensor_variable(t) for t in tensors]
        ndim = ts[0].ndim
        if ndim not in (1, 2) or any(t.ndim != ndim for t in ts) or self.axis >= ndim:
            raise TypeError("BroadcastJoin joins vectors or matrices")
        if len({t.dtype for t in ts}) != 1:
            raise TypeError("BroadcastJoin joins tensors of one dtype")
        along = [t.type.shape[self.axis] for t in ts]
        shape: list[int | None] = [None] * ndim
        shape[self.axis] = None if None in along else sum(along)  # type: ignore[arg-type]
        if ndim == 2:
            across = {t.type.shape[1 - self.axis] for t in ts} - {1}
            shape[1 - self.axis] = across.pop() if len(across) == 1 else None
        return Apply(self, ts, [TensorType(ts[0].dtype, tuple(shape))])

    def make_impl(self, node: Apply, backend: Any):
        xp, axis = backend.xp, self.axis
        if node.outputs[0].ndim == 1:
            return lambda *ts: xp.concatenate(ts)
        other = 1 - axis

        def broadcast_join(*ts: Any) -> Any:
            n = max(t.shape[other] for t in ts)
            if any(t.shape[other] not in (1, n) for t in ts):
                raise ShapeError(
                    f"stacked products: operands of lengths {[t.shape[other] for t in ts]} "
                    f"on axis {other} do not broadcast"
                )
            parts = [
                t
                if t.shape[other] == n
                else xp.broadcast_to(t, (n, t.shape[1]) if other == 0 else (t.shape[0], n))
                for t in ts
            ]
            return xp.concatenate(parts, axis=axis)

        return broadcast_join


def _is_add(node: Apply | None) -> bool:
    return (
        node is not None
        and isinstance(node.op, Elemwise)
        and getattr(node.op.scalar_op, "name", "") == "add"
        and len(node.inputs) == 2
    )


def _sum_terms(root: Apply, clients: dict[int, int]) -> list[Variable]:
    """The terms of the chain of additions ending at ``root`` (an addition read only by the
    next one belongs to the chain)."""
    terms, todo = [], list(root.inputs)
    while todo:
        v = todo.pop(0)
        if v.owner is not None and _is_add(v.owner) and clients.get(id(v)) == 1:
            todo[:0] = v.owner.inputs
        else:
            terms.append(v)
    return terms


def _accumulates(
    rest: Variable,
    others: list[Variable],
    stacked: Variable,
    out: Variable,
    clients: dict[int, int],
    stored: set[int],
) -> bool:
    """Whether the stacked product should be added onto ``rest`` (the sum's other terms) by
    ``gemm``: matrices (or vectors) of one dtype; ``rest`` a value that dies there (so ``gemm``
    writes into it, no copy, where the linker finds it a fresh array: a kernel's result, not a
    view) and is not known to broadcast up to the sum's shape; and a sum the loop does not
    store per step (a store would copy it, where a kernel would have written it in place)."""
    return (
        out.ndim == rest.ndim == stacked.ndim  # matrices, or vectors (one sentence: gemv)
        and rest.dtype == out.dtype == stacked.dtype
        and rest.owner is not None
        and (len(others) > 1 or clients.get(id(rest)) == 1)
        and not any(r == 1 and o != 1 for r, o in zip(rest.type.shape, out.type.shape))
        and id(out) not in stored
    )


def stack_summed_products(node: Apply) -> list[Variable] | None:
    """The replacements for ``node``'s outputs, or None when no sum has enough products."""
    if not isinstance(node.op, Scan):
        return None
    op: Scan = node.op
    invariant = {id(i) for i in op.inner_nonseqs}
    nodes = toposort(op.inner_outputs)
    clients: dict[int, int] = {}
    for n in nodes:
        for v in n.inputs:
            clients[id(v)] = clients.get(id(v), 0) + 1
    for v in op.inner_outputs:
        clients[id(v)] = clients.get(id(v), 0) + 2  # a stored value is needed on its own
    in_chain = {  # additions read only by the next addition of their chain
        id(v.owner)
        for n in nodes
        if _is_add(n)
        for v in n.inputs
        if _is_add(v.owner) and clients.get(id(v)) == 1
    }
    sums = []
    for n in nodes:
        if not _is_add(n) or id(n) in in_chain:
            continue
        terms = _sum_terms(n, clients)
        products = [
            t
            for t in terms
            if t.owner is not None
            and isinstance(t.owner.op, Dot)
            and id(t.owner.inputs[0]) in invariant
            and t.owner.inputs[0].ndim == 2
            and clients.get(id(t)) == 1
        ]
        dtypes = {t.dtype for t in terms}
        right_ndims = {p.owner.inputs[1].ndim for p in products}
        if (
            len(products) >= MIN_PRODUCTS
            and dtypes == {n.outputs[0].dtype}
            and len(right_ndims) == 1  # all vectors or all matrices
        ):
            sums.append((n, terms, products))
    if not sums:
        return None
    parts = ScanParts.of(node)
    outer_of = {id(i): o for o, i in parts.nonseqs}
    stored = {  # values the loop stores at every step
        id(o.inner) for o in parts.outs if o.spec.kind == "seq" or o.spec.store == "all"
    }
    replace: dict[Variable, Variable] = {}
    for root, terms, products in sums:
        weights = [p.owner.inputs[0] for p in products]
        side_by_side = BroadcastJoin(1)(*[outer_of[id(w)] for w in weights])  # once per call
        ph = fresh(side_by_side, "hoisted(side-by-side weights)")
        parts.nonseqs.append((side_by_side, ph))
        stacked = BroadcastJoin(0)(*[p.owner.inputs[1] for p in products])
        others = [t for t in terms if not any(t is p for p in products)]
        rest = others[0] if others else None
        for t in others[1:]:
            rest = rest + t
        out = root.outputs[0]
        if rest is not None and _accumulates(rest, others, stacked, out, clients, stored):
            # the product added onto the other terms by cuBLAS (beta = 1), in place: the
            # kernel that would only add them up is not launched
            total = gemm(rest, constant(1.0, dtype=out.dtype), ph, stacked)
        else:
            total = dot(ph, stacked) if rest is None else dot(ph, stacked) + rest
        replace[out] = total
    inners = clone_replace([o.inner for o in parts.outs], replace)
    for o, v in zip(parts.outs, inners):
        o.inner = v
    return list(parts.build().outputs)
