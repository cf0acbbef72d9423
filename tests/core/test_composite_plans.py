"""The straight-line NumPy plans of fused programs: multi-ufunc ops are written inline (no helper
call per op), constants are 0-d arrays, and the results equal the unfused ops bit for bit, also
when the output buffer is one of the inputs."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.composite import Composite
from symgraph.ops.scalar import SCALAR_OPS


def _program(dtypes, steps, output):
    return Composite(dtypes, [(SCALAR_OPS[op], args) for op, args in steps], output)


def _unfused(c: Composite, xs):
    """Each step with the scalar table's own NumPy function (what an unfused Elemwise runs)."""
    values = list(xs)
    with np.errstate(all="ignore"):
        for info, (op, _) in zip(c.infos, c.steps):
            values.append(np.asarray(op.numpy(np)(*[values[a] for a in info.args])))
    return values[c.output]


# every multi-ufunc variant, chained so that each one feeds the next
CHAIN = [
    ("hard_sigmoid", (0,)),  # 3
    ("sigmoid", (1,)),  # 4
    ("gt", (0, 2)),  # 5  (bool)
    ("switch", (5, 3, 4)),  # 6
    ("clip", (6, 2, 4)),  # 7
    ("relu", (1,)),  # 8
    ("softplus", (8,)),  # 9
    ("mul", (7, 9)),  # 10
    ("round", (10,)),  # 11
    ("add", (11, 10)),  # 12
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inline_variants_equal_the_table_ops_bit_for_bit(dtype):
    c = _program([dtype, dtype, dtype], CHAIN, 12)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 33)) * 4).astype(dtype)
    x.flat[:3] = [np.nan, np.inf, -np.inf]
    y = (rng.standard_normal((4, 33)) * 60).astype(dtype)  # sigmoid(-60) overflows exp
    lo = np.array(0.1, dtype)
    ref = _unfused(c, [x, y, lo])
    fn = c.numpy(np)
    np.testing.assert_array_equal(fn(x, y, lo), ref)
    with np.errstate(over="raise"):  # the plan silences exp's expected overflow itself
        np.testing.assert_array_equal(fn(x, y, lo), ref)


def test_output_may_be_the_input_of_a_one_input_variant():
    c = _program(["float32"], [("hard_sigmoid", (0,))], 1)
    fn = c.numpy(np)
    assert fn.accepts_out
    x = np.linspace(-4, 4, 17, dtype=np.float32)
    ref = _unfused(c, [x])
    assert fn(x, out=x) is x
    np.testing.assert_array_equal(x, ref)


def test_plans_call_ufuncs_directly_with_zero_d_constants():
    c = _program(["float32", "float32"], [("add", (0, 1)), ("hard_sigmoid", (2,))], 3)
    fn = c.numpy(np)
    fn(np.zeros(8, np.float32), np.ones(8, np.float32))
    src = fn.program.source
    assert "hard_sigmoid" not in src  # inline ufunc calls, no helper function per op
    assert "maximum(" in src and "minimum(" in src
    # measured: positional out is the faster form except for maximum/minimum
    assert "add_0(x0, x1, b0)" in src or "add_0(x0, x1, out)" in src
    assert "maximum(out, k_float32_0, out=out)" in src
    env = fn.plans[next(iter(fn.plans))].__globals__
    consts = {k: v for k, v in env.items() if k.startswith("k_")}
    assert consts and all(v.ndim == 0 and v.dtype == np.float32 for v in consts.values())


def test_intermediates_of_one_size_and_different_shapes_get_different_scratch_memory():
    # (n, 1) and (1, n) intermediates live at once; with scratch memory shared by size they
    # must still be two buffers
    x = T.dmatrix("x")
    y = T.dmatrix("y")
    out = T.exp(x) * 2 + T.tanh(y) * 3 + T.exp(x) * T.tanh(y)
    f = sg.function([x, y], out)
    xv = np.arange(4.0).reshape(4, 1) / 4
    yv = np.arange(4.0).reshape(1, 4) / 4
    for _ in range(2):
        expected = np.exp(xv) * 2 + np.tanh(yv) * 3 + np.exp(xv) * np.tanh(yv)
        np.testing.assert_allclose(f(xv, yv), expected, rtol=1e-12)
