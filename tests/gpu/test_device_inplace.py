"""Writing into a dying input on a device: only ops that would otherwise copy an input
(``destroyable_input``: inc_subtensor, gemm, the softmax/cross-entropy pair) skip the copy;
elementwise kernels always write fresh arrays there. And ``inc_subtensor`` of a basic index adds
into the region in place (one kernel, not an add and a copy back)."""

from __future__ import annotations

import emulated_cupy
import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.subtensor import IncSubtensor

STATS = emulated_cupy.STATS


def _line(program, node):
    for line, n in program.line_to_node.items():
        if n is node:
            return program.source.splitlines()[line - 1]
    return ""


def test_a_chain_of_inc_subtensors_adds_into_one_array_on_a_device(device):
    a, b = T.fmatrix("a"), T.fmatrix("b")
    z = T.zeros((4, 3), dtype="float32")
    w = T.inc_subtensor(z[:2], a * 2)  # into a fresh array of zeros
    w = T.inc_subtensor(w[2:], b)  # w dies here: added into in place, not copied
    values = [np.ones((2, 3), "float32"), np.full((2, 3), 3, "float32")]
    want = sg.function([a, b], w, device="cpu")(*values)
    f = sg.function([a, b], w)
    incs = [n for n in f.program.nodes if isinstance(n.op, IncSubtensor)]
    assert len(incs) == 2
    assert "_inplace(" in _line(f.program, incs[1]), f.program.source
    kernels = [n for n in f.program.nodes if isinstance(n.op, Elemwise)]
    assert not any("out=" in _line(f.program, n) for n in kernels)
    f(*values)
    emulated_cupy.reset_stats()
    np.testing.assert_array_equal(f(*values), want)
    # the doubling kernel, the zeros, and one add per region: no copy of w, no copy back
    assert STATS["kernels"] == 4, STATS


def test_inc_subtensor_of_every_kind_of_index_matches_numpy(device):
    x, y = T.fmatrix("x"), T.fvector("y")
    s = T.fscalar("s")
    xv = np.arange(12, dtype="float32").reshape(3, 4)
    yv = np.arange(4, dtype="float32")
    cases = [
        (T.inc_subtensor(x[1], y), lambda: _inc(xv, 1, yv)),  # a row: a view
        (T.inc_subtensor(x[:, 1:3], y[:2]), lambda: _inc(xv, (slice(None), slice(1, 3)), yv[:2])),
        (T.inc_subtensor(x[2, 3], s), lambda: _inc(xv, (2, 3), 5.0)),  # one element
    ]
    for expr, reference in cases:
        for dev in ("cpu", "cuda"):
            f = sg.function([x, y, s], expr, device=dev, on_unused_input="ignore")
            got = f(xv, yv, np.float32(5))
            np.testing.assert_array_equal(got, reference(), err_msg=f"{expr.owner.op} on {dev}")
    np.testing.assert_array_equal(xv, np.arange(12, dtype="float32").reshape(3, 4))  # untouched


def _inc(x, idx, y):
    out = x.copy()
    out[idx] += y
    return out
