"""Indexing: basic slices and integers, integer-array ("advanced") indexing, and
``set_subtensor`` / ``inc_subtensor`` (duplicate indices accumulate, like ``np.add.at``).

An index is stored as a *spec*: a tuple with one entry per index item. Constant parts are kept in
the spec; symbolic parts are node inputs (after the indexed tensor), marked ``V`` in the spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphTypeError, user_line, where
from ..graph import Apply, Constant, Op, TensorType, Variable
from .basic import as_tensor_variable

V = "V"  # marks a symbolic part of the index


def _T():
    from .. import graph

    return graph._api


def parse_index(x: Variable, idx: Any) -> tuple[tuple, list[Variable]]:
    """Split a Python index into a hashable spec and the symbolic inputs it uses."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    spec, inputs = [], []

    def part(p: Any) -> Any:
        if p is None:
            return None
        if isinstance(p, Variable):
            if isinstance(p, Constant) and p.ndim == 0:
                return int(p.data)
            if p.ndim != 0 or p.dtype[:3] not in ("int", "uin"):
                raise GraphTypeError(f"slice bounds must be integer scalars, got {p.type}")
            inputs.append(p)
            return V
        return int(p)

    for item in idx:
        if item is None:
            spec.append(("newaxis",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(item, slice):
            spec.append(("slice", part(item.start), part(item.stop), part(item.step)))
        elif isinstance(item, int | np.integer):
            spec.append(("int", int(item)))
        else:
            v = item if isinstance(item, Variable) else as_tensor_variable(np.asarray(item))
            if v.dtype == "bool":
                raise GraphTypeError(
                    f"boolean mask indexing is not supported (its result shape depends on the "
                    f"data); use T.switch or nonzero(){where(user_line())}"
                )
            if v.dtype[:3] not in ("int", "uin"):
                raise GraphTypeError(
                    f"index {v.describe()} has dtype {v.dtype}; indices must be integers"
                    f"{where(user_line())}"
                )
            if v.ndim == 0:
                if isinstance(v, Constant):
                    spec.append(("int", int(v.data)))
                else:
                    inputs.append(v)
                    spec.append(("int", V))
            else:
                inputs.append(v)
                spec.append(("array",))
    # expand an ellipsis into full slices
    n_consumed = sum(1 for s in spec if s[0] in ("slice", "int", "array"))
    if any(s[0] == "ellipsis" for s in spec):
        i = next(i for i, s in enumerate(spec) if s[0] == "ellipsis")
        spec[i : i + 1] = [("slice", None, None, None)] * (x.ndim - n_consumed)
        n_consumed = x.ndim
    if n_consumed > x.ndim:
        raise GraphTypeError(
            f"too many indices for {x.describe()} with {x.ndim} dimensions{where(user_line())}"
        )
    return tuple(spec), inputs


def _builder(spec: tuple):
    """A function ``(symbolic parts) -> Python index tuple``, precomputed per node."""
    if all(
        s[0] in ("newaxis",) or (s[0] == "int" and s[1] != V) or (s[0] == "slice" and V not in s)
        for s in spec
    ):
        const = tuple(_const_item(s) for s in spec)
        return lambda parts: const

    def build(parts):
        it = iter(parts)
        out = []
        for s in spec:
            kind = s[0]
            if kind == "slice":
                out.append(slice(*[(_as_int(next(it)) if p == V else p) for p in s[1:]]))
            elif kind == "int":
                out.append(_as_int(next(it)) if s[1] == V else s[1])
            elif kind == "array":
                out.append(next(it))
            else:
                out.append(None)
        return tuple(out)

    return build


def _as_int(v: Any) -> int:
    return int(v)


def _const_item(s: tuple) -> Any:
    if s[0] == "newaxis":
        return None
    if s[0] == "int":
        return s[1]
    return slice(s[1], s[2], s[3])


def _has_advanced(spec: tuple) -> bool:
    return any(s[0] == "array" for s in spec)


def _check_static_ints(x: Variable, spec: tuple) -> None:
    """A constant integer index outside a known length fails now, as NumPy would at run time."""
    axis = 0
    for s in spec:
        if s[0] == "newaxis":
            continue
        if s[0] == "int" and s[1] != V and axis < x.ndim:
            n = x.type.shape[axis]
            if n is not None and not -n <= s[1] < n:
                raise IndexError(
                    f"index {s[1]} is out of bounds for axis {axis} with size {n} "
                    f"(indexing {x.describe()} of type {x.type}){where(user_line())}"
                )
        axis += 1


def _out_type(x: Variable, spec: tuple, inputs: list[Variable]) -> TensorType:
    if not _has_advanced(spec):
        shp: list[int | None] = []
        axis = 0
        for s in spec:
            if s[0] == "newaxis":
                shp.append(1)
                continue
            n = x.type.shape[axis]
            axis += 1
            if s[0] == "slice":
                if n is not None and V not in s:
                    shp.append(len(range(*slice(*s[1:]).indices(n))))
                else:
                    shp.append(None)
        shp.extend(x.type.shape[axis:])
        return TensorType(x.dtype, shp)
    # advanced indexing: let NumPy work out the rank on a stand-in array
    dummy = np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=np.int8),
        shape=[2 if s is None else max(s, 1) for s in x.type.shape],
        strides=[0] * x.ndim,
    )
    arrays = iter(v for v in inputs if v.ndim > 0)
    parts = []
    sym = iter(inputs)
    for s in spec:
        if s[0] == "array":
            a = next(arrays)
            parts.append(np.zeros([1 if d is None else d for d in a.type.shape], dtype=np.int64))
            next(sym)
        elif s[0] == "int":
            if s[1] == V:
                next(sym)
            parts.append(0)
        elif s[0] == "slice":
            vals = []
            for p in s[1:]:
                if p == V:
                    next(sym)
                    vals.append(None)
                else:
                    vals.append(p)
            parts.append(slice(*vals))
        else:
            parts.append(None)
    ndim = dummy[tuple(parts)].ndim
    return TensorType(x.dtype, (None,) * ndim)


