"""``RandomStreams``: symbolic random numbers with Theano's interface.

srng = RandomStreams(seed=1234)
mask = srng.binomial(size=h.shape, p=0.5, dtype="float32")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import config
from ..graph import Variable
from ..ops.random import RandomOp
from ..ops.shape import make_vector


class RandomStreams:
    """A source of random variables; every call gives a new, independently seeded stream."""

    def __init__(self, seed: int = 12345):
        self._seed_rng = np.random.default_rng(seed)
        self._ops: list[RandomOp] = []

    def seed(self, seed: int) -> None:
        """Re-seed every stream made so far (and the ones made later)."""
        self._seed_rng = np.random.default_rng(seed)
        for op in self._ops:
            op.reseed(int(self._seed_rng.integers(2**31)))

    def _draw(self, dist: str, size: Any, dtype: str | None, *params: Any) -> Variable:
        dtype = dtype or config.floatX
        if dtype == "floatX":
            dtype = config.floatX
        shape = _shape_vector(size)
        ndim = shape.type.shape[0]
        op = RandomOp(dist, dtype, ndim, int(self._seed_rng.integers(2**31)))
        self._ops.append(op)
        return op(shape, *params)

    def uniform(self, size: Any = (), low: float = 0.0, high: float = 1.0, ndim=None, dtype=None):
        return self._draw("uniform", size, dtype, low, high)

    def normal(self, size: Any = (), avg: float = 0.0, std: float = 1.0, ndim=None, dtype=None):
        return self._draw("normal", size, dtype, avg, std)

    def binomial(self, size: Any = (), n: int = 1, p: Any = 0.5, ndim=None, dtype="int64"):
        if n != 1:
            raise NotImplementedError("binomial with n > 1; draw n Bernoulli variables and sum")
        return self._draw("binomial", size, dtype, p)


def _shape_vector(size: Any) -> Variable:
    from ..ops.basic import as_tensor_variable, constant

    if isinstance(size, Variable):
        size = as_tensor_variable(size)
        if size.ndim == 0:
            return make_vector(size)
        if size.type.shape[0] is None:
            raise ValueError("a random size given as a symbolic vector needs a known length")
        return (
            size
            if size.dtype == "int64"
            else make_vector(*[size[i] for i in range(size.type.shape[0])])
        )
    if isinstance(size, int | np.integer):
        size = (int(size),)
    if any(isinstance(s, Variable) for s in size):
        return make_vector(*size)
    return constant(np.array(size, dtype=np.int64).reshape(-1))


MRG_RandomStreams = RandomStreams  # Theano's GPU-friendly generator had the same interface
