"""Random number ops. Each op owns its generator (seeded by ``RandomStreams``), so a compiled
function draws fresh numbers on every call, as Theano's default updates of random states did.

A random node is never merged with another (each op carries a unique id) and never folded.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..graph import Apply, Op, TensorType
from .basic import as_tensor_variable

_ids = itertools.count()


class RandomOp(Op):
    """Draw from ``dist`` with parameters given as inputs and a shape given as a vector."""

    host_operands = (0,)  # the shape is read on the host (placement)

    __props__ = ("dist", "dtype", "uid")
    no_fold = True
    differentiable = False

    def __init__(self, dist: str, dtype: str, ndim: int, seed: int):
        self.dist, self.dtype, self.ndim = dist, dtype, ndim
        self.uid = next(_ids)
        self.seed = seed
        self._generators: dict[str, Any] = {}

    def __str__(self) -> str:
        return f"Random{{{self.dist}}}"

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._generators.clear()

    def make_node(self, shape: Any, *params: Any) -> Apply:
        shape = as_tensor_variable(shape)
        params = [as_tensor_variable(p) for p in params]
        static = [None] * self.ndim
        from .basic import Constant

        if isinstance(shape, Constant):
            static = [int(s) for s in shape.data]
        return Apply(self, [shape, *params], [TensorType(self.dtype, static)])

    def make_impl(self, node, backend):
        dist, dtype = self.dist, self.dtype
        xp = backend.xp

        def draw(shape, *params):
            gen = self._generators.get(backend.name)
            if gen is None:
                gen = self._generators[backend.name] = _generator(xp, self.seed)
            size = tuple(int(s) for s in shape)
            if dist == "uniform":
                low, high = params
                out = gen.uniform(float(low), float(high), size)
            elif dist == "normal":
                avg, std = params
                out = gen.standard_normal(size) * float(std) + float(avg)
            elif dist == "binomial":
                p = params[0]
                out = gen.uniform(0.0, 1.0, size) < p
            else:  # pragma: no cover
                raise ValueError(dist)
            return out.astype(dtype, copy=False)

        return draw


def _generator(xp: Any, seed: int) -> Any:
    # numpy.random.default_rng and cupy.random.default_rng take the same arguments
    return xp.random.default_rng(seed)
