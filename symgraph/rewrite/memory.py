"""Late rewrites that shorten how long large arrays stay alive (so the linker can reuse them).

- ``SumToShape(g, x)`` -> ``SumToShapeOf(g, shape(x))``: a gradient reduced to the shape of an
  intermediate ``x`` (the bias gradient of ``dot(h, V) + c`` is reduced to the shape of
  ``dot(h, V)``) would otherwise keep ``x`` alive until the backward pass, so the bias could
  not be added into ``x`` in place. ``shape(x)`` is computed where ``x`` is, and ``x`` dies there.
"""

from __future__ import annotations

from ..graph import Apply, Variable
from ..ops.reduce import SumToShape, SumToShapeOf
from ..ops.shape import Shape, shape


def sum_to_shape_by_shape(node: Apply) -> list[Variable] | None:
    if not isinstance(node.op, SumToShape):
        return None
    g, x = node.inputs
    if x.owner is None or x.ndim == 0:
        return None  # inputs and shared values live anyway
    if all(s is not None for s in x.type.shape):
        return None  # the static shape already decides (canonicalize drops or keeps it)
    if isinstance(x.owner.op, Shape):
        return None
    return [SumToShapeOf(x.type.shape)(g, shape(x))]


MEMORY = [sum_to_shape_by_shape]