class Subtensor(Op):
    """``x[index]`` for basic and advanced (integer-array) indices."""

    __props__ = ("spec",)

    def __init__(self, spec: tuple):
        self.spec = spec

    def __str__(self) -> str:
        return f"Subtensor{_fmt_spec(self.spec)}"

    def make_node(self, x: Any, *parts: Any) -> Apply:
        x = as_tensor_variable(x)
        parts = [as_tensor_variable(p) for p in parts]
        _check_static_ints(x, self.spec)
        return Apply(self, [x, *parts], [_out_type(x, self.spec, parts)])

    def make_impl(self, node, backend):
        build = _builder(self.spec)
        if len(node.inputs) == 1:
            idx = build(())
            return lambda x: x[idx]
        if self.spec == (("array",),):
            take = backend.xp.take
            return lambda x, i: take(x, i, axis=0)
        return lambda x, *parts: x[build(parts)]

    def grad(self, inputs, output_grads):
        x, *parts = inputs
        (gz,) = output_grads
        if not _T().is_float(x.dtype):
            return [None] * len(inputs)
        gx = IncSubtensor(self.spec, set_instead_of_inc=False)(_T().zeros_like(x), gz, *parts)
        return [gx] + [None] * len(parts)


def _fmt_spec(spec: tuple) -> str:
    items = []
    for s in spec:
        if s[0] == "slice":
            items.append(":".join("" if p is None else ("v" if p == V else str(p)) for p in s[1:]))
        elif s[0] == "int":
            items.append("v" if s[1] == V else str(s[1]))
        elif s[0] == "array":
            items.append("int_array")
        else:
            items.append("newaxis")
    return "[" + ", ".join(items) + "]"


