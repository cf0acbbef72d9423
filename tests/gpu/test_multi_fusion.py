"""Multi-output fusion (device only): a multi-output ``Composite`` (program, NumPy evaluation,
gradient, kernel source compiled for the host and for sm_90, launcher), and the rewrite that
joins elementwise producers into their consumers' kernels, checked on hand-built graphs against
the CPU."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_harness import CXX, compile_for_device, device_compiler, run_composite_on_host
from gpu_patterns import Program, non_contiguous

import symgraph as sg
import symgraph.tensor as T
from symgraph import codegen as cg
from symgraph.backends import get_backend
from symgraph.graph import toposort
from symgraph.ops.composite import Composite
from symgraph.ops.elemwise import Elemwise
from symgraph.rewrite import multi_fusion, optimize
from symgraph.testing import check_grad


def _program(dtype: str = "float32") -> tuple[Composite, list[int]]:
    """d = x + y; e = d * m; results d, tanh(e), e * x (three results sharing d and e)."""
    p = Program(dtype, dtype, dtype)
    d = p("add", 0, 1)
    e = p("mul", d, 2)
    t = p("tanh", e)
    r = p("mul", e, 0)
    return Composite(p.dtypes, p.steps, [d, t, r]), [d, t, r]


def _reference(x, y, m):
    d = x + y
    e = d * m
    return [d, np.tanh(e), e * x]


def test_a_composite_with_several_outputs():
    c, outs = _program()
    assert c.nout == 3 and c.outputs == tuple(outs)
    assert c.output_dtypes() == ["float32"] * 3
    assert c.name.endswith("_3out")
    assert c.formula() == "add(x0, x1), tanh(mul(add(x0, x1), x2)), mul(mul(add(x0, x1), x2), x0)"
    with pytest.raises(AttributeError, match="3 outputs: read .outputs"):
        c.output  # noqa: B018 - a single-output reader must not get the first result silently
    single = Composite(c.input_dtypes, c.steps, outs[0])
    assert single != c and single.nout == 1 and single.output == outs[0]
    with pytest.raises(ValueError, match="twice"):
        Composite(c.input_dtypes, c.steps, [outs[0], outs[0]])
    with pytest.raises(ValueError, match="not among"):
        Composite(c.input_dtypes, c.steps, [outs[0], 99])


def test_each_result_has_the_broadcast_shape_of_the_inputs_it_depends_on():
    c, _ = _program()
    assert c.inputs_of() == [(0, 1), (0, 1, 2), (0, 1, 2)]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1)).astype("float32")
    y = rng.normal(size=(4, 1)).astype("float32")
    m = rng.normal(size=(5,)).astype("float32")
    got = c.numpy(np)(x, y, m)
    assert isinstance(got, tuple) and len(got) == 3
    # d = x + y depends on x and y only: (4, 1), as it was before fusing; the others (4, 5)
    assert [g.shape for g in got] == [(4, 1), (4, 5), (4, 5)]
    for g, want in zip(got, _reference(x, y, m)):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, want, rtol=1e-6)
    node = Elemwise(c).make_node(*(T.tensor("float32", s) for s in [(4, 1), (4, 1), (5,)]))
    assert [o.type.shape for o in node.outputs] == [(4, 1), (4, 5), (4, 5)]
    sub, used = c.single_output(0)  # result 0 alone, over the inputs it reads
    assert used == (0, 1) and sub.nout == 1 and sub.formula() == "add(x0, x1)"


def test_a_multi_output_node_has_one_output_per_result_and_its_gradient_checks():
    c, _ = _program("float64")
    x, y, m = (T.tensor("float64", (3, 4), name=n) for n in "xym")
    node = Elemwise(c).make_node(x, y, m)
    assert [o.type.shape for o in node.outputs] == [(3, 4)] * 3
    assert [o.dtype for o in node.outputs] == ["float64"] * 3

    def through_all(a, b, w):
        d, t, r = Elemwise(c)(a, b, w)
        return d * 2 + t * t - r

    def through_one(a, b, w):  # the other results get no gradient (None)
        return Elemwise(c)(a, b, w)[1]

    rng = np.random.default_rng(1)
    pts = [rng.normal(size=(3, 4)) for _ in range(3)]
    check_grad(through_all, pts)
    check_grad(through_one, pts)


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++) on PATH")
@pytest.mark.parametrize("how", ["contiguous", "transposed", "sliced", "reversed"])
def test_its_kernel_writes_every_result_on_the_host(how):
    c, _ = _program()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5)).astype("float32")
    y = rng.normal(size=(6, 5)).astype("float32")
    m = rng.normal(size=(1, 5)).astype("float32")  # broadcast over rows
    if how != "contiguous":
        x = non_contiguous(x, rng, how)
    outs, ks = run_composite_on_host(c, [x, y, m])
    assert [n for _, n in ks.params][3:6] == ["out0", "out1", "out2"]
    assert "out0[i] = " in ks.source and "out2[i] = " in ks.source
    for got, want in zip(outs, _reference(x, y, m)):
        np.testing.assert_allclose(got, want, rtol=4e-6, atol=1e-6)


@pytest.mark.skipif(device_compiler() is None, reason="neither NVRTC nor nvcc is available")
def test_its_kernel_compiles_for_sm90():
    c, _ = _program()
    plan = cg.plan_launch((6, 5), [(6, 5), (6, 5), (1, 5)], [(5, 1), (5, 1), (5, 1)])
    ks = cg.render_kernel(c, plan.layouts, len(plan.shape), {}, plan.index_type)
    cubin, log, _ = compile_for_device(ks.source, ks.name + ".cu")
    assert ks.name.encode() in cubin and "warning" not in log.lower(), log


def test_the_launcher_writes_the_results_it_is_given_targets_for(device):
    import cupy as cp

    c, _ = _program()
    x, y, m = (T.tensor("float32", (3, 4), name=n) for n in "xym")
    node = Elemwise(c).make_node(x, y, m)
    launch = get_backend("cuda").make_elemwise_kernel(node)
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    target = cp.empty((3, 4), "float32")
    got = launch(*[cp.asarray(a) for a in xs], out=(None, target, None))
    assert got[1] is target and got[0] is not target and got[2] is not target
    for g, want in zip(got, _reference(*xs)):
        np.testing.assert_allclose(cp.asnumpy(g), want, rtol=4e-6, atol=1e-6)


# -- the rewrite --------------------------------------------------------------------------------

W = np.random.default_rng(4).normal(size=(4, 4)).astype("float32")


def _kernels(outputs, inputs, device):
    _, nodes = optimize(inputs, outputs, "FAST_RUN", device=device)
    return [n for n in nodes if isinstance(n.op, Elemwise)]


def _backward_like(shape=(4, 3)):
    """A GRU backward step's shape: d = g + g_next and dm = d * mask are read by two kernels
    on either side of matrix products, and by the final sum."""
    g, gn, mask, s = (T.tensor("float32", shape, name=n) for n in ("g", "gn", "mask", "s"))
    w = T.constant(W)
    d = g + gn
    dm = d * mask
    a = dm * s * (1 - s)
    b = T.tanh(dm) * s
    pa = T.dot(w, a)
    c = pa * s + 1
    out = d * 2 + dm + T.dot(w, c) + T.dot(w, b)
    return [g, gn, mask, s], [out, a]


def test_producers_join_their_consumers_kernels_on_a_device_only():
    inputs, outputs = _backward_like()
    cpu = _kernels(outputs, inputs, "cpu")
    dev = _kernels(outputs, inputs, "cuda")
    assert len(cpu) == 6 and all(len(n.outputs) == 1 for n in cpu)
    # d, dm, a and b in one kernel (a is a graph output, b and d feed later nodes); c; the sum
    assert len(dev) == 3, [str(n.op) for n in dev]
    assert sorted(len(n.outputs) for n in dev) == [1, 1, 4]


def test_no_kernel_runs_both_before_and_after_a_product_it_feeds():
    x, y = (T.tensor("float32", (4, 3), name=n) for n in "xy")
    w = T.constant(W)
    p = x * y
    r = T.exp(p) + T.dot(w, p)  # r reads p, and a product of p: one kernel cannot do both
    kernels = _kernels([r], [x, y], "cuda")
    assert len(kernels) == 2 and all(len(n.outputs) == 1 for n in kernels)
    groups = multi_fusion._Groups(toposort([r]), [r])
    exp = r.owner.inputs[0].owner
    assert groups.has_cycle([p.owner, exp, r.owner])  # through the product
    assert not groups.has_cycle([p.owner, exp])


def test_kernels_that_read_one_products_result_are_one(device):
    x, y = (T.tensor("float32", (4, 3), name=n) for n in "xy")
    q = T.dot(T.constant(W), x)
    a, b = T.tanh(q) * y, q * 2 + y  # siblings: no path between them
    assert len(_kernels([a, b], [x, y], "cpu")) == 2
    (kernel,) = _kernels([a, b], [x, y], "cuda")
    assert len(kernel.outputs) == 2
    rng = np.random.default_rng(3)
    xv, yv = (rng.normal(size=(4, 3)).astype("float32") for _ in "xy")
    got = sg.function([x, y], [a, b], device="cuda")(xv, yv)
    np.testing.assert_allclose(got[0], np.tanh(W @ xv) * yv, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], (W @ xv) * 2 + yv, rtol=2e-6, atol=1e-6)
    # a sibling that reads the other through a second product runs after it: kept apart
    c = T.dot(T.constant(W), a) + q
    kernels = _kernels([c], [x, y], "cuda")
    assert len(kernels) == 2 and all(len(n.outputs) == 1 for n in kernels)


def test_siblings_of_other_or_unknown_shapes_stay_apart(device):
    # their inputs need not broadcast together: (4, 3) and (1, 5) around a (4, 1) product
    x, w = T.fmatrix("x"), T.fmatrix("w")
    u, v = T.fmatrix("u"), T.fmatrix("v")
    q = T.dot(x, w)
    a, b = q + u, q * v
    f = sg.function([x, w, u, v], [a, b])
    assert [len(n.outputs) for n in f.program.nodes if isinstance(n.op, Elemwise)] == [1, 1]
    rng = np.random.default_rng(2)
    xv, wv = rng.normal(size=(4, 2)).astype("f4"), rng.normal(size=(2, 1)).astype("f4")
    uv, vv = rng.normal(size=(4, 3)).astype("f4"), rng.normal(size=(1, 5)).astype("f4")
    got_a, got_b = f(xv, wv, uv, vv)
    np.testing.assert_allclose(got_a, xv @ wv + uv, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got_b, (xv @ wv) * vv, rtol=2e-6, atol=1e-6)
    shapes = {"x": (4, 2), "w": (2, 1), "u": (4, 3), "v": (1, 5)}
    known = [T.tensor("float32", s, name=n) for n, s in shapes.items()]
    q = T.dot(known[0], known[1])
    assert len(_kernels([q + known[2], q * known[3]], known, "cuda")) == 2


def test_values_of_unknown_shapes_join_and_of_other_ranks_stay_apart():
    a, b = T.tensor("float32", (None, 3), name="a"), T.tensor("float32", (None, 3), name="b")
    d = a + b
    unknown = _kernels([d * 2, T.dot(T.transpose(a), d)], [a, b], "cuda")
    assert sorted(len(n.outputs) for n in unknown) == [2]  # d and d * 2: one kernel
    v, m = T.tensor("float32", (3,), name="v"), T.tensor("float32", (4, 3), name="m")
    p = T.exp(v)
    wide, narrow = p + m, p * v  # p (3,) joins p * v (3,), never p + m (4, 3)
    kernels = _kernels([wide, narrow], [v, m], "cuda")
    shapes = sorted((n.outputs[0].type.shape, len(n.outputs)) for n in kernels)
    assert shapes == [((3,), 2), ((4, 3), 1)], shapes


def test_results_of_different_shapes_at_run_time_get_a_kernel_each(device):
    # static shapes unknown: a bias row and a batch join into one node; when the row is one row
    # at run time, its own result keeps one row (a kernel each), else one kernel writes both
    row, batch = T.fmatrix("row"), T.fmatrix("batch")
    scaled = T.exp(row) * 2  # read by the sum below and returned on its own
    total = scaled + batch
    f = sg.function([row, batch], [scaled, total])
    assert [len(n.outputs) for n in f.program.nodes if isinstance(n.op, Elemwise)] == [2]
    rng = np.random.default_rng(8)
    for rows in (1, 4):
        r = rng.normal(size=(rows, 3)).astype("float32")
        bt = rng.normal(size=(4, 3)).astype("float32")
        got_scaled, got_total = f(r, bt)
        assert got_scaled.shape == (rows, 3) and got_total.shape == (4, 3)
        np.testing.assert_allclose(got_scaled, np.exp(r) * 2, rtol=4e-6, atol=1e-6)
        np.testing.assert_allclose(got_total, np.exp(r) * 2 + bt, rtol=4e-6, atol=1e-6)


def test_kernels_keep_to_the_input_and_result_limits():
    xs = [T.tensor("float32", (2, 3), name=f"x{k}") for k in range(40)]
    partial, results = xs[0], []
    for x in xs[1:]:
        partial = partial * x + 1
        results.append(partial)  # every partial product is a result
    kernels = _kernels(results, xs, "cuda")
    assert len(kernels) > 1
    assert all(len(n.outputs) <= multi_fusion.MAX_RESULTS for n in kernels)
    assert all(len(n.inputs) <= multi_fusion.MAX_FUSED_INPUTS for n in kernels)


def test_joined_kernels_compute_what_the_cpu_computes(device):
    rng = np.random.default_rng(5)
    inputs, outputs = _backward_like()
    values = [rng.normal(size=(4, 3)).astype("float32") for _ in inputs]
    want = sg.function(inputs, outputs, device="cpu")(*values)
    f = sg.function(inputs, outputs, device="cuda")
    assert any(len(n.outputs) > 1 for n in f.program.nodes)
    for g, w in zip(f(*values), want):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-6)
    xs = [T.tensor("float32", (2, 3), name=f"x{k}") for k in range(40)]
    partial, results = xs[0], []
    for x in xs[1:]:
        partial = partial * x + 0.5
        results.append(partial)
    values = [rng.uniform(0.5, 1.5, (2, 3)).astype("float32") for _ in xs]
    want = sg.function(xs, results, device="cpu")(*values)
    for g, w in zip(sg.function(xs, results, device="cuda")(*values), want):
        np.testing.assert_allclose(g, w, rtol=2e-6)


def test_a_product_on_a_device_writes_into_a_target_that_fits(device):
    # a loop passes a row of its output buffer: the product it stores is then not copied there
    import cupy as cp

    from symgraph.ops.blas import Dot

    a, b = T.tensor("float32", (4, 3), name="a"), T.tensor("float32", (3, 2), name="b")
    product = Dot().make_impl(Dot().make_node(a, b), get_backend("cuda"))
    assert product.takes_out
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3, 2)).astype("float32")
    rows = cp.zeros((3, 4, 2), "float32")
    target = rows[1]
    assert product(cp.asarray(x), cp.asarray(y), out=target) is target
    np.testing.assert_allclose(rows.get()[1], x @ y, rtol=1e-6)
    assert not rows.get()[0].any() and not rows.get()[2].any()
    for unfit in (cp.zeros((2, 4), "float32").T, cp.zeros((4, 2), "float64")):
        got = product(cp.asarray(x), cp.asarray(y), out=unfit)  # ignored: a fresh result
        assert got is not unfit and not unfit.get().any()
        np.testing.assert_allclose(got.get(), x @ y, rtol=1e-6)


def test_a_joined_kernel_of_shape_arithmetic_runs_on_the_host(device):
    # shapes are host values on a device (placement): their arithmetic, joined like any other
    # elementwise work, runs as one NumPy program with several results
    x = T.fmatrix("x")
    doubled = x.shape * 2
    wider, narrower = doubled + 1, doubled - 1
    out = T.alloc(np.float32(1), wider[0], narrower[1])
    f = sg.function([x], [out, wider, narrower])
    joined = [n for n in f.program.nodes if isinstance(n.op, Elemwise) and len(n.outputs) > 1]
    assert len(joined) == 1 and len(joined[0].outputs) == 2  # doubled stays inside
    got_out, got_wider, got_narrower = f(np.ones((2, 3), "float32"))
    assert got_out.shape == (5, 5)
    np.testing.assert_array_equal(got_wider, [5, 7])
    np.testing.assert_array_equal(got_narrower, [3, 5])
