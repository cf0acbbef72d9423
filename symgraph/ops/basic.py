"""Turning Python and NumPy values into graph variables, and static-shape helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import config
from ..errors import GraphTypeError, ShapeError, where
from ..graph import Constant, TensorType, Variable


def constant(value: Any, dtype: str | None = None, name: str | None = None) -> Constant:
    """A constant variable holding ``value`` (an array, list or number)."""
    if isinstance(value, Variable):
        raise GraphTypeError(f"constant() got a symbolic variable {value}")
    arr = np.array(value, dtype=dtype) if dtype is not None else _default_array(value)
    return Constant(TensorType(arr.dtype, arr.shape), arr, name=name)


def _default_array(value: Any) -> np.ndarray:
    """Python floats become ``floatX``; Python ints int64; arrays keep their dtype."""
    if isinstance(value, np.ndarray | np.generic):
        return np.array(value)
    arr = np.array(value)
    if arr.dtype == np.float64:
        arr = arr.astype(config.floatX)
    return arr


def as_tensor_variable(x: Any, name: str | None = None, ndim: int | None = None) -> Variable:
    """``x`` if it is a variable, else a constant made from it."""
    if isinstance(x, Variable):
        v = x
    elif isinstance(x, list | tuple) and any(isinstance(e, Variable) for e in x):
        from .shape import stack

        v = stack([as_tensor_variable(e) for e in x])
    else:
        try:
            v = constant(x, name=name)
        except (TypeError, ValueError) as e:
            raise GraphTypeError(f"cannot turn {type(x).__name__} {x!r} into a tensor") from e
    if ndim is not None and v.ndim != ndim:
        raise GraphTypeError(
            f"expected a {ndim}-d tensor, got {v.describe()} with {v.ndim} dimensions"
            f"{where(v.trace)}"
        )
    return v


def _is_weak(x: Any) -> bool:
    return isinstance(x, bool | int | float) and not isinstance(x, np.generic)


def as_operands(inputs: Sequence[Any]) -> list[Variable]:
    """Convert operands of an elementwise op; bare Python numbers adopt the others' dtype.

    ``x_float32 * 0.5`` stays float32 and ``ids_int32 + 1`` stays int32 (NumPy 2's rule for
    Python scalars); a Python float meeting only integers becomes ``floatX``.
    """
    strong = [
        x.dtype if isinstance(x, Variable) else np.asarray(x).dtype.name
        for x in inputs
        if not _is_weak(x)
    ]
    out = []
    for x in inputs:
        if isinstance(x, Variable):
            out.append(x)
        elif _is_weak(x):
            out.append(constant(x, dtype=_weak_dtype(x, strong)))
        else:
            out.append(as_tensor_variable(x))
    return out


def _weak_dtype(x: bool | int | float, strong: list[str]) -> str:
    if isinstance(x, bool):
        return "bool"
    floats = [d for d in strong if np.dtype(d).kind == "f"]
    if isinstance(x, float):
        return np.result_type(*floats).name if floats else config.floatX
    if floats:
        return np.result_type(*floats).name
    ints = [d for d in strong if np.dtype(d).kind in "iu"]
    if ints:
        d = np.result_type(*ints)
        info = np.iinfo(d)
        if info.min <= x <= info.max:
            return d.name
    return "int64"


def broadcast_shapes(
    shapes: Sequence[tuple[int | None, ...]], what: str, trace=None
) -> tuple[int | None, ...]:
    """NumPy broadcasting of static shapes (``None`` = unknown). Raises on a sure mismatch."""
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    result: list[int | None] = []
    for axis in range(ndim):
        dims = [s[axis] for s in padded]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            pretty = " and ".join(str(tuple("?" if d is None else d for d in s)) for s in shapes)
            raise ShapeError(
                f"{what}: shapes {pretty} cannot be broadcast together (axis {axis}: lengths "
                f"{sorted(known)}){where(trace)}"
            )
        if known:
            result.append(known.pop())
        elif all(d == 1 for d in dims):
            result.append(1)
        else:
            result.append(None)
    return tuple(result)


def get_scalar_constant_value(v: Variable) -> Any:
    """The value of ``v`` if it is a constant scalar (possibly behind casts/dimshuffles)."""
    from .elemwise import Elemwise
    from .shape import DimShuffle

    while v.owner is not None and isinstance(v.owner.op, DimShuffle | Elemwise):
        op = v.owner.op
        if isinstance(op, Elemwise) and not op.scalar_op.name.startswith("cast_"):
            break
        v = v.owner.inputs[0]
    if isinstance(v, Constant) and v.data.size == 1:
        return v.data.reshape(()).item()
    raise NotConstantError(v)


class NotConstantError(Exception):
    pass
