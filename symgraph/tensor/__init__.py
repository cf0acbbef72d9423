"""``symgraph.tensor`` (import as ``T``): tensor types, constructors and operations with Theano's
names and semantics (``T.ivector``, ``T.dot``, ``T.nnet.softmax``, ...)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import graph as _graph
from ..config import config
from ..grad import grad, jacobian
from ..graph import Constant, SharedVariable, TensorType, Variable
from ..ops import reduce as _red
from ..ops.basic import as_tensor_variable, constant
from ..ops.blas import batched_dot, dot, matmul
from ..ops.elemwise import apply as elemwise_apply
from ..ops.elemwise import cast
from ..ops.reduce import broadcast_like, sum_to_shape_of
from ..ops.scalar import is_float
from ..ops.shape import (
    alloc,
    arange,
    concatenate,
    dimshuffle,
    flatten,
    full_like,
    make_vector,
    ones,
    ones_like,
    reshape,
    shape,
    stack,
    transpose,
    zeros,
    zeros_like,
)
from ..ops.subtensor import getitem, inc_subtensor, set_subtensor
from . import nnet
from . import types as _types
from .types import (
    bcol,
    bmatrix,
    brow,
    bscalar,
    btensor3,
    btensor4,
    bvector,
    col,
    dcol,
    dmatrix,
    drow,
    dscalar,
    dtensor3,
    dtensor4,
    dvector,
    fcol,
    fmatrix,
    frow,
    fscalar,
    ftensor3,
    ftensor4,
    fvector,
    icol,
    imatrix,
    irow,
    iscalar,
    itensor3,
    itensor4,
    ivector,
    lcol,
    lmatrix,
    lrow,
    lscalar,
    ltensor3,
    ltensor4,
    lvector,
    matrix,
    row,
    scalar,
    tensor,
    tensor3,
    tensor4,
    vector,
)

for _name in _types.PLURAL_NAMES:  # T.dmatrices('a', 'b'), T.iscalars(...), ...
    globals()[_name] = getattr(_types, _name)

# -- elementwise ---------------------------------------------------------------------------------


def _unary(name: str):
    def f(x: Any) -> Variable:
        return elemwise_apply(name, x)

    f.__name__ = name
    f.__doc__ = f"Elementwise {name}."
    return f


def _binary(name: str):
    def f(x: Any, y: Any) -> Variable:
        return elemwise_apply(name, x, y)

    f.__name__ = name
    f.__doc__ = f"Elementwise {name}, with NumPy broadcasting."
    return f


add, sub, mul, true_div, int_div, mod, pow, maximum, minimum = (
    _binary(n)
    for n in ("add", "sub", "mul", "true_div", "int_div", "mod", "pow", "maximum", "minimum")
)
lt, le, gt, ge, eq, neq = (_binary(n) for n in ("lt", "le", "gt", "ge", "eq", "neq"))
and_, or_, xor = (_binary(n) for n in ("and_", "or_", "xor"))
bitwise_and, bitwise_or, bitwise_xor = and_, or_, xor
(neg, abs, sgn, exp, expm1, log, log1p, log2, log10, sqrt, sqr, tanh, sin, cos) = (
    _unary(n)
    for n in (
        "neg", "abs", "sgn", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "sqr",
        "tanh", "sin", "cos",
    )
)  # fmt: skip
sigmoid, hard_sigmoid, softplus, floor, ceil, invert, isnan, isinf = (
    _unary(n)
    for n in ("sigmoid", "hard_sigmoid", "softplus", "floor", "ceil", "invert", "isnan", "isinf")
)
reciprocal = inv = _unary("reciprocal")
round = _unary("round")  # noqa: A001 - Theano's name
identity = tensor_copy = _unary("identity")
abs_ = abs
true_divide = true_div
divide = true_div
floor_div = int_div
power = pow
not_equal = neq
equal = eq
bitwise_not = invert


def switch(cond: Any, ift: Any, iff: Any) -> Variable:
    """``ift`` where ``cond`` is true, else ``iff`` (elementwise, broadcasting)."""
    return elemwise_apply("switch", cond, ift, iff)


where = switch


def clip(x: Any, min: Any, max: Any) -> Variable:  # noqa: A002 - Theano's signature
    return elemwise_apply("clip", x, min, max)


def relu(x: Any, alpha: float = 0) -> Variable:
    return nnet.relu(x, alpha)


# -- reductions ----------------------------------------------------------------------------------


def sum(x: Any, axis: Any = None, keepdims: bool = False, dtype=None, acc_dtype=None) -> Variable:  # noqa: A001
    r = _red.reduce("sum", x, axis, keepdims)
    return cast(r, dtype) if dtype else r


def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype=None) -> Variable:
    r = _red.reduce("prod", x, axis, keepdims)
    return cast(r, dtype) if dtype else r


def mean(x: Any, axis: Any = None, keepdims: bool = False, dtype=None) -> Variable:
    r = _red.reduce("mean", x, axis, keepdims)
    return cast(r, dtype) if dtype else r


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    return _red.reduce("max", x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    return _red.reduce("min", x, axis, keepdims)


def all(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    return _red.reduce("all", x, axis, keepdims)


def any(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    return _red.reduce("any", x, axis, keepdims)


def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    return _red.argreduce("argmax", x, axis, keepdims)


def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    return _red.argreduce("argmin", x, axis, keepdims)


def var(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    x = as_tensor_variable(x)
    m = mean(x, axis, keepdims=True)
    return mean(sqr(x - m), axis, keepdims)


def std(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    return sqrt(var(x, axis, keepdims))


def norm(x: Any, L: int = 2, axis: Any = None) -> Variable:
    if L == 1:
        return sum(abs(x), axis)
    if L == 2:
        return sqrt(sum(sqr(x), axis))
    raise ValueError("norm supports L=1 and L=2")


# -- shape helpers -------------------------------------------------------------------------------


def shape_padleft(x: Any, n_ones: int = 1) -> Variable:
    x = as_tensor_variable(x)
    return dimshuffle(x, ["x"] * n_ones + list(range(x.ndim)))


def shape_padright(x: Any, n_ones: int = 1) -> Variable:
    x = as_tensor_variable(x)
    return dimshuffle(x, list(range(x.ndim)) + ["x"] * n_ones)


def shape_padaxis(x: Any, axis: int) -> Variable:
    x = as_tensor_variable(x)
    pattern: list = list(range(x.ndim))
    pattern.insert(axis % (x.ndim + 1), "x")
    return dimshuffle(x, pattern)


def swapaxes(x: Any, a: int, b: int) -> Variable:
    x = as_tensor_variable(x)
    order = list(range(x.ndim))
    a, b = a % x.ndim, b % x.ndim
    order[a], order[b] = order[b], order[a]
    return dimshuffle(x, order)


def addbroadcast(x: Any, *axes: int) -> Variable:
    """Kept for Theano code: length-1 axes broadcast at run time here, so this checks nothing."""
    return as_tensor_variable(x)


def patternbroadcast(x: Any, broadcastable: Any) -> Variable:
    return as_tensor_variable(x)


unbroadcast = addbroadcast


def outer(x: Any, y: Any) -> Variable:
    return shape_padright(x) * shape_padleft(y)


def fill(model: Any, value: Any) -> Variable:
    return full_like(model, value)


def second(a: Any, b: Any) -> Variable:
    return broadcast_like(b, a)


def eye(n: Any, dtype: str | None = None) -> Variable:
    i = arange(n)
    return cast(eq(shape_padright(i), shape_padleft(i)), dtype or config.floatX)


def one_hot(y: Any, n: int, dtype: str | None = None) -> Variable:
    return nnet.one_hot(y, n, dtype)


# -- methods and properties on variables (x.sum(), x.T, x.shape, ...) ---------------------------


def _method(fn):
    return lambda x: functools.partial(fn, x)


def _astype(x, dtype):
    return cast(x, dtype)


def _dimshuffle_method(x, *pattern):
    return dimshuffle(x, *pattern)


def _reshape_method(x, *shape, ndim=None):
    if len(shape) == 1:
        shape = shape[0]
    return reshape(x, shape, ndim=ndim)


VARIABLE_METHODS = {
    "T": transpose,
    "shape": shape,
    "size": lambda x: prod(shape(x)),
    "sum": _method(sum),
    "prod": _method(prod),
    "mean": _method(mean),
    "max": _method(max),
    "min": _method(min),
    "all": _method(all),
    "any": _method(any),
    "argmax": _method(argmax),
    "argmin": _method(argmin),
    "var": _method(var),
    "std": _method(std),
    "norm": _method(norm),
    "dot": _method(dot),
    "reshape": _method(_reshape_method),
    "dimshuffle": _method(_dimshuffle_method),
    "flatten": _method(flatten),
    "transpose": lambda x: lambda *axes: transpose(x, axes or None),
    "astype": _method(_astype),
    "clip": _method(clip),
    "copy": _method(identity),
    "exp": _method(exp),
    "log": _method(log),
    "sqrt": _method(sqrt),
    "round": _method(round),
    "swapaxes": _method(swapaxes),
    "nonzero_values": None,
}
VARIABLE_METHODS = {k: v for k, v in VARIABLE_METHODS.items() if v is not None}


def verify_grad(*args: Any, **kwargs: Any) -> None:
    """Theano's ``T.verify_grad(fun, pt, rng=...)``: see :func:`symgraph.testing.verify_grad`."""
    from ..testing import verify_grad as _verify_grad

    _verify_grad(*args, **kwargs)


_graph.bind_tensor_api(__import__(__name__, fromlist=["_"]))

__all__ = [
    n
    for n, v in dict(globals()).items()
    if not n.startswith("_")
    and n not in ("annotations", "np", "functools", "Any")
    and (not isinstance(v, type(functools)) or n in ("nnet", "shared_randomstreams"))
]
