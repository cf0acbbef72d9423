"""Numeric gradient checks (float64) of every differentiable Op class in ``symgraph.ops``.

``GRAD_CASES`` is keyed by Op class name; ``test_every_differentiable_op_class_is_checked`` finds
every subclass of ``graph.Op`` defined in ``symgraph.ops`` with ``differentiable = True`` and fails
when one has no entry. Ops whose gradient is "none" (Shape, ARange, ArgReduce) are checked in a
graph where they sit on the path from the input to the cost, so their ``grad`` must run cleanly.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import symgraph.ops
import symgraph.tensor as T
from symgraph.graph import Op
from symgraph.ops.blas import contiguous
from symgraph.ops.gemm import gemm
from symgraph.ops.reduce import broadcast_like, sum_to_shape_op
from symgraph.ops.shape import make_vector
from symgraph.ops.stable import crossentropy_softmax_op, softmax_and_crossentropy_op
from symgraph.testing import check_grad

RNG = np.random.default_rng(7)


def u(*shape):
    return RNG.uniform(-2, 2, shape)


def pos(*shape):
    return RNG.uniform(0.5, 2, shape)


def distinct(*shape):  # no ties, so max/min/argmax are differentiable
    return RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.37 + RNG.uniform(0, 0.1, shape)


LABELS = np.array([1, 0, 3], "int32")

GRAD_CASES = {
    "Elemwise": [(lambda x, y: T.tanh(x) * y + T.exp(y), [u(3, 4), u(4)], {})],
    "Reduce": [
        (lambda x, a=a, k=k, kind=kind: getattr(T, kind)(x, axis=a, keepdims=k), [x], {})
        for kind, x in [("sum", u(2, 3, 4)), ("mean", u(2, 3, 4)), ("prod", pos(2, 3, 4))]
        for a, k in [(None, False), (1, False), ((0, 2), True), (-1, True)]
    ]
    + [
        (lambda x, a=a, kind=kind: getattr(T, kind)(x, axis=a), [distinct(2, 3, 4)], {})
        for kind in ("max", "min")
        for a in (None, 0, (1, 2), -1)
    ]
    + [  # prod with zeros: one zero in some rows, two in another
        (lambda x, a=a: T.prod(x, axis=a), [x], {})
        for x in [np.array([[0.0, 1.5, -2.0], [1.2, 0.7, 0.0], [0.0, 3.0, 0.0], [1.1, 0.9, 2.0]])]
        for a in (None, 0, 1)
    ],
    "BroadcastLike": [(lambda g, x: broadcast_like(g, x) * x, [u(1, 4), u(3, 4)], {})],
    "SumToShape": [(lambda g, x: sum_to_shape_op(g, x) * x, [u(3, 4), u(1, 4)], {})],
    "ArgReduce": [(lambda x: x[T.argmax(x)] + x[T.argmin(x, axis=0)].sum(), [distinct(5)], {})],
    "Dot": [
        (T.dot, [u(*xs), u(*ys)], {})
        for xs, ys in [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,))]
        + [((2, 4), (4, 3)), ((5, 2, 4), (4, 3)), ((5, 2, 4), (4,))]
    ],
    "BatchedMatMul": [
        (T.matmul, [u(5, 2, 4), u(5, 4, 3)], {}),
        (T.batched_dot, [u(5, 2, 4), u(5, 4)], {}),
        (T.batched_dot, [u(5, 4), u(5, 4, 3)], {}),
    ],
    "Softmax": [(T.nnet.softmax, [u(3, 5)], {}), (T.nnet.softmax, [u(5)], {})]
    + [(T.nnet.softmax, [u(2, 3, 4)], {})],
    "LogSoftmax": [(T.nnet.log_softmax, [u(3, 5)], {}), (T.nnet.log_softmax, [u(2, 3, 4)], {})],
    "CrossentropyCategorical1Hot": [
        (T.nnet.categorical_crossentropy, [pos(3, 4)], {"extra_inputs": [LABELS]}),
        (
            lambda x, y: T.nnet.categorical_crossentropy(T.nnet.softmax(x), y),
            [u(3, 4)],
            {"extra_inputs": [LABELS]},
        ),
    ],
    "CrossentropySoftmax1Hot": [
        (crossentropy_softmax_op, [u(3, 4)], {"extra_inputs": [LABELS]}),
    ],
    "SoftmaxAndCrossentropy1Hot": [
        (
            lambda x, y: (
                T.sum(softmax_and_crossentropy_op(x, y)[0])
                + T.sum(softmax_and_crossentropy_op(x, y)[1] * T.arange(4))
            ),
            [u(3, 4)],
            {"extra_inputs": [LABELS]},
        ),
    ],
    "Contiguous": [(lambda x: contiguous(x.T) * T.arange(3.0), [u(3, 2)], {})],
    "Gemm": [
        (lambda z, a, x, y: gemm(z, a, x, y), [u(3, 2), np.array(0.7), u(3, 4), u(4, 2)], {}),
        # z broadcast along its first axis
        (lambda z, a, x, y: gemm(z, a, x, y), [u(1, 2), np.array(-1.3), u(3, 4), u(4, 2)], {}),
        # vectors: z + alpha * x . y (gemv)
        (lambda z, a, x, y: gemm(z, a, x, y), [u(3), np.array(0.4), u(3, 4), u(4)], {}),
    ],
    "Shape": [(lambda x: x.sum() * T.cast(x.shape[0], "float64"), [u(3, 2)], {})],
    "DimShuffle": [
        (lambda x, p=p: x.dimshuffle(*p), [u(*s)], {})
        for s, p in [((2, 3), (1, 0)), ((2, 3), ("x", 1, "x", 0)), ((1, 3), (1,))]
        + [((2, 1, 3), (2, "x", 0)), ((2, 3, 4), (2, 0, 1))]
    ]
    + [(lambda x, y: x * y.dimshuffle(0, "x"), [u(3, 4), u(3)], {})],
    "Reshape": [
        (lambda x: x.reshape((4, -1)), [u(2, 3, 4)], {}),
        (lambda x: T.flatten(x, 2), [u(2, 3, 4)], {}),
        (lambda x: x.reshape((x.shape[1], x.shape[0])), [u(2, 3)], {}),
    ],
    "MakeVector": [(lambda x: make_vector(x[0], x[2] * x[1], dtype="float64"), [u(3)], {})],
    "Alloc": [
        (lambda v: T.alloc(v, 3, 4), [u(4)], {}),
        (lambda v: T.alloc(v, 2, 3, 4), [u(3, 1)], {}),
    ],
    "Join": [
        (lambda a, b: T.concatenate([a, b, a], axis=0), [u(2, 3), u(1, 3)], {}),
        (lambda a, b: T.concatenate([a, b], axis=-1), [u(2, 3), u(2, 1)], {}),
        (lambda a, b: T.stack([a, b], axis=1), [u(2, 3), u(2, 3)], {}),
    ],
    "ARange": [(lambda x: x * T.cast(T.arange(x.shape[0]), "float64"), [u(4)], {})],
    "Subtensor": [
        (lambda x, i=i: x[i], [u(3, 4, 5)], {})
        for i in (np.s_[1], np.s_[::-1, 1:3], np.s_[-1, :, ::2], np.s_[..., 2], np.s_[None, 1])
    ]
    + [
        (lambda x, i: x[i], [u(4, 3)], {"extra_inputs": [np.array([2, 0, 2, 2], "int32")]}),
        (lambda x, i: x[i, 1:], [u(4, 3)], {"extra_inputs": [np.array([3, 3], "int64")]}),
        (lambda x, i: x[:, i], [u(4, 3)], {"extra_inputs": [np.array(1, "int32")]}),
        (lambda x, i: x[i:], [u(4, 3)], {"extra_inputs": [np.array(2, "int32")]}),
    ],
    "IncSubtensor": [
        (lambda x, y: T.set_subtensor(x[1:3], y), [u(4, 3), u(2, 3)], {}),
        (lambda x, y: T.inc_subtensor(x[:, 0], y), [u(4, 3), u(4)], {}),
        (lambda x, y: T.inc_subtensor(x[::-1, 1:], y), [u(4, 3), u(2)], {}),
        (
            lambda x, y, i: T.inc_subtensor(x[i], y),
            [u(4, 3), u(5, 3)],
            {"extra_inputs": [np.array([1, 1, 0, 3, 1], "int32")]},
        ),
        (
            lambda x, y, i: T.set_subtensor(x[i], y),
            [u(4, 3), u(2, 3)],
            {"extra_inputs": [np.array([2, 0], "int32")]},
        ),
    ],
}


@pytest.mark.parametrize(
    "name, case",
    [(name, case) for name, cases in sorted(GRAD_CASES.items()) for case in cases],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_op_gradient(name, case):
    fn, inputs, kwargs = case
    check_grad(fn, inputs, **kwargs)


def differentiable_op_classes() -> set[str]:
    names = set()
    for mod in pkgutil.iter_modules(symgraph.ops.__path__):
        module = importlib.import_module(f"symgraph.ops.{mod.name}")
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Op)
                and obj is not Op
                and obj.__module__ == module.__name__
                and obj.differentiable
                and not getattr(obj, "overrides_gradient", False)  # tested in test_gradient_ops
            ):
                names.add(obj.__name__)
    return names


def test_every_differentiable_op_class_is_checked():
    found = differentiable_op_classes()
    assert {"Dot", "Elemwise", "Subtensor"} <= found  # the discovery itself works
    missing = found - set(GRAD_CASES)
    assert not missing, f"differentiable ops without a gradient check: {sorted(missing)}"
    assert set(GRAD_CASES) <= found, set(GRAD_CASES) - found


def test_check_grad_catches_wrong_and_nan_gradients():
    from symgraph.graph import Apply
    from symgraph.testing import GradientError

    class Twice(Op):  # y = 2x with a wrong (or NaN) gradient rule
        __props__ = ("bad",)

        def __init__(self, bad):
            self.bad = bad

        def make_node(self, x):
            return Apply(self, [x], [x.type])

        def perform(self, node, inputs, xp):
            return (inputs[0] * 2,)

        def grad(self, inputs, output_grads):
            if self.bad == "nan":
                return [output_grads[0] * (inputs[0] * 0) / 0]
            return [output_grads[0] * 3]

    for bad in ("wrong", "nan"):
        with pytest.raises(GradientError), np.errstate(all="ignore"):
            check_grad(lambda x, bad=bad: Twice(bad)(x), [u(3)])
