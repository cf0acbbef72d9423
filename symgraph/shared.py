"""``shared(value)``: state that lives across calls (weights, optimizer accumulators)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import GraphTypeError
from .graph import SharedVariable, TensorType


def shared(
    value: Any,
    name: str | None = None,
    borrow: bool = False,
    strict: bool = False,
    allow_downcast: bool | None = None,
    broadcastable: Any = None,
    shape: Any = None,
) -> SharedVariable:
    """A shared variable holding ``value`` (copied unless ``borrow=True``).

    Its dtype is the value's dtype (a Python float becomes ``config.floatX``); its static shape is
    left open (any shape with the same number of dimensions may be set later), except for axes
    given in ``shape``/``broadcastable``.
    """
    if isinstance(value, float | int | bool) and not isinstance(value, np.generic):
        from .ops.basic import _default_array

        arr = _default_array(value)
    elif hasattr(value, "__cuda_array_interface__") and not isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.ndarray):
        arr = value if borrow else value.copy()
    else:  # lists, NumPy scalars: always a new array
        arr = np.array(value)
    if arr.dtype == object:
        raise GraphTypeError(f"shared() got an object array for {name!r}; use numeric data")
    if shape is None:
        if broadcastable is not None:
            shape = [1 if b else None for b in broadcastable]
        else:
            shape = [None] * arr.ndim
    from .backends import get_backend
    from .config import config

    if config.device != "cpu" and isinstance(arr, np.ndarray):
        backend = get_backend()
        arr = backend.to_device(arr)
    return SharedVariable(TensorType(arr.dtype, shape), arr, name=name)
