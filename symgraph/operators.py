"""Python operators on symbolic variables (``x + y``, ``x @ W``, ``x < 0``, ...).

The graph layer knows no ops; these methods call the functions of the tensor layer
(``symgraph.tensor``), which binds itself here at import time.
"""

from __future__ import annotations

from typing import Any

api: Any = None  # the symgraph.tensor namespace


class TensorOperators:
    """Mixed into ``Variable``: each operator builds the corresponding graph node."""

    __slots__ = ()

    def __add__(self, o):
        return api.add(self, o)

    def __radd__(self, o):
        return api.add(o, self)

    def __sub__(self, o):
        return api.sub(self, o)

    def __rsub__(self, o):
        return api.sub(o, self)

    def __mul__(self, o):
        return api.mul(self, o)

    def __rmul__(self, o):
        return api.mul(o, self)

    def __truediv__(self, o):
        return api.true_div(self, o)

    def __rtruediv__(self, o):
        return api.true_div(o, self)

    def __floordiv__(self, o):
        return api.int_div(self, o)

    def __rfloordiv__(self, o):
        return api.int_div(o, self)

    def __mod__(self, o):
        return api.mod(self, o)

    def __rmod__(self, o):
        return api.mod(o, self)

    def __pow__(self, o):
        return api.pow(self, o)

    def __rpow__(self, o):
        return api.pow(o, self)

    def __neg__(self):
        return api.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return api.abs(self)

    def __lt__(self, o):
        return api.lt(self, o)

    def __le__(self, o):
        return api.le(self, o)

    def __gt__(self, o):
        return api.gt(self, o)

    def __ge__(self, o):
        return api.ge(self, o)

    def __and__(self, o):
        return api.and_(self, o)

    def __rand__(self, o):
        return api.and_(o, self)

    def __or__(self, o):
        return api.or_(self, o)

    def __ror__(self, o):
        return api.or_(o, self)

    def __xor__(self, o):
        return api.xor(self, o)

    def __invert__(self):
        return api.invert(self)

    def __matmul__(self, o):
        return api.dot(self, o)

    def __rmatmul__(self, o):
        return api.dot(o, self)
