"""Reductions (sum, mean, prod, max, min, argmax, argmin, all, any) and broadcast helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import GraphTypeError, user_line, where
from ..graph import Apply, Op, TensorType, Variable
from .basic import as_tensor_variable
from .scalar import is_float


def _T():
    from .. import graph

    return graph._api


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int | np.integer):
        axis = (int(axis),)
    out = []
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise GraphTypeError(
                f"axis {a} is out of range for {ndim} dimensions{where(user_line())}"
            )
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


_REDUCERS = {
    "sum": "sum",
    "mean": "mean",
    "prod": "prod",
    "max": "max",
    "min": "min",
    "all": "all",
    "any": "any",
}


_UFUNC_REDUCE = {
    "sum": "add",
    "prod": "multiply",
    "mean": "add",
    "max": "maximum",
    "min": "minimum",
}


class Reduce(Op):
    """``xp.<kind>(x, axis=axis, keepdims=keepdims)``."""

    __props__ = ("kind", "axis", "keepdims", "acc_dtype")

    def __init__(self, kind: str, axis: tuple[int, ...], keepdims: bool = False, acc_dtype=None):
        self.kind, self.axis, self.keepdims, self.acc_dtype = kind, tuple(axis), keepdims, acc_dtype

    def __str__(self) -> str:
        return f"{self.kind}{{axis={list(self.axis)}{', keepdims' if self.keepdims else ''}}}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        shp = [
            (1 if self.keepdims else "drop") if a in self.axis else s
            for a, s in enumerate(x.type.shape)
        ]
        shp = [s for s in shp if s != "drop"]
        if self.kind in ("all", "any"):
            dtype = "bool"
        elif self.kind == "mean":
            dtype = x.dtype if is_float(x.dtype) else _T().config.floatX
        elif self.kind in ("sum", "prod") and x.dtype[0] in "bi" and x.dtype != "int64":
            dtype = "int64"  # NumPy's (and Theano's) accumulator for small integers and bools
        elif self.kind in ("sum", "prod") and x.dtype[0] == "u":
            dtype = "uint64"
        else:
            dtype = x.dtype
        return Apply(self, [x], [TensorType(dtype, shp)])

    def make_impl(self, node, backend):
        fn = getattr(backend.xp, _REDUCERS[self.kind])
        axis, keepdims = self.axis, self.keepdims
        dtype = node.outputs[0].dtype
        if backend.name == "cpu" and self.kind in _UFUNC_REDUCE:
            # ufunc.reduce skips numpy's Python-level wrapper (np.sum costs ~2x on small arrays)
            reduce_ = getattr(np, _UFUNC_REDUCE[self.kind]).reduce
            np_dtype = np.dtype(dtype)
            if self.kind == "mean":

                def mean(x):
                    n = 1
                    for a in axis:
                        n *= x.shape[a]
                    return np.true_divide(reduce_(x, axis, np_dtype, None, keepdims), n)

                return mean
            if self.kind in ("sum", "prod"):
                return lambda x: reduce_(x, axis, np_dtype, None, keepdims)
            return lambda x: reduce_(x, axis, None, None, keepdims)
        if self.kind in ("sum", "prod", "mean"):
            return lambda x: fn(x, axis=axis, keepdims=keepdims, dtype=dtype)
        return lambda x: fn(x, axis=axis, keepdims=keepdims)

    def grad(self, inputs, output_grads):
        (x,) = inputs
        (gz,) = output_grads
        T = _T()
        if not is_float(x.dtype) or self.kind in ("all", "any"):
            return [None]
        g = gz if self.keepdims else _expand(gz, self.axis, x.ndim)
        if self.kind == "sum":
            return [broadcast_like(g, x)]
        if self.kind == "mean":
            n = T.cast(_count(x, self.axis), x.dtype)
            return [broadcast_like(g / n, x)]
        if self.kind == "prod":
            return [g * _prod_of_others(x, self.axis)]
        out = self(x)
        out = out if self.keepdims else _expand(out, self.axis, x.ndim)
        if self.kind in ("max", "min"):
            return [T.switch(T.eq(x, out), g, 0)]
        raise NotImplementedError(self.kind)


def _prod_of_others(x: Variable, axis: tuple[int, ...]) -> Variable:
    """For each element, the product of the other elements of its reduction group.

    ``prod / x`` is that product only without zeros (0 / 0 otherwise): with one zero in a group,
    the zero's entry is the product of the non-zeros and every other entry is 0; with two or
    more zeros, every entry is 0.
    """
    T = _T()
    is_zero = T.eq(x, 0)
    nonzero = T.switch(is_zero, T.ones_like(x), x)
    prod_nonzero = Reduce("prod", axis, keepdims=True)(nonzero)
    n_zeros = Reduce("sum", axis, keepdims=True)(is_zero)
    return T.switch(
        T.eq(n_zeros, 0),
        prod_nonzero / nonzero,
        T.switch(T.and_(T.eq(n_zeros, 1), is_zero), prod_nonzero, T.zeros_like(x)),
    )


def _expand(v: Variable, axes: Sequence[int], ndim: int) -> Variable:
    T = _T()
    it = iter(range(v.ndim))
    pattern = ["x" if a in axes else next(it) for a in range(ndim)]
    return T.dimshuffle(v, pattern)


def _count(x: Variable, axes: Sequence[int]) -> Variable:
    T = _T()
    sh = T.shape(x)
    n = None
    for a in axes:
        n = sh[a] if n is None else n * sh[a]
    return n if n is not None else T.constant(1, dtype="int64")


def reduce(kind: str, x: Any, axis: Any = None, keepdims: bool = False, dtype=None) -> Variable:
    x = as_tensor_variable(x)
    return Reduce(kind, normalize_axis(axis, x.ndim), keepdims)(x)


class BroadcastLike(Op):
    """``g`` broadcast to the shape of ``x`` (materialised: a fresh, writable array)."""

    scalar_operands = True  # a host single-element ``g`` fills by value (placement)

    def make_node(self, g: Any, x: Any) -> Apply:
        g, x = as_tensor_variable(g), as_tensor_variable(x)
        return Apply(self, [g, x], [TensorType(g.dtype, x.type.shape)])

    def make_impl(self, node, backend):
        xp = backend.xp

        def broadcast_like(g, x):
            if g.shape == x.shape:
                return g
            out = xp.empty(x.shape, dtype=g.dtype)
            out[...] = g
            return out

        return broadcast_like

    def grad(self, inputs, output_grads):
        return [sum_to_shape_of(output_grads[0], inputs[0]), None]


broadcast_like_op = BroadcastLike()


def broadcast_like(g: Any, x: Any) -> Variable:
    return broadcast_like_op(g, x)


class SumToShape(Op):
    """Sum ``g`` over the axes along which ``x`` was broadcast to reach ``g``'s shape.

    This is how the gradient of a broadcasting op returns to its input; since length-1
    dimensions broadcast at run time, the axes are found at run time (cheaply).
    """

    def make_node(self, g: Any, x: Any) -> Apply:
        g, x = as_tensor_variable(g), as_tensor_variable(x)
        return Apply(self, [g, x], [TensorType(g.dtype, x.type.shape)])

    def make_impl(self, node, backend):
        return lambda g, x: _sum_to(g, x.shape)

    def grad(self, inputs, output_grads):
        return [broadcast_like(output_grads[0], inputs[0]), None]


sum_to_shape_op = SumToShape()


def _sum_to(g: Any, xs: tuple) -> Any:
    """``g`` summed over the axes along which an array of shape ``xs`` was broadcast to it."""
    gs = g.shape
    if gs == xs:
        return g
    lead = len(gs) - len(xs)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(xs) if s == 1 and gs[lead + i] != 1
    )
    return g.sum(axis=axes).reshape(xs)


class SumToShapeOf(Op):
    """``SumToShape`` given the target shape (an int vector) instead of an array of that shape.

    The compiler swaps it in late (``symgraph/rewrite/memory.py``): ``SumToShape(g, x)`` keeps
    ``x`` alive just for its shape, which stops the buffer of a large ``x`` (the logits before
    their bias) from being reused in place.
    """

    __props__ = ("out_shape",)
    differentiable = False  # introduced after gradients are built
    host_operands = (1,)  # the shape is read on the host (placement)

    def __init__(self, out_shape: tuple):
        self.out_shape = tuple(out_shape)

    def make_node(self, g: Any, shape: Any) -> Apply:
        g, shape = as_tensor_variable(g), as_tensor_variable(shape)
        return Apply(self, [g, shape], [TensorType(g.dtype, self.out_shape)])

    def make_impl(self, node, backend):
        return lambda g, shape: _sum_to(g, tuple(int(s) for s in shape))


def sum_to_shape_of(g: Variable, x: Variable) -> Variable:
    """``g`` reduced to ``x``'s shape; skipped when the static shapes prove it unnecessary."""
    gs, xs = g.type.shape, x.type.shape
    if len(gs) == len(xs) and all(b is not None and (b != 1 or a == 1) for a, b in zip(gs, xs)):
        return g  # every axis of x has a known length that cannot have been broadcast up
    return sum_to_shape_op(g, x)


