"""Rewrites that keep known-zero rows out of the work: a gradient that is zero on its first rows.

Such a gradient is written ``concatenate([zeros(d, ...), tail])`` (see :func:`zero_padded_head`):
the gradient of ``keep_last_rows_grad`` (Theano's ``truncate_gradient`` with the output layer
moved out of the loop) has this form, as does any user concatenation of zeros and a tail. Ops that
map zero rows to zero rows act on the tail alone, a product summing over the rows reads only the
tail's rows of its other operand, and a slice of the padded value is a (usually smaller) padded
slice of the tail. So a backward pass through the output layer costs k rows, not all T.

- :func:`drop_gradient_only_identity`: ops that are the identity forwards and exist only to shape
  a gradient (``keep_last_rows_grad``, ``grad_clip``, ``zero_grad``) are dropped once the gradient
  graph is built (compiling never differentiates again); the stabilize rewrites then see
  ``crossentropy(softmax(x), y)`` again.
- :func:`zero_head_through_rowwise`: ``f(pad(t, d), ...) -> pad(f(t, ...[d:]), d)`` for the
  row-wise gradient ops (``SoftmaxGrad``, the cross-entropy gradients) and for ``mul``/``neg``
  with operands that broadcast over the rows.
- :func:`zero_head_through_dot`: ``dot(pad(t, d), B) -> pad(dot(t, B), d)``;
  ``dot(pad(t, d).T, B) -> dot(t.T, B[d:])``; ``dot(A, pad(t, d)) -> dot(A[..., d:], t)``.
- :func:`zero_head_row_slice`: ``pad(t, d)[s:e]`` -> a padded slice of ``t``.
- :func:`row_slice_through_broadcast_like`: ``broadcast_like(pad(t, d), x)[s:e]`` -> the slice
  taken before broadcasting, so that it reaches the padded value.
"""

from __future__ import annotations

from ..graph import Apply, Constant, Variable
from ..ops.basic import constant
from ..ops.blas import Dot, dot
from ..ops.elemwise import Elemwise, apply
from ..ops.gradient import GradClip, ZeroGrad
from ..ops.nnet import CrossentropyCategorical1HotGrad, SoftmaxGrad, softmax_grad
from ..ops.reduce import BroadcastLike, broadcast_like
from ..ops.shape import Alloc, DimShuffle, Join, alloc, shape
from ..ops.stable import CrossentropySoftmax1HotDx
from ..ops.subtensor import Subtensor, getitem

# ---------------------------------------------------------------------------------------------
# The zero-padded head: concatenate([zeros(d, *tail.shape[1:]), tail]) along axis 0
# ---------------------------------------------------------------------------------------------


def zero_padded_head(tail: Variable, d: Variable | int) -> Variable:
    """``tail`` with ``d`` rows of zeros in front (same dtype; ``d`` an integer scalar)."""
    rest = [s if s is not None else shape(tail)[i] for i, s in enumerate(tail.type.shape)][1:]
    zeros = alloc(constant(0, dtype=tail.dtype), d, *rest)
    return Join(0)(zeros, tail)


def zero_head_parts(v: Variable) -> tuple[Variable, Variable] | None:
    """``(d, tail)`` when ``v`` is a zero-padded head, else None."""
    o = v.owner
    if o is None or not isinstance(o.op, Join) or len(o.inputs) != 2 or v.ndim == 0:
        return None
    if o.op.axis % v.ndim != 0:
        return None
    z, tail = o.inputs
    zo = z.owner
    if zo is None or not isinstance(zo.op, Alloc) or len(zo.inputs) != 1 + v.ndim:
        return None
    fill = zo.inputs[0]
    if not (isinstance(fill, Constant) and fill.data.size == 1 and not fill.data.any()):
        return None
    if z.dtype != tail.dtype:
        return None
    return zo.inputs[1], tail


# ---------------------------------------------------------------------------------------------
# Scalar index arithmetic (a few integer ops, run once per call)
# ---------------------------------------------------------------------------------------------


def _int_const(v: Variable | int | None) -> int | None:
    if isinstance(v, int):
        return v
    if isinstance(v, Constant) and v.ndim == 0:
        return int(v.data)
    return None


