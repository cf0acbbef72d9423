"""Bad input: every mistake is reported with the variable, the op and the user's own line."""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T


def _here(offset: int = 1) -> str:
    """``test_errors.py", line N`` for the caller's line + ``offset``, as errors print it."""
    line = inspect.currentframe().f_back.f_lineno + offset
    return rf'test_errors\.py", line {line}\b'


# -- build time ---------------------------------------------------------------------------------


def test_dot_static_shape_mismatch_names_shapes_and_line():
    x = T.tensor("float32", (3, 4), name="x")
    y = T.tensor("float32", (5, 2), name="y")
    where = _here(2)
    with pytest.raises(sg.ShapeError) as info:
        T.dot(x, y)
    msg = str(info.value)
    assert "(3, 4)" in msg and "(5, 2)" in msg and "'x'" in msg and "'y'" in msg
    assert re.search(where, msg), msg


@pytest.mark.parametrize(
    "build",
    [
        lambda a, b: a + b,
        lambda a, b: a * 2 - b,
        lambda a, b: T.switch(T.gt(a, 0), a, b),
        lambda a, b: T.maximum(a, b),
    ],
)
def test_elementwise_static_shape_mismatch(build):
    a = T.tensor("float32", (3, 4), name="a")
    b = T.tensor("float32", (5, 4), name="b")
    with pytest.raises(sg.ShapeError, match=r"(?s)\(3, 4\).*\(5, 4\).*axis 0.*test_errors\.py"):
        build(a, b)


def test_other_build_time_shape_errors():
    m = T.tensor("float32", (2, 3), name="m")
    with pytest.raises(sg.ShapeError, match=r"(?s)concatenate.*test_errors\.py"):
        T.concatenate([m, T.tensor("float32", (2, 4))])
    with pytest.raises(sg.ShapeError, match=r"(?s)reshape.*test_errors\.py"):
        m.reshape((5,))
    with pytest.raises(sg.ShapeError, match=r"(?s)dimshuffle drops axis 1.*test_errors\.py"):
        m.dimshuffle(0)


# -- call time: inputs ---------------------------------------------------------------------------


def test_wrong_dtype_and_ndim_at_call_name_the_input():
    x = T.fmatrix("features")
    y = T.ivector("labels")
    f = sg.function([x, y], T.sum(x) + T.sum(y))
    ok_x, ok_y = np.ones((2, 2), "float32"), np.ones(2, "int32")
    assert float(f(ok_x, ok_y)) == 6.0
    with pytest.raises(TypeError, match=r"'features'.*dtype float32, got float64"):
        f(np.ones((2, 2)), ok_y)
    with pytest.raises(TypeError, match=r"'labels'.*dtype int32, got float32"):
        f(ok_x, np.ones(2, "float32"))
    with pytest.raises(TypeError, match=r"(?s)'features'.*2 dimension.*shape \(4,\)"):
        f(np.ones(4, "float32"), ok_y)
    with pytest.raises(TypeError, match="missing input 1"):
        f(ok_x)
    with pytest.raises(TypeError, match="takes 2 inputs, got 3"):
        f(ok_x, ok_y, ok_y)


def test_safe_and_downcast_input_conversions():
    x = T.fvector("x")
    f = sg.function([x], x * 2)
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])  # Python floats: fine
    np.testing.assert_array_equal(f(np.array([1, 2], "int8")), [2.0, 4.0])  # safe cast
    g = sg.function([x], x * 2, allow_input_downcast=True)
    np.testing.assert_array_equal(g(np.array([1.5, 2.0])), [3.0, 4.0])


def test_static_length_checked_at_call():
    x = T.tensor("float32", (3,), name="x3")
    f = sg.function([x], x + 1)
    with pytest.raises(TypeError, match=r"'x3'.*length 3 on axis 0"):
        f(np.ones(4, "float32"))


# -- compile time: inputs, outputs, updates ------------------------------------------------------


def test_missing_input_names_variable_and_both_lines():
    x, y = T.vector("x"), T.vector("forgotten")
    created = _here(-1)
    z = x + y
    compiled = _here(2)
    with pytest.raises(sg.MissingInputError) as info:
        sg.function([x], z)
    msg = str(info.value)
    assert "'forgotten'" in msg and re.search(created, msg) and re.search(compiled, msg), msg


def test_unused_input():
    x, unused = T.vector("x"), T.vector("unused")
    with pytest.raises(sg.UnusedInputError, match=r"(?s)'unused'.*test_errors\.py"):
        sg.function([x, unused], x * 2)
    f = sg.function([x, unused], x * 2, on_unused_input="ignore")
    np.testing.assert_array_equal(f(np.ones(2, "float32"), np.zeros(7, "float32")), [2, 2])
    with pytest.warns(UserWarning, match="'unused'"):
        sg.function([x, unused], x * 2, on_unused_input="warn")


def test_bad_function_inputs():
    x = T.vector("x")
    s = sg.shared(np.zeros(2, "float32"), name="s")
    with pytest.raises(TypeError, match="shared variable 's' cannot be a function input"):
        sg.function([s], s * 2)
    with pytest.raises(TypeError, match="computed from other variables"):
        sg.function([x * 2], x)
    with pytest.raises(TypeError, match="given twice"):
        sg.function([x, x], x)


def test_update_of_a_non_shared_variable():
    x = T.vector("x")
    with pytest.raises(TypeError, match=r"(?s)'x' is not a shared variable.*test_errors\.py"):
        sg.function([x], x, updates=[(x, x + 1)])


