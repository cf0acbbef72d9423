"""``StackBlocks``: an array assembled from its blocks along the first axis.

The gradient of a parameter read block by block (a GRU's ``U[0], U[1], U[2]``) is built as
``zeros`` with each block's gradient added in: an ``Alloc`` and one ``inc_subtensor`` per block.
On a device each is a launch. When the blocks are known to cover the first axis once, one stack
of the blocks gives the same array (``rewrite/stack_blocks.py`` makes this op, after gradients).
"""

from __future__ import annotations

from typing import Any

from ..graph import Apply, Op, TensorType
from .basic import NotConstantError, as_tensor_variable, get_scalar_constant_value


class StackBlocks(Op):
    """``zeros(shape)`` with ``out[k] += value`` for each ``(k, value)``: the values broadcast
    to a block's shape, as ``inc_subtensor`` broadcasts them. When the blocks are exactly
    ``0 .. shape[0] - 1`` it is one stack; otherwise zeros and one addition per block. Made by
    a rewrite after gradients: not differentiable."""

    __props__ = ("order", "dtype", "ndim")
    differentiable = False

    def __init__(self, order: tuple[int, ...], dtype: str, ndim: int):
        if len(set(order)) != len(order) or any(k < 0 for k in order):
            raise ValueError(f"StackBlocks: blocks {order} must be distinct and non-negative")
        self.order = tuple(order)
        self.dtype = dtype
        self.ndim = ndim

    def __str__(self) -> str:
        return f"StackBlocks{list(self.order)}"

    def make_node(self, *args: Any) -> Apply:
        """``args``: the result's shape (``ndim`` integer scalars), then one value per block."""
        shape = [as_tensor_variable(s) for s in args[: self.ndim]]
        values = [as_tensor_variable(v) for v in args[self.ndim :]]
        if len(values) != len(self.order):
            raise TypeError(f"{self}: {len(values)} values for {len(self.order)} blocks")
        if any(s.ndim != 0 or s.dtype[:3] not in ("int", "uin") for s in shape):
            raise TypeError(f"{self}: the shape takes {self.ndim} integer scalars")
        if any(v.ndim >= self.ndim or v.dtype != self.dtype for v in values):
            raise TypeError(f"{self}: each value is one block of a {self.ndim}-d {self.dtype}")
        static = []
        for s in shape:
            try:
                static.append(int(get_scalar_constant_value(s)))
            except NotConstantError:
                static.append(None)
        return Apply(self, [*shape, *values], [TensorType(self.dtype, tuple(static))])

    def make_impl(self, node: Apply, backend: Any):
        xp, order, dtype, ndim = backend.xp, self.order, self.dtype, self.ndim
        every_block = sorted(order) == list(range(len(order)))  # of a first axis that long

        def stack_blocks(*args: Any) -> Any:
            shape = tuple(int(s) for s in args[:ndim])
            values = args[ndim:]
            if every_block and shape[0] == len(order):
                blocks = dict(zip(order, values))
                return xp.stack([xp.broadcast_to(blocks[k], shape[1:]) for k in range(shape[0])])
            out = xp.zeros(shape, dtype=dtype)
            for k, v in zip(order, values):
                out[k] += v
            return out

        return stack_blocks
