"""On a device, shapes and the small integer arithmetic on them stay on the host, host scalars
reach kernels by value, and nothing else crosses between host and device (see
``symgraph/compile/placement.py``). Run against CuPy emulated on the CPU, which refuses host
arrays where CuPy does and counts every copy and synchronisation."""

from __future__ import annotations

import emulated_cupy
import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile.placement import is_small, operand_conversion, plan_placement
from symgraph.ops.shape import Alloc, Reshape, Shape

STATS = emulated_cupy.STATS


def placed(f):
    nodes = f.program.nodes
    host, host_nodes = plan_placement(f.inputs, nodes, f.program.host_inputs)
    return nodes, host, host_nodes


def test_shape_arithmetic_runs_on_the_host_and_the_data_on_the_device(device):
    x = T.matrix("x")
    flat = x.reshape((x.shape[0] * x.shape[1],))
    f = sg.function([x], [flat * 2, T.zeros((x.shape[1], 3)), x.shape])
    nodes, host, host_nodes = placed(f)
    for k, node in enumerate(nodes):
        if isinstance(node.op, Shape) or all(is_small(o) for o in node.outputs):
            assert k in host_nodes, node  # the shape and the product of its entries
        else:
            assert k not in host_nodes, node  # reshape, the doubling, the allocation
    reshape = next(n for n in nodes if isinstance(n.op, Reshape))
    assert id(reshape.inputs[1]) in host and operand_conversion(reshape, 1) is None
    alloc = next(n for n in nodes if isinstance(n.op, Alloc))
    assert operand_conversion(alloc, 1) == "scalar"  # sizes are NumPy integers
    xv = np.arange(6, dtype="float32").reshape(2, 3)
    emulated_cupy.reset_stats()
    doubled, zeros, shape = f(xv)
    np.testing.assert_array_equal(doubled, xv.ravel() * 2)
    assert zeros.shape == (3, 3) and not zeros.any() and list(shape) == [2, 3]
    # x goes over, the two arrays come back (the shape never was on the device); reading the
    # sizes never waited for the device
    assert STATS["to_device"] == 1, emulated_cupy.events("to_device")
    assert STATS["syncs"] == 2, emulated_cupy.events("syncs")


def test_a_scalar_input_is_a_kernel_argument_by_value(device):
    w = sg.shared(np.ones(4, "float32"), name="w")
    g = T.vector("g")
    lr = T.scalar("lr")
    step = sg.function([g, lr], [], updates=[(w, w - lr * g)])
    assert step.program.host_inputs == [1]
    emulated_cupy.reset_stats()
    for _ in range(3):
        step(np.full(4, 2.0, "float32"), 0.25)
    np.testing.assert_allclose(w.get_value(), 1 - 3 * 0.5)
    assert STATS["to_device"] == 3 and STATS["launches"] == 3  # g each call; lr never copied
    assert STATS["syncs"] == 1  # get_value


def test_mean_divides_by_a_size_computed_on_the_host(device):
    x = T.matrix("x")
    f = sg.function([x], [T.mean(x), T.mean(x, axis=0)])
    xv = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    emulated_cupy.reset_stats()
    m, m0 = f(xv)
    np.testing.assert_allclose(m, xv.mean(), rtol=1e-6)
    np.testing.assert_allclose(m0, xv.mean(axis=0), rtol=1e-6)
    assert STATS["to_device"] == 1, emulated_cupy.events("to_device")


def test_integer_scalars_index_and_update_like_on_the_cpu(device):
    # an index that is a host NumPy integer selects a row; a 0-d device array would gather a
    # copy in CuPy, and the increment would be lost
    m = T.matrix("m")
    i = T.iscalar("i")
    outs = [m[i], T.inc_subtensor(m[i], 1.0), T.set_subtensor(m[:, i], 5.0), m[i:].sum()]
    mv = np.arange(12, dtype="float32").reshape(3, 4)
    for iv in (0, 2, -1):
        with sg.config.change_flags(device="cpu"):
            expected = sg.function([m, i], outs)(mv, iv)
        got = sg.function([m, i], outs)(mv, iv)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_a_host_index_vector_is_copied_to_the_device_for_a_gather(device):
    m = T.matrix("m")
    rows = T.arange(m.shape[0])  # computed on the host from the shape
    f = sg.function([m], m[rows, rows] + m[::-1][rows, 0])
    mv = np.arange(9, dtype="float32").reshape(3, 3)
    with sg.config.change_flags(device="cpu"):
        expected = sg.function([m], m[rows, rows] + m[::-1][rows, 0])(mv)
    np.testing.assert_array_equal(f(mv), expected)


def test_shared_state_on_the_other_device_is_an_error_naming_it(device):
    with sg.config.change_flags(device="cpu"):
        host_w = sg.shared(np.ones(3, "float32"), name="host_w")  # this line is named
    dev_w = sg.shared(np.ones(3, "float32"), name="dev_w")
    x = T.vector("x")
    with pytest.raises(sg.SymgraphError, match=r"device='cuda'.*'host_w' lives on the CPU") as e:
        sg.function([x], x * host_w)
    assert "test_placement.py" in str(e.value) and "host_w = sg.shared" in str(e.value)
    with pytest.raises(sg.SymgraphError, match=r"device='cpu'.*'dev_w' lives on a CUDA device"):
        sg.function([x], [], updates=[(dev_w, x)], device="cpu")