def _max(a, b):
    ca, cb = _int_const(a), _int_const(b)
    if ca is not None and cb is not None:
        return max(ca, cb)
    return apply("maximum", a, b)


def _min(a, b):
    ca, cb = _int_const(a), _int_const(b)
    if ca is not None and cb is not None:
        return min(ca, cb)
    return apply("minimum", a, b)


def _add(a, b):
    ca, cb = _int_const(a), _int_const(b)
    if ca is not None and cb is not None:
        return ca + cb
    return apply("add", a, b)


def _sub(a, b):
    ca, cb = _int_const(a), _int_const(b)
    if ca is not None and cb is not None:
        return ca - cb
    if cb == 0:
        return a
    return apply("sub", a, b)


def _normalize(b, n, default):
    """A slice bound as NumPy reads it for a length ``n``: in ``[0, n]``."""
    if b is None:
        return default
    c = _int_const(b)
    if c is not None:
        return _max(_add(n, c), 0) if c < 0 else _min(c, n)
    return apply("switch", apply("lt", b, 0), _max(_add(n, b), 0), _min(b, n))


def _row_slice(node: Apply) -> tuple | None:
    """``(start, stop)`` (each None, an int or a variable) when ``node`` is ``x[start:stop]``
    with step 1 on axis 0 and nothing else indexed."""
    op = node.op
    if not isinstance(op, Subtensor) or not op.spec or op.spec[0][0] != "slice":
        return None
    if any(s != ("slice", None, None, None) for s in op.spec[1:]):
        return None
    _, start, stop, step = op.spec[0]
    if step not in (None, 1):
        return None
    parts = iter(node.inputs[1:])
    start = next(parts) if start == "V" else start
    stop = next(parts) if stop == "V" else stop
    return start, stop


def _rows(x: Variable, start, stop) -> Variable:
    return getitem(x, (slice(start, stop),))


# ---------------------------------------------------------------------------------------------
# The rewrites
# ---------------------------------------------------------------------------------------------


def drop_gradient_only_identity(node: Apply) -> list[Variable] | None:
    """Identity-forward ops that only shape a gradient -> their input (see the module doc)."""
    op = node.op
    if isinstance(op, GradClip | ZeroGrad) or getattr(op, "identity_forward", False):
        (x,) = node.inputs
        if x.type == node.outputs[0].type:
            return [x]
    return None


def zero_head_through_rowwise(node: Apply) -> list[Variable] | None:
    """A row-wise op that maps zero rows to zero rows, on a zero-padded head (see module doc).

    The gradient ops' first input is, by construction, the gradient of their output: it has
    the rows of their other inputs, which are therefore sliced like it.
    """
    op = node.op
    if isinstance(op, SoftmaxGrad):
        g, sm = node.inputs
        zh = zero_head_parts(g)
        if zh is None or g.ndim < 2 or sm.ndim != g.ndim or sm.type.shape[0] == 1:
            return None
        d, t = zh
        new = softmax_grad(t, _rows(sm, d, None))
        return [zero_padded_head(_stabilized(new), d)]
    if isinstance(op, CrossentropyCategorical1HotGrad | CrossentropySoftmax1HotDx):
        gz, p, y = node.inputs
        zh = zero_head_parts(gz)
        if zh is None or p.type.shape[0] == 1 or y.type.shape[0] == 1:
            return None
        d, t = zh
        return [zero_padded_head(op(t, _rows(p, d, None), _rows(y, d, None)), d)]
    if isinstance(op, Elemwise) and op.scalar_op.name in ("mul", "neg"):
        out = node.outputs[0]
        heads = [zero_head_parts(i) for i in node.inputs]
        k = next((k for k, h in enumerate(heads) if h is not None), None)
        if k is None or node.inputs[k].ndim != out.ndim:
            return None
        # the other operands must broadcast over the rows (fewer dimensions): then the product
        # of a zero row is a zero row and the tail's rows need nothing sliced
        if any(i.ndim >= out.ndim for j, i in enumerate(node.inputs) if j != k):
            return None
        d, t = heads[k]
        ins = list(node.inputs)
        ins[k] = t
        new = op(*ins)
        if new.dtype != out.dtype:
            return None
        return [zero_padded_head(new, d)]
    return None


