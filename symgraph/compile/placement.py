"""Which values of a program live on the host when it runs on a device backend.

On a GPU, shapes and the small integer arithmetic on them belong on the host: a ``reshape`` or an
allocation reads its sizes from host memory instead of waiting for the device, and CuPy refuses
NumPy arrays as operands anyway. The linker asks :func:`plan_placement` which variables are host
values; the rest are device arrays. A value is on the host when it is

- a constant that is 0-d or an integer vector (a literal, a fixed shape),
- an explicit input the caller declared a host value (``function`` passes its 0-d inputs, which
  go to the device by value, as kernel arguments, instead of one copy each per call),
- an output of an op that makes host values (``host_outputs = True``: ``Shape``), or
- an output of a node whose inputs are all on the host and whose outputs are all small (0-d, or
  an integer/boolean vector); such a node runs with the NumPy backend.

A device node reads a host value (:func:`operand_conversion`)

- as it is where the op declares the operand a host value (``host_operands``: a shape vector);
- as a NumPy scalar when it is a 0-d integer (a size or an index: CuPy indexes with a NumPy
  integer as NumPy does, but with a 0-d array it would gather a copy), or any 0-d value of an op
  that takes NumPy scalars (``scalar_operands = True``: elementwise kernels take it by value);
- otherwise copied to the device (a constant once, when the program is linked).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from ..graph import Apply, Constant, Variable


def is_small(v: Variable) -> bool:
    """A value cheap to hold on the host: a scalar or an integer/boolean vector (a shape)."""
    return v.ndim == 0 or (v.ndim == 1 and v.dtype[:3] in ("int", "uin", "boo"))


def plan_placement(
    inputs: Sequence[Variable], nodes: Sequence[Apply], host_inputs: Collection[int] = ()
) -> tuple[set[int], set[int]]:
    """``(host variable ids, host node indices)`` for running ``nodes`` on a device."""
    host: set[int] = {id(inputs[k]) for k in host_inputs}
    for node in nodes:
        for v in node.inputs:
            if isinstance(v, Constant) and is_small(v):
                host.add(id(v))
    host_nodes: set[int] = set()
    for k, node in enumerate(nodes):
        on_host = getattr(node.op, "host_outputs", False) or (
            all(id(v) in host for v in node.inputs) and all(is_small(o) for o in node.outputs)
        )
        if on_host:
            host_nodes.add(k)
            host.update(id(o) for o in node.outputs)
    return host, host_nodes


def operand_conversion(node: Apply, position: int) -> str | None:
    """How a device node reads the host value at input ``position``: None (as it is),
    ``'scalar'`` (a NumPy scalar) or ``'device'`` (copied to the device)."""
    v = node.inputs[position]
    if position in getattr(node.op, "host_operands", ()):
        return None
    if v.ndim == 0 and (
        v.dtype[:3] in ("int", "uin", "boo") or getattr(node.op, "scalar_operands", False)
    ):
        return "scalar"
    return "device"


def is_host_value(a: Any) -> bool:
    # exact type: a device backend's arrays may subclass ndarray (the test stand-in does)
    return type(a) is np.ndarray or isinstance(a, np.generic)


def host_scalar(a: Any) -> Any:
    return a[()] if type(a) is np.ndarray else a


def device_copier(backend: Any) -> Any:
    """Copies host values (arrays, NumPy scalars) to the device; device values pass unchanged."""
    to_device = backend.to_device

    def convert(a: Any) -> Any:
        return to_device(np.asarray(a)) if is_host_value(a) else a

    return convert
