"""Every scalar op of ``SCALAR_OPS`` as an Elemwise, against NumPy: values, dtypes, broadcasting.

The reference functions are written here independently of the ops' own implementations. Where
symgraph deliberately differs from NumPy the reference says so (``_floatx``): Theano's rule that
float functions of integers (``exp``, ``/``, ...) give ``config.floatX`` instead of NumPy's float16
or float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.scalar import SCALAR_OPS
from symgraph.testing import check_against_numpy

DTYPES = ["float32", "float64", "int32", "int8", "bool"]


def _floatx(fn):
    """NumPy ``fn`` applied after casting integer/bool inputs to floatX (Theano's float rule)."""

    def ref(*xs):
        if all(x.dtype.kind != "f" for x in xs):
            xs = [x.astype(sg.config.floatX) for x in xs]
        return fn(*xs)

    return ref


def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _softplus(x):
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(x))).astype(x.dtype)


def _hard_sigmoid(x):
    return np.clip(x * x.dtype.type(0.2) + x.dtype.type(0.5), 0, 1).astype(x.dtype)


def _round(x):
    return x if x.dtype == bool else np.round(x)  # rounding a bool is the bool itself


def _relu(x):
    return np.where(x > 0, x, np.zeros_like(x))


# name -> (reference, domain of each input: "any", "pos" (> 0), "small" (0 < x < 4))
UNARY = {
    "neg": (np.negative, "any"),
    "abs": (np.abs, "any"),
    "sgn": (np.sign, "any"),
    "exp": (_floatx(np.exp), "any"),
    "expm1": (_floatx(np.expm1), "any"),
    "log": (_floatx(np.log), "pos"),
    "log1p": (_floatx(np.log1p), "pos"),
    "log2": (_floatx(np.log2), "pos"),
    "log10": (_floatx(np.log10), "pos"),
    "sqrt": (_floatx(np.sqrt), "pos"),
    "sqr": (np.square, "any"),
    "reciprocal": (_floatx(lambda x: 1 / x), "pos"),
    "tanh": (_floatx(np.tanh), "any"),
    "sin": (_floatx(np.sin), "any"),
    "cos": (_floatx(np.cos), "any"),
    "sigmoid": (_floatx(_sigmoid), "any"),
    "hard_sigmoid": (_floatx(_hard_sigmoid), "any"),
    "softplus": (_floatx(_softplus), "any"),
    "relu": (_relu, "any"),
    "floor": (np.floor, "any"),
    "ceil": (np.ceil, "any"),
    "round": (_round, "any"),
    "identity": (lambda x: x.copy(), "any"),
    "invert": (np.invert, "any"),
    "isnan": (np.isnan, "any"),
    "isinf": (np.isinf, "any"),
}
BINARY = {
    "add": (np.add, "any"),
    "sub": (np.subtract, "any"),
    "mul": (np.multiply, "any"),
    "true_div": (_floatx(np.true_divide), "pos"),
    "int_div": (np.floor_divide, "pos"),
    "mod": (np.mod, "pos"),
    "pow": (np.power, "small"),
    "maximum": (np.maximum, "any"),
    "minimum": (np.minimum, "any"),
    "lt": (np.less, "any"),
    "le": (np.less_equal, "any"),
    "gt": (np.greater, "any"),
    "ge": (np.greater_equal, "any"),
    "eq": (np.equal, "any"),
    "neq": (np.not_equal, "any"),
    "and_": (np.bitwise_and, "any"),
    "or_": (np.bitwise_or, "any"),
    "xor": (np.bitwise_xor, "any"),
}
TERNARY = {
    "switch": (lambda c, a, b: np.where(c, a, b), "any"),
    "clip": (lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), "any"),
}
TABLES = {**UNARY, **BINARY, **TERNARY}