def zero_head_through_dot(node: Apply) -> list[Variable] | None:
    """Products with a zero-padded head on either side (see the module doc)."""
    if not isinstance(node.op, Dot):
        return None
    a, b = node.inputs
    zh = zero_head_parts(a)
    if zh is not None and a.ndim >= 2:
        d, t = zh
        return [zero_padded_head(dot(t, b), d)]
    if a.ndim == 2 and a.owner is not None and isinstance(a.owner.op, DimShuffle):
        if a.owner.op.new_order == (1, 0):
            zh = zero_head_parts(a.owner.inputs[0])
            if zh is not None and b.type.shape[:1] != (1,):
                d, t = zh
                return [dot(DimShuffle(2, (1, 0))(t), _rows(b, d, None))]
    zh = zero_head_parts(b)
    if zh is not None and a.type.shape[-1] != 1:
        d, t = zh
        return [dot(getitem(a, (Ellipsis, slice(d, None))), t)]
    return None


def _slice_zero_head(d: Variable, t: Variable, start, stop) -> Variable:
    """``zero_padded_head(t, d)[start:stop]`` as a padded slice of ``t``."""
    n = _add(d, shape(t)[0] if t.type.shape[0] is None else t.type.shape[0])
    s = _normalize(start, n, 0)
    e = _max(_normalize(stop, n, n), s)
    lead = _max(_sub(_min(d, e), s), 0)  # zero rows left in the slice
    lo, hi = _max(_sub(s, d), 0), _max(_sub(e, d), 0)
    return zero_padded_head(_rows(t, lo, hi), lead)


def zero_head_row_slice(node: Apply) -> list[Variable] | None:
    """``zero_padded_head(t, d)[s:e]`` -> ``zero_padded_head(t[a:b], z)``; a head of no rows
    -> the tail itself."""
    if isinstance(node.op, Join):
        zh = zero_head_parts(node.outputs[0])
        if zh is not None and _int_const(zh[0]) == 0:
            return [zh[1]]
        return None
    sl = _row_slice(node)
    if sl is None:
        return None
    zh = zero_head_parts(node.inputs[0])
    if zh is None:
        return None
    return [_slice_zero_head(*zh, *sl)]


def row_slice_through_broadcast_like(node: Apply) -> list[Variable] | None:
    """``broadcast_like(g, x)[s:e]`` -> ``broadcast_like(g[s':e'], x[s:e])`` when ``g`` is a
    zero-padded head: the slice is the same on ``g`` when its rows are ``x``'s, and all of ``g``
    when it has one row that broadcasts."""
    sl = _row_slice(node)
    if sl is None:
        return None
    bl = node.inputs[0]
    if bl.owner is None or not isinstance(bl.owner.op, BroadcastLike):
        return None
    g, x = bl.owner.inputs
    zh = zero_head_parts(g)
    if zh is None or g.ndim != x.ndim:
        return None
    start, stop = sl
    d, t = zh
    gn = _add(d, shape(t)[0])  # not shape(g): that would build the padded value
    same = apply("eq", gn, shape(x)[0])
    g_start = None if start is None else apply("switch", same, start, 0)
    g_stop = None if stop is None else apply("switch", same, stop, gn)
    return [broadcast_like(_slice_zero_head(*zh, g_start, g_stop), _rows(x, start, stop))]


def _stabilized(v: Variable) -> Variable:
    """``v`` with the softmax cross-entropy gradient fused at once (the engine does not revisit
    the nodes a rewrite creates until its next walk)."""
    from .stabilize import crossentropy_softmax_grad

    r = crossentropy_softmax_grad(v.owner)
    return v if r is None else r[0]


LIFT = [
    drop_gradient_only_identity,
    zero_head_through_rowwise,
    zero_head_through_dot,
    zero_head_row_slice,
    row_slice_through_broadcast_like,
]

__all__ = ["LIFT", "zero_head_parts", "zero_padded_head"]
