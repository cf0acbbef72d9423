"""The table of scalar operations: every elementwise op is declared here once, completely.

An entry gives the op's name, arity, output dtype rule, NumPy implementation (written against an
array module ``xp`` so it also runs on CuPy), C expression (used by ``codegen`` to render fused CUDA
kernels), and gradient (built from tensor ops, so the backward pass is a graph too).

C expressions are C++ templates over the argument expressions ``{0}``, ``{1}``, ... and the output C
type ``{T}``; they use the overloaded math functions that both CUDA and the host C++ library have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import config

# dtype rules ---------------------------------------------------------------------------------


def upcast(*dtypes: str) -> str:
    return np.result_type(*dtypes).name


def upcast_float(*dtypes: str) -> str:
    """Upcast, then turn integers and bools into ``config.floatX`` (Theano's float upgrade)."""
    d = upcast(*dtypes)
    return d if np.dtype(d).kind in "fc" else config.floatX


def to_bool(*dtypes: str) -> str:
    return "bool"


def upcast_int(*dtypes: str) -> str:
    d = upcast(*dtypes)
    return d if np.dtype(d).kind in "iub" else d


def _first_bool_then_upcast(*dtypes: str) -> str:  # switch(cond, a, b)
    return upcast(*dtypes[1:])


DTYPE_RULES: dict[str, Callable[..., str]] = {
    "upcast": upcast,
    "float": upcast_float,
    "bool": to_bool,
    "switch": _first_bool_then_upcast,
}


@dataclass(frozen=True, eq=False)
class ScalarOp:
    """One row of the table."""

    name: str
    nin: int
    dtype_rule: str
    numpy: Callable[[Any], Callable[..., Any]]  # xp -> elementwise function over arrays
    c: str  # C++ expression template
    grad: Callable[..., list] | None = None  # (T, inputs, output, gz) -> list of grads or None
    out_dtype: str | None = None  # fixed output dtype (casts)
    commutative: bool = False
    extra: tuple = field(default=())

    def output_dtype(self, *dtypes: str) -> str:
        if self.out_dtype is not None:
            return self.out_dtype
        if self.dtype_rule == "natural":
            return self.numpy_dtype(*dtypes)
        return DTYPE_RULES[self.dtype_rule](*dtypes)

    def numpy_dtype(self, *dtypes: str) -> str:
        """The dtype NumPy itself returns for inputs of these dtypes (probed once, cached).

        Raises TypeError when NumPy has no loop for them (``bool - bool``, ``~float``).
        """
        key = (self.name, dtypes)
        if key not in _NUMPY_DTYPES:
            args = [np.ones(1, dtype=d) for d in dtypes]
            try:
                with np.errstate(all="ignore"):
                    _NUMPY_DTYPES[key] = np.asarray(self.numpy(np)(*args)).dtype.name
            except TypeError as e:
                _NUMPY_DTYPES[key] = e
        result = _NUMPY_DTYPES[key]
        if isinstance(result, Exception):
            raise TypeError(f"{self.name} is not defined for dtypes {', '.join(dtypes)} ({result})")
        return result

    def check_dtypes(self, *dtypes: str) -> None:
        """Raise TypeError when the op cannot take inputs of these dtypes, so that the graph
        refuses them while it is built rather than when it runs. Ops of the "float" rule see
        their integer inputs converted to the output float first (``Elemwise`` does that)."""
        if self.out_dtype is None and self.dtype_rule == "float":
            dtypes = (upcast_float(*dtypes),) * len(dtypes)
        self.numpy_dtype(*dtypes)

    def c_expr(self, args: list[str], ctype: str) -> str:
        return self.c.format(*args, T=ctype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScalarOp) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


SCALAR_OPS: dict[str, ScalarOp] = {}
_NUMPY_DTYPES: dict[tuple, str | Exception] = {}


def _ufunc(name: str) -> Callable[[Any], Callable[..., Any]]:
    return lambda xp: getattr(xp, name)


def declare(name, nin, rule, numpy, c, grad=None, **kw) -> ScalarOp:
    op = ScalarOp(name, nin, rule, numpy if callable(numpy) else _ufunc(numpy), c, grad, **kw)
    SCALAR_OPS[name] = op
    return op


# NumPy implementations that need more than one ufunc ------------------------------------------


def _sigmoid(xp):
    # 1 / (1 + exp(-x)) keeps full relative precision for very negative x (where the tanh form
    # rounds to 0 and log(sigmoid(x)) becomes -inf); exp(-x) = inf there gives exactly 0.
    def sigmoid(x):
        if x.dtype.kind != "f":  # Elemwise casts integers first; this keeps direct calls working
            x = x.astype(np.float64)
        e = xp.negative(x)
        with np.errstate(over="ignore"):
            xp.exp(e, out=e)
        e += x.dtype.type(1)
        return xp.reciprocal(e, out=e)

    return sigmoid


def _hard_sigmoid(xp):
    def hard_sigmoid(x):
        y = x * x.dtype.type(0.2) + x.dtype.type(0.5)
        return xp.minimum(xp.maximum(y, y.dtype.type(0)), y.dtype.type(1))

    return hard_sigmoid


def _softplus(xp):
    return lambda x: xp.logaddexp(x.dtype.type(0), x)


def _relu(xp):
    return lambda x: xp.maximum(x, x.dtype.type(0))


def _round(xp):
    # half to even like NumPy's round; integers and bools come back unchanged
    def round_(x):
        return xp.rint(x) if x.dtype.kind == "f" else x.copy()

    return round_


def _switch(xp):
    return lambda c, a, b: xp.where(c, a, b)


def _clip(xp):
    return lambda x, lo, hi: xp.minimum(xp.maximum(x, lo), hi)


def _identity(xp):
    return lambda x: x.copy() if hasattr(x, "copy") else x


def _sgn(xp):
    return xp.sign


# Gradients: (T, inputs, output, gz) -> list. ``None`` means "no gradient flows to this input"
# (integer inputs, comparisons). T is the symgraph.tensor namespace.


def _g_add(T, ins, out, gz):
    return [gz, gz]


def _g_sub(T, ins, out, gz):
    return [gz, -gz]


def _g_mul(T, ins, out, gz):
    x, y = ins
    return [gz * y, gz * x]


def _g_div(T, ins, out, gz):
    x, y = ins
    return [gz / y, -gz * x / (y * y)]


def _g_pow(T, ins, out, gz):
    x, y = ins
    gx = gz * y * x ** (y - 1)
    gy = gz * out * T.log(T.switch(T.gt(x, 0), x, 1))
    return [gx, gy]


def _g_max(T, ins, out, gz):
    x, y = ins
    m = T.ge(x, y)  # ties send the gradient to x, as NumPy's maximum returns x
    return [T.switch(m, gz, 0), T.switch(m, 0, gz)]


def _g_min(T, ins, out, gz):
    x, y = ins
    m = T.le(x, y)
    return [T.switch(m, gz, 0), T.switch(m, 0, gz)]


_float = "float"
_up = "upcast"
_nat = "natural"  # NumPy's own result dtype (bool // bool is int8 there)

declare("add", 2, _up, "add", "({0} + {1})", _g_add, commutative=True)
declare("sub", 2, _up, "subtract", "({0} - {1})", _g_sub)
declare("mul", 2, _up, "multiply", "({0} * {1})", _g_mul, commutative=True)
declare("true_div", 2, _float, "true_divide", "(({T}){0} / ({T}){1})", _g_div)
declare("int_div", 2, _nat, "floor_divide", "floor_div({0}, {1})", lambda T, i, o, g: [None, None])
declare(
    "mod", 2, _nat, "remainder", "py_mod({0}, {1})", lambda T, i, o, g: [g, -g * (i[0] // i[1])]
)
declare("pow", 2, _nat, "power", "pow(({T}){0}, ({T}){1})", _g_pow)
declare("maximum", 2, _up, "maximum", "max_({0}, {1})", _g_max, commutative=True)
declare("minimum", 2, _up, "minimum", "min_({0}, {1})", _g_min, commutative=True)

declare("neg", 1, _up, "negative", "(-{0})", lambda T, i, o, g: [-g])
declare("abs", 1, _up, "absolute", "abs({0})", lambda T, i, o, g: [g * T.sgn(i[0])])
declare("sgn", 1, _up, _sgn, "sgn({0})", lambda T, i, o, g: [T.zeros_like(i[0])])
declare("exp", 1, _float, "exp", "exp(({T}){0})", lambda T, i, o, g: [g * o])
declare("expm1", 1, _float, "expm1", "expm1(({T}){0})", lambda T, i, o, g: [g * (o + 1)])
declare("log", 1, _float, "log", "log(({T}){0})", lambda T, i, o, g: [g / i[0]])
declare("log1p", 1, _float, "log1p", "log1p(({T}){0})", lambda T, i, o, g: [g / (i[0] + 1)])
declare("log2", 1, _float, "log2", "log2(({T}){0})", lambda T, i, o, g: [g / (i[0] * np.log(2.0))])
declare(
    "log10", 1, _float, "log10", "log10(({T}){0})", lambda T, i, o, g: [g / (i[0] * np.log(10.0))]
)
declare("sqrt", 1, _float, "sqrt", "sqrt(({T}){0})", lambda T, i, o, g: [g * 0.5 / o])
declare("sqr", 1, "natural", "square", "({0} * {0})", lambda T, i, o, g: [g * 2 * i[0]])
declare("reciprocal", 1, _float, "reciprocal", "(({T})1 / {0})", lambda T, i, o, g: [-g * o * o])
declare("tanh", 1, _float, "tanh", "tanh(({T}){0})", lambda T, i, o, g: [g * (1 - o * o)])
declare("sin", 1, _float, "sin", "sin(({T}){0})", lambda T, i, o, g: [g * T.cos(i[0])])
declare("cos", 1, _float, "cos", "cos(({T}){0})", lambda T, i, o, g: [-g * T.sin(i[0])])
declare(
    "sigmoid",
    1,
    _float,
    _sigmoid,
    "(({T})1 / (({T})1 + exp(-({T}){0})))",
    lambda T, i, o, g: [g * o * (1 - o)],
)
declare(
    "hard_sigmoid",
    1,
    _float,
    _hard_sigmoid,
    "min_(max_(({T}){0} * ({T})0.2 + ({T})0.5, ({T})0), ({T})1)",
    lambda T, i, o, g: [T.switch(T.and_(T.gt(o, 0), T.lt(o, 1)), g * 0.2, 0)],
)
declare(
    "softplus",
    1,
    _float,
    _softplus,
    "(max_(({T}){0}, ({T})0) + log1p(exp(-abs(({T}){0}))))",
    lambda T, i, o, g: [g * T.sigmoid(i[0])],
)
declare(
    "relu",
    1,
    _up,
    _relu,
    "max_({0}, ({T})0)",
    lambda T, i, o, g: [T.switch(T.gt(i[0], 0), g, 0)],
)
# Rounding an integer gives the integer itself (NumPy 2's floor/ceil/round keep integer dtypes).
declare("floor", 1, _up, "floor", "floor({0})", lambda T, i, o, g: [T.zeros_like(i[0])])
declare("ceil", 1, _up, "ceil", "ceil({0})", lambda T, i, o, g: [T.zeros_like(i[0])])
declare("round", 1, _up, _round, "rint({0})", lambda T, i, o, g: [T.zeros_like(i[0])])
declare("identity", 1, _up, _identity, "{0}", lambda T, i, o, g: [g])

_no_grad = lambda T, i, o, g: [None] * len(i)  # noqa: E731
for _name, _uf, _c in [
    ("lt", "less", "({0} < {1})"),
    ("le", "less_equal", "({0} <= {1})"),
    ("gt", "greater", "({0} > {1})"),
    ("ge", "greater_equal", "({0} >= {1})"),
    ("eq", "equal", "({0} == {1})"),
    ("neq", "not_equal", "({0} != {1})"),
]:
    declare(_name, 2, "bool", _uf, _c, _no_grad)
declare("and_", 2, _up, "bitwise_and", "({0} & {1})", _no_grad, commutative=True)
declare("or_", 2, _up, "bitwise_or", "({0} | {1})", _no_grad, commutative=True)
declare("xor", 2, _up, "bitwise_xor", "({0} ^ {1})", _no_grad, commutative=True)
declare("invert", 1, _up, "invert", "invert_({0})", _no_grad)
declare("isnan", 1, "bool", "isnan", "isnan({0})", _no_grad)
declare("isinf", 1, "bool", "isinf", "isinf({0})", _no_grad)

declare(
    "switch",
    3,
    "switch",
    _switch,
    "({0} ? ({T}){1} : ({T}){2})",
    lambda T, i, o, g: [None, T.switch(i[0], g, 0), T.switch(i[0], 0, g)],
)
declare(
    "clip",
    3,
    "upcast",
    _clip,
    "min_(max_(({T}){0}, ({T}){1}), ({T}){2})",
    lambda T, i, o, g: [
        T.switch(T.and_(T.ge(i[0], i[1]), T.le(i[0], i[2])), g, 0),
        T.switch(T.lt(i[0], i[1]), g, 0),
        T.switch(T.gt(i[0], i[2]), g, 0),
    ],
)

C_TYPES = {
    "float32": "float",
    "float64": "double",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "bool": "bool",
}


def _cast_grad(T, ins, out, gz):
    x = ins[0]
    if np.dtype(x.dtype).kind not in "fc":
        return [None]
    return [T.cast(gz, x.dtype)]


def cast_op(dtype: str) -> ScalarOp:
    """The scalar op that converts to ``dtype`` (one per dtype, declared on first use)."""
    name = f"cast_{np.dtype(dtype).name}"
    if name not in SCALAR_OPS:
        d = np.dtype(dtype).name
        declare(
            name,
            1,
            "upcast",
            lambda xp, d=d: lambda x: x.astype(d),
            f"(({C_TYPES[d]}){{0}})",
            _cast_grad,
            out_dtype=d,
        )
    return SCALAR_OPS[name]


def is_float(dtype: str) -> bool:
    return np.dtype(dtype).kind in "fc"
