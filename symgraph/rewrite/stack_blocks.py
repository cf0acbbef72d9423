"""``inc_subtensor`` chains into zeros -> ``StackBlocks`` (for device backends).

``zeros`` followed by ``x[k] += g_k`` for constant, distinct blocks ``k`` of the first axis is
what the gradient of a parameter read block by block looks like. Each step here folds one more
block into the ``StackBlocks`` node below it; once the blocks cover the first axis, that node is
one stack (one launch on a device, instead of the zeros and one launch per block).
"""

from __future__ import annotations

from ..graph import Apply, Variable
from ..ops.blocks import StackBlocks
from ..ops.shape import Alloc
from ..ops.subtensor import IncSubtensor, constant_fill


def stack_blocks(node: Apply) -> list[Variable] | None:
    """``inc_subtensor(zeros[k], g)`` -> ``StackBlocks((k,))(shape, g)``, and
    ``inc_subtensor(StackBlocks(...)[k], g)`` -> a ``StackBlocks`` with one more block."""
    if not isinstance(node.op, IncSubtensor) or len(node.inputs) != 2:
        return None
    spec = node.op.spec
    if len(spec) != 1 or not (isinstance(spec[0], tuple) and spec[0][0] == "int"):
        return None
    k = spec[0][1]
    x, y = node.inputs
    if k < 0 or y.ndim >= x.ndim or y.dtype != x.dtype:
        return None
    below = x.owner
    if below is not None and isinstance(below.op, Alloc) and constant_fill(x) == 0:
        if len(below.inputs) - 1 != x.ndim:
            return None
        return [StackBlocks((k,), x.dtype, x.ndim)(*below.inputs[1:], y)]
    if below is not None and isinstance(below.op, StackBlocks) and k not in below.op.order:
        ndim = x.ndim
        shape, values = below.inputs[:ndim], below.inputs[ndim:]
        return [StackBlocks((*below.op.order, k), x.dtype, ndim)(*shape, *values, y)]
    return None
