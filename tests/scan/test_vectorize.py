"""Each batch rule against the per-step graph evaluated row by row."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.scan.vectorize import vectorize

rng = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def float64():
    with sg.config.change_flags(floatX="float64"):
        yield


def check(build, per_step, shared_vals, rows=4, grad=False):
    """``build(*per_step_vars, *shared_vars)`` vectorized over ``rows`` equals stacking it per row.

    ``per_step`` are (dtype, shape, sampler) of the per-row inputs; ``shared_vals`` arrays used
    unbatched.
    """
    steps = [T.tensor(dt, (None,) * len(shape)) for dt, shape, _ in per_step]
    shared = [T.tensor(v.dtype.name, (None,) * v.ndim) for v in shared_vals]
    out = build(*steps, *shared)
    batched_in = [T.tensor(dt, (None,) * (len(shape) + 1)) for dt, shape, _ in per_step]
    (res,) = vectorize([out], dict(zip(steps, batched_in)), {v: v for v in shared})
    assert res is not None, "no batch rule"
    value, is_batched = res
    assert is_batched
    data = [sample((rows, *shape)) for _, shape, sample in per_step]
    got = sg.function(batched_in + shared, value, on_unused_input="ignore")(*data, *shared_vals)
    f = sg.function(steps + shared, out, on_unused_input="ignore")
    want = np.stack([f(*[d[r] for d in data], *shared_vals) for r in range(rows)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if grad:  # the gradient of the batched graph equals the per-row gradients stacked
        g_batched = T.grad(T.sum(T.sqr(value)), batched_in[0])
        got = sg.function(batched_in + shared, g_batched, on_unused_input="ignore")
        g_step = T.grad(T.sum(T.sqr(out)), steps[0])
        f = sg.function(steps + shared, g_step, on_unused_input="ignore")
        want = np.stack([f(*[d[r] for d in data], *shared_vals) for r in range(rows)])
        np.testing.assert_allclose(got(*data, *shared_vals), want, rtol=1e-12, atol=1e-12)


def normal(shape):
    return rng.standard_normal(shape)


def ints(high):
    return lambda shape: rng.integers(0, high, shape).astype(np.int32)


def test_elemwise_with_rank_padding():
    check(lambda a, b, M: a * b + M, [("float64", (), normal), ("float64", (3,), normal)],
          [normal((2, 3))])  # fmt: skip


def test_dimshuffle_and_reduce():
    check(lambda v: v.dimshuffle(1, "x", 0).sum(axis=0), [("float64", (3, 2), normal)], [])
    check(lambda v: T.max(v, axis=-1, keepdims=True), [("float64", (3, 2), normal)], [])
    check(lambda v: T.argmax(v), [("float64", (5,), normal)], [])


@pytest.mark.parametrize(
    "case", ["vec-mat", "mat-vec", "both", "vec-vec", "mat.vec-both", "mat-cols", "vec-cols"]
)
def test_dot(case):
    M = normal((3, 3))
    if case == "vec-mat":
        check(lambda v, M: v.dot(M), [("float64", (3,), normal)], [M])
    elif case == "mat-vec":
        check(lambda v, M: M.dot(v), [("float64", (3,), normal)], [M])
    elif case == "both":
        check(lambda a, b: a.dot(b), [("float64", (2, 3), normal), ("float64", (3, 4), normal)], [])
    elif case == "vec-vec":
        check(lambda a, v: a.dot(v), [("float64", (3,), normal)], [normal(3)])
    elif case == "mat-cols":  # W . x_t, x_t [E, B] (hidden-major minibatch): one product
        check(lambda X, W: W.dot(X), [("float64", (3, 4), normal)], [normal((2, 3))], grad=True)
    elif case == "vec-cols":
        check(lambda X, w: w.dot(X), [("float64", (3, 4), normal)], [normal(3)], grad=True)
    else:
        check(lambda a, b: a.dot(b), [("float64", (2, 3), normal), ("float64", (3,), normal)], [])


def test_embedding_gather_with_a_per_step_index():
    U = normal((3, 6))
    check(lambda i, U: U[:, i], [("int32", (), ints(6))], [U])
    check(lambda v, M: M.dot(v) ** 2, [("float64", (3,), normal)], [normal((2, 3))], grad=True)
    check(lambda i, U: U[i] * 2, [("int32", (2,), ints(3))], [U])


def test_basic_and_advanced_indexing_of_batched_values():
    idx = np.array([2, 0], dtype=np.int64)
    check(lambda v: v[1:, ::-1][:, 0], [("float64", (3, 4), normal)], [])
    check(lambda v, i: v[:, i], [("float64", (3, 4), normal)], [idx])


def test_inc_subtensor_and_alloc():
    check(lambda v: T.inc_subtensor(v[1:], v[:2] * 3), [("float64", (3, 2), normal)], [])
    check(lambda v, z: T.set_subtensor(z[0], v), [("float64", (2,), normal)], [np.zeros((3, 2))])
    check(lambda v: T.alloc(v, 2, 3), [("float64", (3,), normal)], [])


def test_softmax_crossentropy_and_their_gradients():
    y = ints(4)
    check(lambda z: T.nnet.softmax(z)[0], [("float64", (4,), normal)], [], grad=True)
    check(lambda z: T.nnet.log_softmax(z), [("float64", (2, 4), normal)], [], grad=True)
    check(
        lambda z, t: T.nnet.categorical_crossentropy(T.nnet.softmax(z), t),
        [("float64", (2, 4), normal), ("int32", (2,), y)],
        [],
    )


def test_join_reshape_shape_and_broadcast_helpers():
    check(lambda v, c: T.concatenate([v, c]), [("float64", (2,), normal)], [normal(3)])
    check(lambda v: v.reshape((2, 3)), [("float64", (6,), normal)], [])
    check(
        lambda v, b: T.sum_to_shape_of(v, b) * 1,
        [("float64", (2, 3), normal)],
        [normal(3)],
        grad=True,
    )
    check(lambda v, b: T.broadcast_like(v, b), [("float64", (3,), normal)], [normal((2, 3))])
    check(lambda v: (T.zeros_like(v) + v.shape[0]) * v, [("float64", (2,), normal)], [])


def test_missing_rule_fails_cleanly():
    v = T.dvector("v")
    out, _ = sg.scan(lambda a: a * 2, sequences=v, mode="FAST_COMPILE")
    batched = T.dmatrix("V")
    (res,) = vectorize([out], {v: batched})
    assert res is None
