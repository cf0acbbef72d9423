"""Typed symbolic variable constructors with Theano's names (``T.ivector('x')``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import config
from ..graph import TensorType, Variable

_PREFIX = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64"}


def tensor(
    dtype: str | None = None,
    shape: Sequence[int | None] | None = None,
    name: str | None = None,
    broadcastable: Sequence[bool] | None = None,
    ndim: int | None = None,
) -> Variable:
    """A symbolic input of the given dtype (default ``config.floatX``) and static shape.

    ``shape`` entries are ints or None (unknown); Theano's ``broadcastable`` flags are accepted
    (True means a dimension of length 1).
    """
    dtype = dtype or config.floatX
    if dtype == "floatX":
        dtype = config.floatX
    if shape is not None and any(isinstance(s, bool | np.bool_) for s in shape):
        # Theano's positional T.tensor(dtype, broadcastable): flags, not lengths
        broadcastable, shape = shape, None
    if shape is None:
        if broadcastable is not None:
            shape = [1 if b else None for b in broadcastable]
        else:
            shape = [None] * (ndim or 0)
    return TensorType(dtype, shape).make_variable(name)


def _maker(ndim_shape: tuple, dtype: str | None, doc: str):
    def make(name: str | None = None, dtype: str | None = dtype, shape=None) -> Variable:
        return tensor(dtype or config.floatX, shape or ndim_shape, name)

    make.__doc__ = doc
    return make


_KINDS = {
    "scalar": (),
    "vector": (None,),
    "matrix": (None, None),
    "row": (1, None),
    "col": (None, 1),
    "tensor3": (None, None, None),
    "tensor4": (None, None, None, None),
}

scalar = _maker((), None, "A floatX scalar.")
vector = _maker((None,), None, "A floatX vector.")
matrix = _maker((None, None), None, "A floatX matrix.")
row = _maker((1, None), None, "A floatX 1 x n matrix.")
col = _maker((None, 1), None, "A floatX n x 1 matrix.")
tensor3 = _maker((None,) * 3, None, "A floatX 3-d tensor.")
tensor4 = _maker((None,) * 4, None, "A floatX 4-d tensor.")

bscalar, bvector, bmatrix, brow, bcol, btensor3, btensor4 = (
    _maker(s, "int8", f"An int8 {k}.") for k, s in _KINDS.items()
)
iscalar, ivector, imatrix, irow, icol, itensor3, itensor4 = (
    _maker(s, "int32", f"An int32 {k}.") for k, s in _KINDS.items()
)
lscalar, lvector, lmatrix, lrow, lcol, ltensor3, ltensor4 = (
    _maker(s, "int64", f"An int64 {k}.") for k, s in _KINDS.items()
)
fscalar, fvector, fmatrix, frow, fcol, ftensor3, ftensor4 = (
    _maker(s, "float32", f"A float32 {k}.") for k, s in _KINDS.items()
)
dscalar, dvector, dmatrix, drow, dcol, dtensor3, dtensor4 = (
    _maker(s, "float64", f"A float64 {k}.") for k, s in _KINDS.items()
)
wscalar, wvector, wmatrix, wrow, wcol, wtensor3, wtensor4 = (
    _maker(s, "int16", f"An int16 {k}.") for k, s in _KINDS.items()
)


def _plural(make, kind: str):
    def make_many(*names: str, dtype: str | None = None) -> list[Variable]:
        """Several variables at once, as Theano's ``T.dmatrices('a', 'b')``."""
        if len(names) == 1 and isinstance(names[0], int):  # T.matrices(3): three unnamed
            return [make(dtype=dtype) if dtype else make() for _ in range(names[0])]
        return [make(n, dtype=dtype) if dtype else make(n) for n in names]

    make_many.__name__ = kind
    return make_many


_PLURALS = {"scalar": "scalars", "vector": "vectors", "matrix": "matrices", "row": "rows"}
_PLURALS.update({"col": "cols", "tensor3": "tensor3s", "tensor4": "tensor4s"})
for _prefix in ("", "b", "w", "i", "l", "f", "d"):
    for _kind, _many in _PLURALS.items():
        globals()[_prefix + _many] = _plural(globals()[_prefix + _kind], _prefix + _many)
PLURAL_NAMES = [p + m for p in ("", "b", "w", "i", "l", "f", "d") for m in _PLURALS.values()]
