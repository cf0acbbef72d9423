"""Ops that change shape or layout: shape, dimshuffle, reshape, alloc, join, arange."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import GraphTypeError, ShapeError, user_line, where
from ..graph import Apply, Constant, Op, TensorType, Variable
from .basic import (
    NotConstantError,
    as_operands,
    as_tensor_variable,
    constant,
    get_scalar_constant_value,
)


def _T():
    from .. import graph

    return graph._api


class Shape(Op):
    """The shape of ``x`` as an int64 vector."""

    host_outputs = True  # array metadata, read without the device (placement)

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))])

    def make_impl(self, node, backend):
        # Shapes are host values even for device arrays: they drive allocation on the host.
        return lambda x: np.array(x.shape, dtype=np.int64)

    def grad(self, inputs, output_grads):
        return [None]


shape_op = Shape()


def shape(x: Any) -> Variable:
    return shape_op(as_tensor_variable(x))


class DimShuffle(Op):
    """Reorder axes, drop length-1 axes and insert new ones ('x'), like Theano's dimshuffle."""

    __props__ = ("new_order", "input_ndim")

    def __init__(self, input_ndim: int, new_order: Sequence[int | str]):
        self.input_ndim = input_ndim
        self.new_order = tuple(new_order)
        kept = [a for a in self.new_order if a != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= a < input_ndim for a in kept):
            raise ValueError(f"invalid dimshuffle pattern {new_order} for {input_ndim} dims")
        self.dropped = tuple(a for a in range(input_ndim) if a not in kept)
        self.perm = tuple(kept)
        self.out_shape_spec = self.new_order

    def __str__(self) -> str:
        return "DimShuffle{" + ",".join(map(str, self.new_order)) + "}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim != self.input_ndim:
            raise GraphTypeError(f"{self} expects {self.input_ndim} dims, got {x.ndim}")
        for a in self.dropped:
            if x.type.shape[a] not in (1, None):
                raise ShapeError(
                    f"dimshuffle drops axis {a} of {x.describe()}, whose length is "
                    f"{x.type.shape[a]}, not 1{where(user_line())}"
                )
        shp = tuple(1 if a == "x" else x.type.shape[a] for a in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shp)])

    def make_impl(self, node, backend):
        xp = backend.xp
        dropped = self.dropped
        kept_sorted = sorted(self.perm)
        perm = tuple(kept_sorted.index(a) for a in self.perm)  # positions after squeezing
        new_axes = tuple(i for i, a in enumerate(self.new_order) if a == "x")
        identity_perm = perm == tuple(range(len(perm)))

        # The common cases as array methods and indexing (a view in ~0.1-0.3 us; the xp
        # functions cost about 1 us each, which adds up over a loop's steps).
        if not dropped and not new_axes:
            if identity_perm:
                return lambda x: x
            if perm == tuple(range(len(perm)))[::-1]:
                return lambda x: x.T
            return lambda x: x.transpose(perm)
        if not dropped and identity_perm:
            insert = tuple(None if a == "x" else slice(None) for a in self.new_order)
            return lambda x: x[insert]

        def dimshuffle(x):
            if dropped:
                x = xp.squeeze(x, axis=dropped)
            if not identity_perm:
                x = xp.transpose(x, perm)
            if new_axes:
                x = xp.expand_dims(x, new_axes)
            return x

        return dimshuffle

    def grad(self, inputs, output_grads):
        (x,) = inputs
        (gz,) = output_grads
        # inverse: drop the inserted axes, undo the permutation, re-insert dropped axes
        kept_positions = [i for i, a in enumerate(self.new_order) if a != "x"]
        g = (
            DimShuffle(len(self.new_order), kept_positions)(gz)
            if len(kept_positions) != len(self.new_order)
            else gz
        )
        # g has axes in order self.perm; build order for input
        inv = []
        for a in range(self.input_ndim):
            inv.append(self.perm.index(a) if a in self.perm else "x")
        return [DimShuffle(len(self.perm), inv)(g)]


def dimshuffle(x: Any, *pattern: Any) -> Variable:
    if len(pattern) == 1 and isinstance(pattern[0], list | tuple):
        pattern = tuple(pattern[0])
    x = as_tensor_variable(x)
    return DimShuffle(x.ndim, pattern)(x)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Variable:
    x = as_tensor_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    return DimShuffle(x.ndim, axes)(x)


