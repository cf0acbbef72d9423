"""``Composite`` on NumPy: results, dtypes, broadcasting, buffer reuse, equality (for CSE),
gradient (float64 numeric check), and errors that name the fused nodes' lines."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_patterns import Program, non_contiguous, patterns, random_inputs

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.composite import Composite, single
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.scalar import SCALAR_OPS
from symgraph.testing import check_grad

PATTERNS = patterns()


@pytest.mark.parametrize("pat", PATTERNS, ids=[p.name for p in PATTERNS])
def test_patterns_match_numpy_on_strided_and_broadcast_inputs(pat):
    rng = np.random.default_rng(5)
    fn = pat.composite.numpy(np)
    for how in ["transposed", "sliced", "reversed"]:
        ins = random_inputs(pat, rng)
        before = [x.copy() for x in ins]
        views = [non_contiguous(x, rng, how) for x in ins]
        out = fn(*views)
        assert out.dtype == pat.composite.output_dtype() == "float32"
        np.testing.assert_allclose(out, pat.reference(*ins), rtol=4e-6, atol=1e-6)
        for x, b in zip(ins, before):
            np.testing.assert_array_equal(x, b)  # inputs are never written


def test_fused_program_equals_the_unfused_graph_bit_for_bit():
    """The same expression compiled without fusion (FAST_COMPILE) and as one Composite."""
    pat = next(p for p in PATTERNS if p.name == "gru_update")
    a, c, s = T.matrix("a"), T.matrix("c"), T.matrix("s")
    b = T.vector("b")
    z = T.nnet.hard_sigmoid(a + b)
    unfused = sg.function([a, b, c, s], (1 - z) * c + z * s, mode="FAST_COMPILE")
    fused_node = Elemwise(pat.composite)(a, b, c, s, T.constant(np.float32(1)))
    fused = sg.function([a, b, c, s], fused_node, mode="FAST_COMPILE")
    rng = np.random.default_rng(0)
    ins = [rng.standard_normal(sh).astype(np.float32) for sh in [(5, 8), (8,), (5, 8), (5, 8)]]
    np.testing.assert_array_equal(fused(*ins), unfused(*ins))


def test_mixed_dtypes_follow_each_ops_rule_like_unfused_elemwise():
    i, f = T.ivector("i"), T.vector("f")
    expr_fn = lambda i, f: T.tanh(i) * f + i // 2  # noqa: E731  (tanh of int32 is float32)
    unfused = sg.function([i, f], expr_fn(i, f), mode="FAST_COMPILE")
    p = Program("int32", "float32", "int32")
    v = p("add", p("mul", p("tanh", 0), 1), p("int_div", 0, 2))
    c = p.build(v)
    fn = c.numpy(np)
    ii = np.arange(-4, 5, dtype=np.int32)
    ff = np.linspace(-1, 1, 9, dtype=np.float32)
    out = fn(ii, ff, np.array(2, np.int32))
    ref = unfused(ii, ff)
    assert out.dtype == ref.dtype == c.output_dtype()  # float32 + int32 is float64 in NumPy
    np.testing.assert_array_equal(out, ref)


def test_one_fresh_array_per_call_and_buffers_are_reused():
    pat = next(p for p in PATTERNS if p.name == "lstm_cell")
    fn = pat.composite.numpy(np)
    rng = np.random.default_rng(1)
    ins = random_inputs(pat, rng)
    out1 = fn(*ins)
    out2 = fn(*ins)
    assert out1 is not out2 and not np.shares_memory(out1, out2)
    np.testing.assert_array_equal(out1, out2)
    assert len(fn.plans) == 1  # same shapes: the same plan
    src = fn.program.source
    assert src.count("empty(") == 1  # the output; scratch buffers live across calls
    n_scratch = len({w for w in src.replace(",", " ").replace(")", " ").split() if w[:2] == "b0"})
    assert n_scratch <= 1  # sigmoid(f)*c + sigmoid(i)*tanh(g) needs one scratch buffer
    fn(*[x[:2] for x in ins])
    assert len(fn.plans) == 2  # a new shape gets its own plan


def test_output_broadcasts_to_every_inputs_shape_and_may_be_an_input():
    c = Composite(["float32", "float32"], [(SCALAR_OPS["exp"], (0,))], 2)
    out = c.numpy(np)(np.zeros(3, np.float32), np.zeros((2, 3), np.float32))
    assert out.shape == (2, 3) and np.all(out == 1)  # like Elemwise: all inputs broadcast
    ident = Composite(["float32"], [], 0)
    x = np.arange(3, dtype=np.float32)
    y = ident.numpy(np)(x)
    assert y is not x and np.array_equal(y, x)


def test_zero_d_inputs_and_unused_steps():
    p = Program("float32", "float32")
    p("log", 0)  # a dead step: not evaluated, not in the kernel
    c = p.build(p("mul", 0, 1))
    assert c.needed_steps() == [1]
    out = c.numpy(np)(np.array(2, np.float32), np.float32(-3))
    assert out.shape == () and out == -6 and out.dtype == np.float32


def test_structural_equality_merges_identical_composites():
    def build(origin):
        p = Program("float32", "float32")
        c = p.build(p("tanh", p("add", 0, 1)))
        return Composite(c.input_dtypes, c.steps, c.output, origin=origin)

    a, b = build(["add at a.py:1"]), build(["add at b.py:9"])
    assert a == b and hash(a) == hash(b) and Elemwise(a) == Elemwise(b)
    p = Program("float32", "float32")
    other = p.build(p("tanh", p("sub", 0, 1)))
    assert a != other
    assert Composite(["float64", "float32"], a.steps, a.output) != a
    assert a.name == "fused_add_tanh" and a.formula() == "tanh(add(x0, x1))"


def test_malformed_programs_are_refused():
    add = SCALAR_OPS["add"]
    with pytest.raises(TypeError, match="takes 2 arguments"):
        Composite(["float32"], [(add, (0,))], 1)
    with pytest.raises(ValueError, match="reads values"):
        Composite(["float32"], [(add, (0, 1))], 1)
    with pytest.raises(ValueError, match="output"):
        Composite(["float32"], [(add, (0, 0))], 5)
    with pytest.raises(TypeError):
        single(SCALAR_OPS["invert"], ["float32"])  # NumPy has no ~float


@pytest.mark.parametrize("name", ["gru_update", "lstm_cell", "rmsprop_param", "leaky_relu"])
def test_gradient_of_fused_programs_float64(name):
    pat = next(p for p in PATTERNS if p.name == name)
    c64 = Composite(["float64"] * pat.composite.nin, pat.composite.steps, pat.composite.output)
    const = {k: np.float64(v) for k, v in pat.constants.items()}
    free = [k for k in range(c64.nin) if k not in const]

    def fn(*xs):
        args, it = [], iter(xs)
        for k in range(c64.nin):
            args.append(T.constant(const[k]) if k in const else next(it))
        return Elemwise(c64)(*args)

    rng = np.random.default_rng(2)
    points = []
    for k in free:
        lo = 0.5 if k in pat.positive else -2.0
        points.append(rng.uniform(lo, 2.0, pat.shapes[k]))
    if name == "leaky_relu":
        points[0][np.abs(points[0]) < 0.05] = 0.3  # away from the kink
    assert check_grad(fn, points, n_tests=2) < 1e-5


def test_gradient_skips_integer_inputs():
    p = Program("float32", "int32")
    c = p.build(p("mul", 0, p("cast_float32", 1) if "cast_float32" in SCALAR_OPS else 1))
    x, i = T.vector("x"), T.ivector("i")
    y = Elemwise(c)(x, i)
    gx = sg.grad(T.sum(y), x)
    f = sg.function([x, i], gx)
    np.testing.assert_allclose(f(np.ones(3, np.float32), np.array([1, 2, 3], np.int32)), [1, 2, 3])


def test_runtime_error_in_a_fused_node_names_the_fused_lines():
    x, y = T.vector("x"), T.vector("y")
    out = T.tanh(x + y) * 2  # this line is what the error must point at
    f = sg.function([x, y], out)
    with pytest.raises(sg.errors.SymgraphError) as info:
        f(np.ones(3, np.float32), np.ones(4, np.float32))
    msg = str(info.value)
    assert "test_composite.py" in msg
    assert "out = T.tanh(x + y) * 2" in msg