def test_update_of_wrong_dtype_or_ndim():
    w = sg.shared(np.zeros(3, "float32"), name="w")
    lr = T.dscalar("lr")
    with pytest.raises(TypeError, match=r"(?s)'w'.*float64.*float32.*T.cast.*test_errors\.py"):
        sg.function([lr], [], updates=[(w, w - lr * w)])
    with pytest.raises(TypeError, match=r"'w'.*2 dimensions instead of 1"):
        sg.function([], [], updates=[(w, T.outer(w, w))])
    with pytest.raises(TypeError, match="updated twice"):
        sg.function([], [], updates=[(w, w + 1), (w, w * 2)])


# -- run time: failing ops -----------------------------------------------------------------------


def test_runtime_dot_shape_mismatch_names_op_shapes_and_line():
    a, b = T.matrix("a"), T.matrix("b")
    where = _here()
    c = T.dot(a, b)
    f = sg.function([a, b], c * 2)
    with pytest.raises(sg.SymgraphError) as info:
        f(np.ones((3, 4), "float32"), np.ones((5, 2), "float32"))
    msg = str(info.value)
    assert "Dot" in msg and "(3, 4)" in msg and "(5, 2)" in msg and "'a'" in msg, msg
    assert re.search(where, msg), msg
    assert isinstance(info.value.original, ValueError)


def test_runtime_index_error_names_op_shapes_and_line():
    x = T.matrix("x")
    idx = T.ivector("idx")
    where = _here()
    rows = x[idx]
    f = sg.function([x, idx], rows.sum())
    with pytest.raises(sg.SymgraphError) as info:
        f(np.ones((3, 2), "float32"), np.array([0, 7], "int32"))
    msg = str(info.value)
    assert "IndexError" in msg and "Subtensor" in msg and "(3, 2)" in msg, msg
    assert re.search(where, msg), msg


def test_runtime_broadcast_error_in_elementwise():
    a, b = T.vector("a"), T.vector("b")
    where = _here()
    c = a + b
    f = sg.function([a, b], c)
    with pytest.raises(sg.SymgraphError, match=rf"(?s)add.*\(3,\).*\(4,\).*{where}"):
        f(np.ones(3, "float32"), np.ones(4, "float32"))


# -- state is never half-updated -----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["index", "dtype", "shape"])
def test_failed_call_leaves_shared_variables_unchanged(bad):
    w = sg.shared(np.arange(4, dtype="float32"), name="w")
    count = sg.shared(np.int64(0), name="count")
    i = T.lscalar("i")
    v = T.vector("v")
    # count's update does not depend on the failing node; w's update does
    f = sg.function(
        [i, v], w[i] * T.sum(v * w), updates=[(count, count + 1), (w, w * 2 + T.sum(v))]
    )
    before = w.get_value()
    f(1, np.ones(4, "float32"))
    assert int(count.get_value()) == 1
    before = w.get_value()
    args = {
        "index": (9, np.ones(4, "float32")),
        "dtype": (1, np.ones(4, "complex64")),
        "shape": (1, np.ones(3, "float32")),
    }[bad]
    with pytest.raises((sg.SymgraphError, TypeError)):
        f(*args)
    assert int(count.get_value()) == 1
    np.testing.assert_array_equal(w.get_value(), before)


def test_grad_errors_name_the_variable():
    x = T.vector("x")
    i = T.ivector("i")
    with pytest.raises(TypeError, match=r"(?s)cost must be a scalar.*test_errors\.py"):
        T.grad(x * 2, x)
    with pytest.raises(TypeError, match="'i' of integer dtype"):
        T.grad(T.sum(x), i)
    with pytest.raises(sg.DisconnectedInputError, match=r"(?s)'y'.*test_errors\.py"):
        T.grad(T.sum(x), T.vector("y"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = T.grad(T.sum(x), T.vector("y"), disconnected_inputs="ignore")
    assert g.ndim == 1


def test_symbolic_variables_refuse_python_truth_and_iteration():
    x = T.vector("x")
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)
    with pytest.raises(TypeError, match="len"):
        len(x)


def test_alloc_and_matmul_static_shape_errors():
    v = T.tensor("float32", (3,), name="v")
    with pytest.raises(sg.ShapeError, match=r"(?s)'v'.*\(2, 4\).*test_errors\.py"):
        T.alloc(v, 2, 4)
    n = T.lscalar("n")
    assert T.alloc(v, 2, n).type.shape == (2, 3)  # the value's length decides
    with pytest.raises(TypeError, match="more dimensions"):
        T.alloc(T.matrix(), 3)
    a = T.tensor("float32", (2, 3, 4))
    with pytest.raises(sg.ShapeError, match="batch shapes"):
        T.matmul(a, T.tensor("float32", (5, 4, 1)))


def test_runtime_error_in_a_fused_chain_names_every_fused_line():
    a, b = T.vector("a"), T.vector("b")
    line = inspect.currentframe().f_lineno + 1
    c = a + b
    d = T.tanh(c) * 2
    f = sg.function([a, b], d)
    with pytest.raises(sg.SymgraphError) as info:
        f(np.ones(3, "float32"), np.ones(4, "float32"))
    msg = str(info.value)
    assert "(3,)" in msg and "(4,)" in msg and "'a'" in msg and "'b'" in msg, msg
    # the add's own line is reported (directly, or among the lines a fused node came from)
    assert f'test_errors.py", line {line},' in msg or f"test_errors.py:{line}\n" in msg, msg
