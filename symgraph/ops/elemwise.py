"""Elementwise ops: one ``Elemwise`` per scalar op, with NumPy broadcasting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import GraphTypeError, user_line, where
from ..graph import Apply, Op, TensorType, Variable
from . import scalar as S
from .basic import as_operands, broadcast_shapes


class Elemwise(Op):
    """Applies ``scalar_op`` elementwise, broadcasting its inputs like NumPy.

    A multi-output ``Composite`` (``nout > 1``) gives a node with one output per result, each
    of the broadcast shape of the inputs it depends on: the shape it had before fusing. (One
    kernel writes them all when those shapes agree, as they do in a loop step.)
    """

    __props__ = ("scalar_op",)
    # a host scalar or single element is a kernel argument by value (placement)
    scalar_operands = "by_value"

    def __init__(self, scalar_op: S.ScalarOp):
        self.scalar_op = scalar_op

    def __str__(self) -> str:
        return self.scalar_op.name

    def make_node(self, *inputs: Any) -> Apply:
        so = self.scalar_op
        if len(inputs) != so.nin:
            raise TypeError(f"{so.name} takes {so.nin} inputs, got {len(inputs)}")
        ins = as_operands(inputs)
        trace = user_line()
        shape = broadcast_shapes([v.type.shape for v in ins], so.name, trace)
        dtypes = [v.dtype for v in ins]
        try:
            # refuse what NumPy refuses (bool - bool) here and now (a Composite checked its steps)
            getattr(so, "check_dtypes", so.numpy_dtype)(*dtypes)
        except TypeError as e:
            raise GraphTypeError(f"{e}{where(trace)}") from None
        if getattr(so, "nout", 1) > 1:
            outs = [
                TensorType(d, broadcast_shapes([ins[k].type.shape for k in used], so.name, trace))
                for d, used in zip(so.output_dtypes(*dtypes), so.inputs_of())
            ]
            return Apply(self, ins, outs)
        dtype = so.output_dtype(*dtypes)
        return Apply(self, ins, [TensorType(dtype, shape)])

    def make_impl(self, node: Apply, backend: Any):
        kernel = getattr(backend, "make_elemwise_kernel", None)  # CUDA: one generated kernel
        if kernel is not None and (impl := kernel(node)) is not None:
            return impl
        impl = self._array_impl(node, backend)
        if backend.name == "cpu":
            return impl
        to_device = backend.to_device

        def on_device(*xs):  # no kernel for these dtypes: host scalars go over as arrays
            return impl(*[to_device(x) if type(x) is np.ndarray else x for x in xs])

        return on_device

    def _array_impl(self, node: Apply, backend: Any):
        if hasattr(self.scalar_op, "make_impl"):  # a Composite runs its own fused program
            return self.scalar_op.make_impl(node, backend)
        fn = self.scalar_op.numpy(backend.xp)
        out_dtype = node.outputs[0].dtype
        in_dtypes = [v.dtype for v in node.inputs]
        if self.scalar_op.dtype_rule == "float" and S.is_float(out_dtype):
            if all(d == out_dtype for d in in_dtypes):
                return fn

            # e.g. tanh of int32 in a float32 graph: cast the inputs, not a float64 result
            def cast_inputs(*xs):
                return fn(*[x.astype(out_dtype, copy=False) for x in xs])

            return cast_inputs
        if self.scalar_op.numpy_dtype(*in_dtypes) == out_dtype:
            return fn

        def cast_output(*xs):
            return fn(*xs).astype(out_dtype)

        return cast_output

    def grad(self, inputs: Sequence[Variable], output_grads: Sequence[Variable]) -> list:
        T = _api_ns()
        if len(output_grads) > 1:  # a multi-output Composite
            grads = self.scalar_op.grad(T, list(inputs), None, list(output_grads))
        else:
            (gz,) = output_grads
            out = self(*inputs)
            grads = self.scalar_op.grad(T, list(inputs), out, gz)
        result = []
        for x, g in zip(inputs, grads):
            if g is None or not S.is_float(x.dtype):
                result.append(None)
                continue
            g = T.sum_to_shape_of(g, x)
            if g.dtype != x.dtype:
                g = T.cast(g, x.dtype)
            result.append(g)
        return result


def _api_ns():
    from .. import graph

    return graph._api


_ELEMWISE: dict[str, Elemwise] = {}


def elemwise(name: str) -> Elemwise:
    """The Elemwise op for the scalar op ``name`` (shared instances make CSE cheap)."""
    op = _ELEMWISE.get(name)
    if op is None:
        op = _ELEMWISE[name] = Elemwise(S.SCALAR_OPS[name])
    return op


def apply(name: str, *inputs: Any) -> Variable:
    return elemwise(name)(*inputs)


def cast(x: Any, dtype: str) -> Variable:
    """``x`` converted to ``dtype`` (``'floatX'`` means ``config.floatX``)."""
    from ..config import config
    from .basic import as_tensor_variable

    if dtype == "floatX":
        dtype = config.floatX
    x = as_tensor_variable(x)
    dtype = np.dtype(dtype).name
    if x.dtype == dtype:
        return x
    return Elemwise(S.cast_op(dtype))(x)