class Reshape(Op):
    """Reshape ``x`` to a shape vector (a constant or symbolic int vector; -1 allowed once)."""

    __props__ = ("ndim",)
    host_operands = (1,)  # the shape is read on the host (placement)

    def __init__(self, ndim: int):
        self.ndim = ndim

    def make_node(self, x: Any, shp: Any) -> Apply:
        x = as_tensor_variable(x)
        shp = as_tensor_variable(shp)
        if shp.ndim != 1 or shp.dtype[:3] not in ("int", "uin"):
            raise GraphTypeError(f"reshape needs an integer shape vector, got {shp.type}")
        static: list[int | None] = [None] * self.ndim
        try:
            from .basic import Constant

            if isinstance(shp, Constant):
                vals = [int(v) for v in shp.data]
                static = [v if v >= 0 else None for v in vals]
                known = [s for s in x.type.shape]
                if -1 in vals and all(s is not None for s in known):
                    total = int(np.prod(known))
                    rest = int(np.prod([v for v in vals if v != -1]))
                    static[vals.index(-1)] = total // rest if rest else None
                if all(s is not None for s in known) and None not in static:
                    if int(np.prod(known)) != int(np.prod(static)):
                        raise ShapeError(
                            f"cannot reshape {x.describe()} of shape {tuple(known)} to "
                            f"{tuple(vals)}{where(user_line())}"
                        )
            elif shp.owner is not None and isinstance(shp.owner.op, MakeVector):
                for i, s in enumerate(shp.owner.inputs):
                    try:
                        v = int(get_scalar_constant_value(s))
                        static[i] = v if v >= 0 else None
                    except NotConstantError:
                        pass
        except NotConstantError:
            pass
        return Apply(self, [x, shp], [TensorType(x.dtype, static)])

    def make_impl(self, node, backend):
        return lambda x, shp: x.reshape(tuple(int(s) for s in shp))

    def grad(self, inputs, output_grads):
        x, _ = inputs
        return [reshape(output_grads[0], shape(x), ndim=x.ndim), None]


def reshape(x: Any, newshape: Any, ndim: int | None = None) -> Variable:
    x = as_tensor_variable(x)
    if isinstance(newshape, int):
        newshape = (newshape,)
    if isinstance(newshape, list | tuple):
        if any(isinstance(s, Variable) for s in newshape):
            newshape = make_vector(*newshape)
        else:
            newshape = constant(np.array(newshape, dtype=np.int64))
    newshape = as_tensor_variable(newshape)
    if ndim is None:
        if newshape.type.shape[0] is None:
            raise ValueError("reshape to a symbolic shape vector of unknown length needs ndim=")
        ndim = newshape.type.shape[0]
    return Reshape(ndim)(x, newshape)


def flatten(x: Any, ndim: int = 1) -> Variable:
    """Keep the first ``ndim - 1`` axes and collapse the rest (Theano's flatten)."""
    x = as_tensor_variable(x)
    if ndim == 1:
        return reshape(x, (-1,))
    sh = shape(x)
    lead = [sh[i] for i in range(ndim - 1)]
    return reshape(x, make_vector(*lead, -1), ndim=ndim)