class IncSubtensor(Op):
    """A copy of ``x`` with ``x[index] += y`` (or ``= y`` for set_subtensor)."""

    __props__ = ("spec", "set_instead_of_inc")

    def __init__(self, spec: tuple, set_instead_of_inc: bool = False):
        self.spec = spec
        self.set_instead_of_inc = set_instead_of_inc

    def __str__(self) -> str:
        return f"{'Set' if self.set_instead_of_inc else 'Inc'}Subtensor{_fmt_spec(self.spec)}"

    def make_node(self, x: Any, y: Any, *parts: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        parts = [as_tensor_variable(p) for p in parts]
        target = _out_type(x, self.spec, parts)
        if y.ndim > target.ndim:
            raise GraphTypeError(
                f"{'set' if self.set_instead_of_inc else 'inc'}_subtensor: value has {y.ndim} "
                f"dims but the indexed region has {target.ndim}{where(user_line())}"
            )
        if y.dtype != x.dtype:
            y = _T().cast(y, x.dtype)
        return Apply(self, [x, y, *parts], [x.type])

    # The linker may let this op write into ``x`` when ``x`` dies here (no copy of x then).
    destroyable_input = 0

    def make_impl(self, node, backend, inplace: bool = False):
        build = _builder(self.spec)
        scatter_add = backend.scatter_add
        advanced = _has_advanced(self.spec)
        set_ = self.set_instead_of_inc
        fill = constant_fill(node.inputs[0])
        xp = backend.xp
        array = xp.ndarray

        def fresh_copy(x):
            # a copy of a constant-filled array is a new one: for zeros, untouched pages are
            # never even read (a gradient of a few embedding columns, whose zeros another
            # gradient also reads, costs a scatter, not a copy of the whole matrix)
            if fill is None:
                return x.copy()
            return xp.zeros_like(x) if fill == 0 else xp.full_like(x, fill)

        def inc_subtensor(x, y, *parts):
            out = x if inplace else fresh_copy(x)
            idx = build(parts)
            if set_:
                out[idx] = y
            elif advanced:
                scatter_add(out, idx, y)
            else:
                region = out[idx]
                if isinstance(region, array):  # a view: add in place (``out[idx] += y``
                    xp.add(region, y, out=region)  # would also copy the region onto itself)
                else:  # NumPy gives a scalar for a full integer index
                    out[idx] += y
            return out

        return inc_subtensor

    def grad(self, inputs, output_grads):
        x, y, *parts = inputs
        (gz,) = output_grads
        T = _T()
        if self.set_instead_of_inc:
            gx = IncSubtensor(self.spec, True)(gz, T.constant(0, dtype=gz.dtype), *parts)
        else:
            gx = gz
        gy = T.sum_to_shape_of(Subtensor(self.spec)(gz, *parts), y)
        return [gx, gy] + [None] * len(parts)


def constant_fill(x: Variable) -> Any:
    """The scalar an ``Alloc`` of a constant fills ``x`` with, else None."""
    from .basic import NotConstantError, get_scalar_constant_value
    from .shape import Alloc

    if x.owner is None or not isinstance(x.owner.op, Alloc):
        return None
    try:
        return get_scalar_constant_value(x.owner.inputs[0])
    except NotConstantError:
        return None


def getitem(x: Variable, idx: Any) -> Variable:
    spec, parts = parse_index(x, idx)
    # x[:] stays a node (a view), so that set_subtensor(x[:], y) works as in Theano
    return Subtensor(spec)(x, *parts)


def _from_subtensor(x: Variable) -> tuple[Variable, tuple, list[Variable]]:
    if x.owner is None or not isinstance(x.owner.op, Subtensor):
        raise GraphTypeError(
            f"set_subtensor/inc_subtensor take an indexed variable like x[1:3], got "
            f"{x.describe()}{where(user_line())}"
        )
    base, *parts = x.owner.inputs
    return base, x.owner.op.spec, parts


def set_subtensor(x: Variable, y: Any) -> Variable:
    """``x`` with the indexed region replaced by ``y``: ``set_subtensor(a[2:], 0)``."""
    base, spec, parts = _from_subtensor(x)
    return IncSubtensor(spec, True)(base, y, *parts)


def inc_subtensor(x: Variable, y: Any) -> Variable:
    """``x`` with ``y`` added to the indexed region; repeated indices add repeatedly."""
    base, spec, parts = _from_subtensor(x)
    return IncSubtensor(spec, False)(base, y, *parts)
