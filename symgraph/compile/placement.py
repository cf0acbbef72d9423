"""Which values of a program live on the host when it runs on a device backend.

On a GPU, shapes and the small arithmetic on them belong on the host: a ``reshape`` or an
allocation reads its sizes from host memory instead of waiting for the device, and CuPy refuses
NumPy arrays as operands anyway. The linker asks :func:`plan_placement` which variables are host
values; the rest are device arrays. A value is on the host when it is

- a small constant (see :func:`is_small`: a scalar, one element, a fixed-length integer vector),
- an explicit input the caller declared a host value (``function`` passes its 0-d inputs, which
  reach kernels by value instead of being copied over once per call),
- an output of an op that makes host values (``host_outputs = True``: ``Shape``), or
- an output of a node whose inputs are all on the host and whose outputs are all small; such a
  node runs with the NumPy backend (``x.shape[0] * x.shape[1]``, ``-1.0 / n``).

An integer vector of run-time length (``arange(n)``) is data, not a shape: it is made on the
device. A device node reads a host value (:func:`operand_conversion`)

- as it is where the op declares the operand a host value (``host_operands``: a shape vector),
  and a single element where the op takes host scalars by value (``scalar_operands =
  'by_value'``: an elementwise kernel gets it as a kernel argument, keeping its shape);
- as a NumPy scalar when it is a 0-d integer (a size or an index: CuPy indexes with a NumPy
  integer as NumPy does, but with a 0-d array it would gather a copy), or any single element
  for an op that takes NumPy scalars (``scalar_operands = True``: gemm's alpha, a fill value);
- otherwise copied to the device (a constant once, when the program is linked).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from ..graph import Apply, Constant, Variable


def is_small(v: Variable) -> bool:
    """A value cheap to hold on the host: a scalar, a single element, or an integer/boolean
    vector of a length fixed at compile time (a shape)."""
    shape = v.type.shape
    if all(n == 1 for n in shape):
        return True
    return len(shape) == 1 and shape[0] is not None and _is_integer(v)


def _is_integer(v: Variable) -> bool:
    return v.dtype[:3] in ("int", "uin", "boo")


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
    takes = getattr(node.op, "scalar_operands", False)
    if position in getattr(node.op, "host_operands", ()):
        return None
    single = all(n == 1 for n in v.type.shape)
    if takes == "by_value" and single:
        return None
    if (takes and single) or (v.ndim == 0 and _is_integer(v)):
        return "scalar"
    return "device"


def is_host_value(a: Any) -> bool:
    # the exact type: an ndarray subclass may stand for device memory
    return type(a) is np.ndarray or isinstance(a, np.generic)


def host_scalar(a: Any) -> Any:
    """A host value of one element as a NumPy scalar (CuPy takes those as operands)."""
    return a.reshape(())[()] if type(a) is np.ndarray else a


def device_copier(backend: Any) -> Any:
    """Copies host values (arrays, NumPy scalars) to the device; device values pass unchanged."""
    to_device = backend.to_device

    def convert(a: Any) -> Any:
        return to_device(np.asarray(a)) if is_host_value(a) else a

    return convert