class MakeVector(Op):
    """A vector from scalars (used for symbolic shapes)."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str = "int64"):
        self.dtype = dtype

    def make_node(self, *scalars: Any) -> Apply:
        ins = [as_tensor_variable(s) for s in scalars]
        for s in ins:
            if s.ndim != 0:
                raise GraphTypeError(f"make_vector takes scalars, got {s.type}")
        ins = [s if s.dtype == self.dtype else _T().cast(s, self.dtype) for s in ins]
        return Apply(self, ins, [TensorType(self.dtype, (len(ins),))])

    def make_impl(self, node, backend):
        xp, dt = backend.xp, self.dtype
        if dt == "int64":  # shapes stay on the host
            return lambda *s: np.array([int(v) for v in s], dtype=np.int64)
        return lambda *s: xp.stack([xp.asarray(v, dtype=dt) for v in s])

    def grad(self, inputs, output_grads):
        if self.dtype[:3] == "int":
            return [None] * len(inputs)
        return [output_grads[0][i] for i in range(len(inputs))]


def make_vector(*scalars: Any, dtype: str = "int64") -> Variable:
    return MakeVector(dtype)(*scalars)


class Alloc(Op):
    """An array of shape ``shape`` filled with (a broadcast of) ``value``."""

    scalar_operands = True  # a host single-element fill value is written by value (placement)

    def make_node(self, value: Any, *shape_scalars: Any) -> Apply:
        value = as_tensor_variable(value)
        dims = [as_tensor_variable(s) for s in shape_scalars]
        static = []
        for d in dims:
            if d.ndim != 0 or d.dtype[:3] not in ("int", "uin"):
                raise GraphTypeError(f"alloc shape entries must be integer scalars, got {d.type}")
            try:
                static.append(int(get_scalar_constant_value(d)))
            except NotConstantError:
                static.append(None)
        if value.ndim > len(dims):
            raise GraphTypeError(
                f"alloc: value {value.describe()} has more dimensions ({value.ndim}) than the "
                f"requested shape ({len(dims)}){where(user_line())}"
            )
        # the value broadcasts against the trailing axes: a known length must agree
        lead = len(dims) - value.ndim
        for i, v in enumerate(value.type.shape):
            want = static[lead + i]
            if v is not None and v != 1 and want is not None and want != v:
                raise ShapeError(
                    f"alloc: value {value.describe()} of shape {value.type.shape} cannot fill "
                    f"shape {tuple(static)} (axis {lead + i}){where(user_line())}"
                )
            if want is None and v is not None and v != 1:
                static[lead + i] = v
        return Apply(self, [value, *dims], [TensorType(value.dtype, static)])

    def make_impl(self, node, backend):
        xp = backend.xp
        value = node.inputs[0]
        if isinstance(value, Constant) and value.data.size == 1 and not value.data.any():
            # zeros: the allocator hands out zeroed memory (calloc, lazily mapped pages), so a
            # large gradient buffer of which a step touches a few columns costs almost nothing
            dtype = value.dtype

            def alloc_zeros(v, *shp):
                return xp.zeros(tuple(int(s) for s in shp), dtype=dtype)

            return alloc_zeros

        def alloc(v, *shp):
            out = xp.empty(tuple(int(s) for s in shp), dtype=v.dtype)
            out[...] = v
            return out

        return alloc

    def grad(self, inputs, output_grads):
        value = inputs[0]
        return [_T().sum_to_shape_of(output_grads[0], value)] + [None] * (len(inputs) - 1)


alloc_op = Alloc()


def alloc(value: Any, *shape: Any) -> Variable:
    return alloc_op(value, *shape)


def _shape_args(shape: Any) -> list:
    if isinstance(shape, int | np.integer) or (isinstance(shape, Variable) and shape.ndim == 0):
        return [shape]
    if isinstance(shape, Variable):
        return [shape[i] for i in range(shape.type.shape[0])]
    return list(shape)


def zeros(shape: Any, dtype: str | None = None) -> Variable:
    from ..config import config

    return alloc(constant(0, dtype=dtype or config.floatX), *_shape_args(shape))


def ones(shape: Any, dtype: str | None = None) -> Variable:
    from ..config import config

    return alloc(constant(1, dtype=dtype or config.floatX), *_shape_args(shape))


def full_like(x: Any, fill: Any, dtype: str | None = None) -> Variable:
    x = as_tensor_variable(x)
    sh = shape(x)
    return alloc(constant(fill, dtype=dtype or x.dtype), *[sh[i] for i in range(x.ndim)])


def zeros_like(x: Any, dtype: str | None = None) -> Variable:
    return full_like(x, 0, dtype)


def ones_like(x: Any, dtype: str | None = None) -> Variable:
    return full_like(x, 1, dtype)


class Join(Op):
    """Concatenate tensors along a constant axis."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def make_node(self, *tensors: Any) -> Apply:
        ts = [as_tensor_variable(t) for t in tensors]
        ndim = ts[0].ndim
        if any(t.ndim != ndim for t in ts):
            raise GraphTypeError(
                f"concatenate: all inputs need the same number of dimensions, got "
                f"{[t.ndim for t in ts]}{where(user_line())}"
            )
        axis = self.axis % ndim
        dtype = np.result_type(*[t.dtype for t in ts]).name
        ts = [t if t.dtype == dtype else _T().cast(t, dtype) for t in ts]
        shp = []
        for a in range(ndim):
            dims = [t.type.shape[a] for t in ts]
            if a == axis:
                shp.append(None if None in dims else sum(dims))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise ShapeError(
                        f"concatenate on axis {axis}: lengths on axis {a} differ: {dims}"
                        f"{where(user_line())}"
                    )
                shp.append(known.pop() if known else None)
        return Apply(self, ts, [TensorType(dtype, shp)])

    def make_impl(self, node, backend):
        xp, axis = backend.xp, self.axis
        return lambda *ts: xp.concatenate(ts, axis=axis)

    def grad(self, inputs, output_grads):
        (gz,) = output_grads
        T = _T()
        axis = self.axis % inputs[0].ndim
        grads, start = [], constant(0, dtype="int64")
        for t in inputs:
            n = shape(t)[axis]
            idx = [slice(None)] * axis + [slice(start, start + n)]
            g = gz[tuple(idx)]
            grads.append(g if T.is_float(t.dtype) else None)
            start = start + n
        return grads


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Variable:
    return Join(axis)(*tensors)


def stack(tensors: Sequence[Any], axis: int = 0) -> Variable:
    ts = [as_tensor_variable(t) for t in tensors]
    nd = ts[0].ndim
    axis = axis % (nd + 1)
    pattern = list(range(nd))
    pattern.insert(axis, "x")
    return concatenate([DimShuffle(t.ndim, pattern)(t) for t in ts], axis=axis)


class ARange(Op):
    """``arange(start, stop, step)`` with scalar (possibly symbolic) bounds."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype

    def make_node(self, start: Any, stop: Any, step: Any) -> Apply:
        ins = [as_tensor_variable(v) for v in (start, stop, step)]
        return Apply(self, ins, [TensorType(self.dtype, (None,))])

    def make_impl(self, node, backend):
        xp, dt = backend.xp, self.dtype
        return lambda a, b, c: xp.arange(a.item(), b.item(), c.item(), dtype=dt)

    def grad(self, inputs, output_grads):
        return [None, None, None]


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: str | None = None) -> Variable:
    if stop is None:
        start, stop = 0, start
    # Python numbers are weak (as in Theano, T.arange(iscalar) is int32); symbolic bounds decide
    ins = as_operands([start, stop, step])
    if dtype is None:
        dtype = np.result_type(*[v.dtype for v in ins]).name
    for v in ins:
        if v.ndim != 0:
            raise GraphTypeError(f"arange bounds must be scalars, got {v.type}{where(user_line())}")
    return ARange(dtype)(*ins)
