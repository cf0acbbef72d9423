"""Vectorizing a per-step graph over a leading batch axis (time, or the age of a gradient term).

``vectorize(outputs, batched, unbatched)`` rebuilds the graph of ``outputs`` where each variable in
``batched`` is replaced by a tensor with one extra leading axis (one row per step) and each one in
``unbatched`` by a value shared by all rows. Every op on the path needs a *batch rule* saying how
to apply it to the batched operands; nodes that touch no batched value are rebuilt unchanged. An
op without a rule (or a case a rule does not cover) makes the outputs that depend on it fail
(``None``), and callers then leave that work in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SymgraphError
from ..graph import Apply, Constant, Op, SharedVariable, TensorType, Variable, toposort
from ..ops import blas, nnet, reduce, shape, subtensor
from ..ops.elemwise import Elemwise

Pair = tuple[Variable, bool]  # (new variable, has the batch axis)


def _T():
    from .. import tensor

    return tensor


def vectorize(
    outputs: Sequence[Variable],
    batched: dict[Variable, Variable],
    unbatched: dict[Variable, Variable] | None = None,
) -> list[Pair | None]:
    """Batched versions of ``outputs`` (see the module docstring); ``None`` where impossible.

    Graph inputs other than constants that are in neither map make their dependents fail, so an
    inner placeholder never leaks into an outer graph.
    """
    unbatched = unbatched or {}
    memo: dict[int, Pair] = {id(k): (v, True) for k, v in batched.items()}
    memo.update({id(k): (v, False) for k, v in unbatched.items()})
    failed: set[int] = set()
    stops = list(batched) + list(unbatched)

    def lookup(v: Variable) -> Pair | None:
        if id(v) in memo:
            return memo[id(v)]
        if id(v) in failed:
            return None
        if v.owner is None and not isinstance(v, Constant | SharedVariable):
            return None
        return (v, False)

    for out in outputs:
        if lookup(out) is None and out.owner is None:
            failed.add(id(out))
    for node in toposort(outputs, stop=stops):
        ins = [lookup(v) for v in node.inputs]
        if any(p is None for p in ins):
            failed.update(id(o) for o in node.outputs)
            continue
        if not any(b for _, b in ins):
            new = [v for v, _ in ins]
            if all(a is b for a, b in zip(new, node.inputs)):
                outs = node.outputs
            else:
                outs = node.clone_with_new_inputs(new).outputs
            for o, n in zip(node.outputs, outs):
                memo[id(o)] = (n, False)
            continue
        result = _apply_rule(node, ins)
        if result is None:
            failed.update(id(o) for o in node.outputs)
            continue
        for o, r in zip(node.outputs, result):
            memo[id(o)] = r if isinstance(r, tuple) else (r, True)
    return [lookup(o) for o in outputs]


def _apply_rule(node: Apply, ins: list[Pair]) -> list | None:
    rule = None
    for cls in type(node.op).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            break
    if rule is None:
        return None
    try:
        return rule(node, ins)
    except (SymgraphError, ValueError, TypeError, NotImplementedError):
        return None


_RULES: dict[type, Callable[[Apply, list[Pair]], list | None]] = {}


def rule(*classes: type):
    def register(fn):
        for c in classes:
            _RULES[c] = fn
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------


def pad_after_batch(v: Variable, k: int) -> Variable:
    """Insert ``k`` length-1 axes right after the batch axis (aligns ranks for broadcasting)."""
    if k <= 0:
        return v
    return shape.DimShuffle(v.ndim, [0] + ["x"] * k + list(range(1, v.ndim)))(v)


def batch_size(ins: list[Pair]) -> Variable:
    v = next(v for v, b in ins if b)
    return shape.shape(v)[0]


def broadcast_batch(v: Variable, size: Variable) -> Variable:
    """An unbatched value repeated along a new leading batch axis."""
    sh = shape.shape(v)
    return shape.alloc(v, size, *[sh[i] for i in range(v.ndim)])


def all_batched(ins: list[Pair]) -> list[Variable]:
    size = batch_size(ins)
    return [v if b else broadcast_batch(v, size) for v, b in ins]


def move_axis_to_front(v: Variable, axis: int) -> Variable:
    if axis == 0:
        return v
    order = [axis] + [a for a in range(v.ndim) if a != axis]
    return shape.DimShuffle(v.ndim, order)(v)


# -- rules ---------------------------------------------------------------------------------------


@rule(Elemwise)
def _elemwise(node: Apply, ins: list[Pair]) -> list:
    nd = node.outputs[0].ndim
    args = [pad_after_batch(v, nd - (v.ndim - 1)) if b else v for v, b in ins]
    return [node.op(*args)]


@rule(shape.DimShuffle)
def _dimshuffle(node: Apply, ins: list[Pair]) -> list:
    ((v, _),) = ins
    order = [0] + [a if a == "x" else a + 1 for a in node.op.new_order]
    return [shape.DimShuffle(v.ndim, order)(v)]


@rule(blas.Dot)
def _dot(node: Apply, ins: list[Pair]) -> list | None:
    (x, bx), (y, by) = ins
    px, py = x.ndim - bx, y.ndim - by
    if bx and not by:
        return [blas.dot(x, y)] if y.ndim <= 2 else None
    if by and not bx:
        if py == 1 and px == 1:
            return [blas.dot(y, x)]
        if py == 1 and px == 2:
            return [blas.dot(y, _T().transpose(x))]
        if py == 2:  # W . x_t with x_t [E, B] (hidden-major): one product over all steps
            rows = shape.DimShuffle(3, [0, 2, 1])(y)  # [T, B, E]
            if px == 1:
                return [blas.dot(rows, x)]  # [T, B]
            if px == 2:
                return [shape.DimShuffle(3, [0, 2, 1])(blas.dot(rows, _T().transpose(x)))]
        return None
    if px <= 2 and py <= 2:
        return [blas.batched_dot(x, y)]
    return None


@rule(blas.BatchedMatMul)
def _matmul(node: Apply, ins: list[Pair]) -> list:
    (x, bx), (y, by) = ins
    if not bx:
        x = shape.DimShuffle(x.ndim, ["x", *range(x.ndim)])(x)
    if not by:
        y = shape.DimShuffle(y.ndim, ["x", *range(y.ndim)])(y)
    return [blas.matmul(x, y)]


@rule(reduce.Reduce)
def _reduce(node: Apply, ins: list[Pair]) -> list:
    ((v, _),) = ins
    op = node.op
    return [reduce.Reduce(op.kind, tuple(a + 1 for a in op.axis), op.keepdims, op.acc_dtype)(v)]


@rule(reduce.ArgReduce)
def _argreduce(node: Apply, ins: list[Pair]) -> list | None:
    ((v, _),) = ins
    op = node.op
    if op.axis is None:
        if v.ndim != 2:
            return None
        return [reduce.ArgReduce(op.kind, 1, op.keepdims)(v)]
    return [reduce.ArgReduce(op.kind, op.axis + 1, op.keepdims)(v)]


@rule(nnet.Softmax, nnet.LogSoftmax)
def _last_axis(node: Apply, ins: list[Pair]) -> list:
    ((v, _),) = ins
    return [node.op(v)]


@rule(nnet.SoftmaxGrad)
def _softmax_grad(node: Apply, ins: list[Pair]) -> list | None:
    (gz, _), (sm, bsm) = ins
    if not bsm:
        return None
    return [node.op(gz, sm)]


@rule(nnet.CrossentropyCategorical1Hot)
def _xent(node: Apply, ins: list[Pair]) -> list:
    return [node.op(*all_batched(ins))]


@rule(nnet.CrossentropyCategorical1HotGrad)
def _xent_grad(node: Apply, ins: list[Pair]) -> list:
    size = batch_size(ins)
    (gz, bgz), *rest = ins
    p, y = (v if b else broadcast_batch(v, size) for v, b in rest)
    if bgz and gz.ndim < y.ndim:
        gz = pad_after_batch(gz, y.ndim - gz.ndim)
    return [node.op(gz, p, y)]


def _advanced_ok(spec: tuple) -> bool:
    """True when numpy keeps the advanced-index axes where they are (no move to the front)."""
    if not any(s[0] == "array" for s in spec):
        return True
    pos = [k for k, s in enumerate(spec) if s[0] in ("array", "int")]
    return pos == list(range(pos[0], pos[-1] + 1))


@rule(subtensor.Subtensor)
def _subtensor(node: Apply, ins: list[Pair]) -> list | None:
    (x, bx), *parts = ins
    spec = node.op.spec
    if spec == (("int", 0),) and not parts:
        row = _unpad_rowwise(x)
        if row is not None:
            return [row]
    if not any(b for _, b in parts):
        new_spec = (("slice", None, None, None),) + spec
        if not _advanced_ok(new_spec):
            return None
        return [subtensor.Subtensor(new_spec)(x, *[p for p, _ in parts])]
    # the index changes per step (e.g. an embedding lookup ``U[:, x_t]``): one gather for all
    if bx or sum(b for _, b in parts) != 1:
        return None
    k = 0
    new_spec = []
    front = None  # result axis where the batched index's axes land
    produced = 0  # result axes made by the items before it
    for s in spec:
        kind = s[0]
        if kind in ("newaxis",) or (kind == "slice"):
            uses = sum(1 for p in s[1:] if p == subtensor.V) if kind == "slice" else 0
            if any(parts[k + i][1] for i in range(uses)):
                return None
            k += uses
            produced += 1
            new_spec.append(s)
        elif kind == "int" and s[1] == subtensor.V:
            if parts[k][1]:
                front = produced
                new_spec.append(("array",))
            else:
                return None  # an int next to an array index becomes advanced too
            k += 1
        elif kind == "array":
            if not parts[k][1]:
                return None
            front = produced
            new_spec.append(s)
            k += 1
        else:
            return None
    if front is None:
        return None
    out = subtensor.Subtensor(tuple(new_spec))(x, *[p for p, _ in parts])
    return [move_axis_to_front(out, front)]


def _unpad_rowwise(x: Variable) -> Variable | None:
    """``f(z[:, None, ...])[:, 0]`` as ``f(z)`` for a last-axis op ``f`` (softmax): the
    per-step idiom ``softmax(v)[0]`` batched, without the length-1 axis (whose gradient would
    scatter into a ``[T, 1, C]`` zero tensor)."""
    o = x.owner
    if o is None or not isinstance(o.op, nnet.Softmax | nnet.LogSoftmax):
        return None
    pad = o.inputs[0].owner
    if pad is None or not isinstance(pad.op, shape.DimShuffle):
        return None
    z = pad.inputs[0]
    if pad.op.new_order != (0, "x", *range(1, z.ndim)) or z.ndim < 2:
        return None
    return o.op(z)


@rule(subtensor.IncSubtensor)
def _inc_subtensor(node: Apply, ins: list[Pair]) -> list | None:
    (x, bx), (y, by), *parts = ins
    if any(b for _, b in parts):
        return None
    spec = node.op.spec
    new_spec = (("slice", None, None, None),) + spec
    if not _advanced_ok(new_spec):
        return None
    if not bx:
        x = broadcast_batch(x, batch_size(ins))
    region = subtensor._out_type(node.inputs[0], spec, node.inputs[2:]).ndim
    if by:
        y = pad_after_batch(y, region - (y.ndim - 1))
    op = subtensor.IncSubtensor(new_spec, node.op.set_instead_of_inc)
    return [op(x, y, *[p for p, _ in parts])]


@rule(shape.Alloc)
def _alloc(node: Apply, ins: list[Pair]) -> list | None:
    (v, bv), *dims = ins
    if any(b for _, b in dims):
        return None
    v = pad_after_batch(v, len(dims) - (v.ndim - 1))
    return [shape.alloc(v, batch_size(ins), *[d for d, _ in dims])]


@rule(shape.Shape)
def _shape(node: Apply, ins: list[Pair]) -> list:
    ((v, _),) = ins
    return [(shape.shape(v)[1:], False)]


@rule(reduce.SumToShape)
def _sum_to_shape(node: Apply, ins: list[Pair]) -> list | None:
    (g, bg), (x, bx) = ins
    if bg and bx:
        return [node.op(g, x)]
    if bg:
        return [batch_sum_to_shape_op(g, x)]
    return None


@rule(reduce.BroadcastLike)
def _broadcast_like(node: Apply, ins: list[Pair]) -> list:
    (g, bg), (x, bx) = ins
    if bg and bx:
        return [node.op(pad_after_batch(g, x.ndim - g.ndim), x)]
    if bg:
        g = pad_after_batch(g, x.ndim + 1 - g.ndim)
        sh = shape.shape(x)
        return [shape.alloc(g, batch_size(ins), *[sh[i] for i in range(x.ndim)])]
    sh = shape.shape(x)
    return [(shape.alloc(g, *[sh[i + 1] for i in range(x.ndim - 1)]), False)]


@rule(shape.Join)
def _join(node: Apply, ins: list[Pair]) -> list:
    nd = node.inputs[0].ndim
    return [shape.Join(node.op.axis % nd + 1)(*all_batched(ins))]


@rule(shape.Reshape)
def _reshape(node: Apply, ins: list[Pair]) -> list | None:
    (x, _), (shp, bshp) = ins
    if bshp:
        return None
    full = shape.concatenate([shape.make_vector(batch_size(ins)), shp])
    return [shape.Reshape(node.op.ndim + 1)(x, full)]


# -- a sum to a shared shape, row by row ----------------------------------------------------------


class BatchSumToShape(Op):
    """``g`` of shape ``[B, ...]`` summed, row by row, down to ``[B] + x.shape``.

    The batched form of ``SumToShape(g_t, x)`` when ``x`` is the same for every row (a bias's
    gradient, for instance).
    """

    def make_node(self, g: Any, x: Any) -> Apply:
        from ..ops.basic import as_tensor_variable

        g, x = as_tensor_variable(g), as_tensor_variable(x)
        return Apply(self, [g, x], [TensorType(g.dtype, (g.type.shape[0], *x.type.shape))])

    def make_impl(self, node: Apply, backend: Any):
        def batch_sum_to_shape(g, x):
            gs, xs = g.shape[1:], x.shape
            if gs == xs:
                return g
            lead = len(gs) - len(xs)
            axes = tuple(range(1, 1 + lead)) + tuple(
                1 + lead + i for i, s in enumerate(xs) if s == 1 and gs[lead + i] != 1
            )
            return g.sum(axis=axes).reshape((g.shape[0], *xs))

        return batch_sum_to_shape

    def grad(self, inputs, output_grads):
        g, x = inputs
        (gz,) = output_grads
        return [reduce.broadcast_like(pad_after_batch(gz, g.ndim - gz.ndim), g), None]


batch_sum_to_shape_op = BatchSumToShape()