class ArgReduce(Op):
    """argmax / argmin along one axis (or the flattened array); int64 result."""

    __props__ = ("kind", "axis", "keepdims")

    def __init__(self, kind: str, axis: int | None, keepdims: bool = False):
        self.kind, self.axis, self.keepdims = kind, axis, keepdims

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if self.axis is None:
            shp = (1,) * x.ndim if self.keepdims else ()
        else:
            shp = [s for a, s in enumerate(x.type.shape) if a != self.axis or self.keepdims]
            if self.keepdims:
                shp[self.axis] = 1
        return Apply(self, [x], [TensorType("int64", shp)])

    def make_impl(self, node, backend):
        fn = getattr(backend.xp, self.kind)
        axis, keepdims = self.axis, self.keepdims
        return lambda x: fn(x, axis=axis, keepdims=keepdims).astype("int64", copy=False)

    def grad(self, inputs, output_grads):
        return [None]


def argreduce(kind: str, x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    x = as_tensor_variable(x)
    if axis is not None:
        axes = normalize_axis(axis, x.ndim)
        if len(axes) != 1:
            raise GraphTypeError(
                f"{kind} takes one axis or None, got axis={axis!r}{where(user_line())}"
            )
        (axis,) = axes
    return ArgReduce(kind, axis, keepdims)(x)
