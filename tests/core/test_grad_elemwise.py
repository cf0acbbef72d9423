"""Numeric gradient checks (float64) of every differentiable scalar op, through Elemwise.

``GRAD_CASES`` is keyed by scalar-op name; ``test_every_differentiable_scalar_op_is_checked``
fails when an op of ``SCALAR_OPS`` that lets a gradient through has no entry here. Inputs are
chosen away from kinks and discontinuities (|x| > 0.1 for abs/relu, no ties for maximum, ...).
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.scalar import SCALAR_OPS, cast_op
from symgraph.testing import check_grad

RNG = np.random.default_rng(42)


def away_from_zero(shape, lo=0.2, hi=2.0):
    return RNG.uniform(lo, hi, shape) * RNG.choice([-1, 1], shape)


def pos(shape, lo=0.5, hi=2.0):
    return RNG.uniform(lo, hi, shape)


def u(shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape)


def not_near_integers(shape):
    return RNG.integers(-3, 3, shape) + RNG.uniform(0.1, 0.4, shape)


def _unary(name, values):
    return (lambda x: T.elemwise_apply(name, x), [values], {})


def _binary(name, a, b):
    return (lambda x, y: T.elemwise_apply(name, x, y), [a, b], {})


GRAD_CASES = {
    "add": [_binary("add", u((3, 4)), u((4,))), _binary("add", u(()), u((2, 3)))],
    "sub": [_binary("sub", u((3, 1)), u((1, 4)))],
    "mul": [_binary("mul", u((3, 4)), u((3, 1))), _binary("mul", u((2, 3)), u(()))],
    "true_div": [_binary("true_div", u((3, 4)), away_from_zero((4,), 0.5))],
    "mod": [
        _binary("mod", pos((3, 4), 0.1, 0.4), pos((4,), 1.0, 2.0)),
        _binary("mod", pos((5,), 2.2, 2.4), pos((5,), 1.0, 1.05)),  # floor(x / y) == 2
    ],
    "pow": [_binary("pow", pos((3, 4)), u((4,), -1.5, 2.0))],
    "maximum": [_binary("maximum", u((3, 4)), u((3, 4)) + 0.01)],
    "minimum": [_binary("minimum", u((3, 4)), u((4,)) + 0.01)],
    "neg": [_unary("neg", u((3, 2)))],
    "abs": [_unary("abs", away_from_zero((3, 2)))],
    "sgn": [_unary("sgn", away_from_zero((3, 2)))],
    "exp": [_unary("exp", u((3, 2)))],
    "expm1": [_unary("expm1", u((3, 2)))],
    "log": [_unary("log", pos((3, 2)))],
    "log1p": [_unary("log1p", pos((3, 2), -0.5, 2.0))],
    "log2": [_unary("log2", pos((3, 2)))],
    "log10": [_unary("log10", pos((3, 2)))],
    "sqrt": [_unary("sqrt", pos((3, 2)))],
    "sqr": [_unary("sqr", u((3, 2)))],
    "reciprocal": [_unary("reciprocal", away_from_zero((3, 2), 0.5))],
    "tanh": [_unary("tanh", u((3, 2)))],
    "sin": [_unary("sin", u((3, 2)))],
    "cos": [_unary("cos", u((3, 2)))],
    "sigmoid": [_unary("sigmoid", u((3, 2), -6, 6))],
    "hard_sigmoid": [_unary("hard_sigmoid", np.array([-4.0, -2.0, -0.3, 0.7, 2.2, 3.5]))],
    "softplus": [_unary("softplus", u((3, 2), -6, 6))],
    "relu": [_unary("relu", away_from_zero((3, 2), 0.1))],
    "floor": [_unary("floor", not_near_integers((3, 2)))],
    "ceil": [_unary("ceil", not_near_integers((3, 2)))],
    "round": [_unary("round", not_near_integers((3, 2)))],
    "identity": [_unary("identity", u((3, 2)))],
    "switch": [
        (
            lambda a, b, c: T.switch(c, a, b),
            [u((3, 4)), u((4,))],
            {"extra_inputs": [RNG.random((3, 1)) > 0.5]},
        ),
        (lambda a, b: T.switch(T.gt(a, 0), a * b, -a), [away_from_zero((3, 4)), u((3, 4))], {}),
    ],
    "clip": [
        (
            lambda x, lo, hi: T.clip(x, lo, hi),
            [np.array([-3.0, -0.5, 0.2, 0.9, 2.5]), np.full(5, -1.0), np.array(1.0)],
            {},
        ),
        (lambda x: T.clip(x, -1.0, 1.0), [np.array([-3.0, -0.5, 0.2, 0.9, 2.5])], {}),
    ],
    "cast": [
        # through float32 and back: finite differences need a coarse step at float32 precision
        (
            lambda x: T.cast(T.cast(x, "float32"), "float64"),
            [u((3, 2))],
            {"eps": 1e-2, "rtol": 1e-4},
        ),
        (
            lambda x: T.cast(x, "float32") * T.cast(x, "float32"),
            [u((4,))],
            {"eps": 1e-2, "rtol": 1e-3},
        ),
    ],
}


@pytest.mark.parametrize(
    "name, case",
    [(name, case) for name, cases in sorted(GRAD_CASES.items()) for case in cases],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_scalar_op_gradient(name, case):
    fn, inputs, kwargs = case
    check_grad(fn, inputs, **kwargs)


def _lets_gradient_through(op) -> bool:
    """True when the op's gradient rule returns a gradient for some float64 input."""
    if op.grad is None:
        return False
    with sg.config.change_flags(floatX="float64"):
        ins = [T.dscalar() for _ in range(op.nin)]
        if op.name == "switch":
            ins[0] = T.tensor("bool", ())
        try:
            out = T.elemwise_apply(op.name, *ins)
        except TypeError:  # not defined for floats (bitwise ops)
            return False
        return any(g is not None for g in op.grad(T, ins, out, T.dscalar()))


def test_every_differentiable_scalar_op_is_checked():
    cast_op("float32"), cast_op("float64")  # make sure casts are declared
    differentiable = {
        "cast" if name.startswith("cast_") else name
        for name, op in SCALAR_OPS.items()
        if _lets_gradient_through(op)
    }
    missing = differentiable - set(GRAD_CASES)
    assert not missing, f"differentiable scalar ops without a gradient check: {sorted(missing)}"
    # and nothing is listed that the table does not declare as differentiable
    assert set(GRAD_CASES) <= differentiable, set(GRAD_CASES) - differentiable


@pytest.mark.parametrize("name", ["lt", "eq", "int_div", "and_", "isnan"])
def test_non_differentiable_scalar_ops_block_the_gradient(name):
    x = T.dvector("x")
    if name == "and_":
        y = T.and_(T.cast(x, "int32"), 1)
    else:
        y = T.elemwise_apply(name, *[x] * SCALAR_OPS[name].nin)
    cost = T.sum(T.cast(y, "float64")) + T.sum(x)
    g = sg.function([x], T.grad(cost, x))(np.array([1.5, -2.0]))
    np.testing.assert_array_equal(g, [1.0, 1.0])  # only the T.sum(x) term