def _values(shape, dtype, domain, rng):
    if dtype == "bool":
        return rng.random(shape) > 0.5 if domain == "any" else np.ones(shape, bool)
    if domain == "small":
        lo, hi = 1, 4
    elif domain == "pos":
        lo, hi = 1, 6
    else:
        lo, hi = -5, 6
    if np.dtype(dtype).kind == "f":
        return rng.uniform(0.5 if lo > 0 else -3, 3 if domain == "small" else hi, shape).astype(
            dtype
        )
    return rng.integers(lo, hi, shape).astype(dtype)


def test_every_scalar_op_has_a_reference():
    declared = {n for n in SCALAR_OPS if not n.startswith("cast_")}
    assert declared == set(TABLES), declared ^ set(TABLES)


def _check(name, dtypes, shapes, rng):
    ref, domain = TABLES[name]
    values = [_values(s, d, domain, rng) for s, d in zip(shapes, dtypes)]
    if name == "switch":
        values[0] = values[0] > values[0].mean() if values[0].dtype != bool else values[0]
    if name == "clip":
        values[1], values[2] = np.minimum(values[1], values[2]), np.maximum(values[1], values[2])
    try:
        with np.errstate(all="ignore"):
            ref(*values)
    except TypeError:
        # NumPy refuses these dtypes (e.g. bool - bool): so must the graph, while building
        syms = [T.tensor(d, (None,) * len(s)) for s, d in zip(shapes, dtypes)]
        with pytest.raises(TypeError, match=name):
            T.elemwise_apply(name, *syms)
        return
    with np.errstate(all="ignore"):
        check_against_numpy(lambda *xs: T.elemwise_apply(name, *xs), ref, values)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_vs_numpy(name, dtype):
    _check(name, [dtype], [(2, 3)], np.random.default_rng(0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_vs_numpy(name, dtype):
    _check(name, [dtype, dtype], [(3, 1), (1, 4)], np.random.default_rng(1))


@pytest.mark.parametrize(
    "dtypes",
    [("int8", "int32"), ("bool", "int8"), ("int32", "float32"), ("float32", "float64")],
)
@pytest.mark.parametrize("name", ["add", "mul", "true_div", "maximum", "lt", "eq", "pow"])
def test_binary_mixed_dtypes(name, dtypes):
    _check(name, list(dtypes), [(2, 3), (3,)], np.random.default_rng(2))


@pytest.mark.parametrize(
    "shapes",
    [[(3, 4), (4,)], [(3, 1), (1, 4)], [(), (2, 3)], [(2, 1, 3), (4, 1)], [(0, 3), (1, 3)]],
)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "true_div", "pow", "ge", "maximum"])
def test_binary_broadcasting(name, shapes):
    _check(name, ["float32", "float32"], shapes, np.random.default_rng(3))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("name", sorted(TERNARY))
def test_ternary_vs_numpy(name, dtype):
    first = "bool" if name == "switch" else dtype
    _check(name, [first, dtype, dtype], [(2, 1, 3), (4, 1), (3,)], np.random.default_rng(4))


def test_switch_with_python_scalars_and_int_condition():
    x = T.fvector("x")
    y = T.switch(T.gt(x, 0), x, 0)
    z = T.switch(T.cast(T.gt(x, 0), "int8"), 1.5, x)  # any integer condition is a truth value
    f = sg.function([x], [y, z])
    xv = np.array([-1, 2, -3], "float32")
    got_y, got_z = f(xv)
    assert y.dtype == got_y.dtype == "float32" and z.dtype == got_z.dtype == "float32"
    np.testing.assert_array_equal(got_y, np.where(xv > 0, xv, 0))
    np.testing.assert_array_equal(got_z, np.where(xv > 0, 1.5, xv))


def test_clip_with_python_bounds_keeps_dtype():
    x = T.fmatrix("x")
    y = T.clip(x, -0.5, 0.5)
    xv = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    got = sg.function([x], y)(xv)
    assert y.dtype == got.dtype == "float32"
    np.testing.assert_array_equal(got, np.clip(xv, np.float32(-0.5), np.float32(0.5)))


@pytest.mark.parametrize(
    "build, ref, dtype",
    [
        (lambda x: x * 0.5, lambda x: x * 0.5, "float32"),
        (lambda x: 0.5 * x, lambda x: 0.5 * x, "float32"),
        (lambda x: 2 - x, lambda x: 2 - x, "float32"),
        (lambda x: x**2, lambda x: x**2, "float32"),
        (lambda x: x / 3, lambda x: x / 3, "float64"),
        (lambda x: x + 1, lambda x: x + 1, "int32"),
        (lambda x: x * 3, lambda x: x * 3, "int8"),
        (lambda x: 7 // x, lambda x: 7 // x, "int32"),
        (lambda x: x % 3, lambda x: x % 3, "int32"),
        (lambda x: x > 1, lambda x: x > 1, "int32"),
        (lambda x: T.eq(x, 1.5), lambda x: x == 1.5, "float32"),
        (lambda x: x * 0.5, lambda x: x * 0.5, "int32"),  # int32 with a float32: float64
        (lambda x: x + np.float64(0.5), lambda x: x + np.float64(0.5), "float32"),
        (lambda x: x & True, lambda x: x & True, "bool"),
        (lambda x: -x, lambda x: -x, "int8"),
        (lambda x: abs(x), lambda x: abs(x), "float64"),
    ],
)
def test_python_scalar_operands_follow_numpy(build, ref, dtype):
    values = np.arange(1, 7).reshape(2, 3).astype(dtype)
    check_against_numpy(build, ref, [values])


def test_python_float_with_small_integers_gives_floatx():
    # NumPy would give float64; symgraph follows Theano (the Python float becomes a floatX
    # constant, and int8 with float32 is float32): a deliberate difference
    iv = T.bvector("iv")
    y = iv * 0.5
    got = sg.function([iv], y)(np.array([1, 2, 3], "int8"))
    assert y.dtype == got.dtype == sg.config.floatX
    np.testing.assert_allclose(got, [0.5, 1.0, 1.5])


def test_weak_int_too_large_for_int8_widens():
    b = T.bvector("b")
    y = b + 1000
    got = sg.function([b], y)(np.array([1, 2], "int8"))
    assert y.dtype == got.dtype == "int64"
    np.testing.assert_array_equal(got, [1001, 1002])


CAST_DTYPES = ["float32", "float64", "int32", "int8", "int64", "bool", "uint8"]


@pytest.mark.parametrize("src", ["float32", "float64", "int32", "int8", "bool"])
@pytest.mark.parametrize("dst", CAST_DTYPES)
def test_cast(src, dst):
    values = np.array([[-2.7, -1.0, 0.0], [0.4, 1.5, 3.9]]).astype(src)
    with np.errstate(all="ignore"):
        check_against_numpy(lambda x: T.cast(x, dst), lambda x: x.astype(dst), [values])


def test_cast_floatx_and_same_dtype_is_identity():
    x = T.ivector("x")
    assert T.cast(x, "int32") is x
    y = T.cast(x, "floatX")
    assert y.dtype == sg.config.floatX
    f = sg.function([x], x.astype("float64"))
    assert f(np.array([1, 2], "int32")).dtype == np.float64


def test_equality_operator_is_identity_as_in_theano():
    x = T.vector("x")
    assert (x == x) is True and (x == 1.5) is False  # T.eq builds the comparison


def test_operators_build_the_right_ops():
    x, y = T.imatrix("x"), T.imatrix("y")
    a = np.array([[1, -2], [3, 4]], "int32")
    b = np.array([[2, 3], [-1, 5]], "int32")
    exprs = [x & y, x | y, x ^ y, ~x, x < y, x <= y, x > y, x >= y, x // y, x % y, x @ y]
    refs = [a & b, a | b, a ^ b, ~a, a < b, a <= b, a > b, a >= b, a // b, a % b, a @ b]
    got = sg.function([x, y], exprs)(a, b)
    for g, r, e in zip(got, refs, exprs):
        assert g.dtype == r.dtype == e.dtype
        np.testing.assert_array_equal(g, r)
