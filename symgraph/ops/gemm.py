"""``z + alpha * dot(x, y)`` as one BLAS call (``gemm`` with ``beta = 1``).

The SGD step of a weight matrix, ``W - lr * dot(a, b)``, computes the product into a temporary,
scales it and subtracts it: three passes over a weight-sized array. ``gemm`` adds the scaled
product into ``W`` as BLAS computes it. The ``gemm_products`` rewrite (``symgraph/rewrite/gemm.py``)
introduces this op; users rarely write it.
"""

from __future__ import annotations

from typing import Any

from ..graph import Apply, Op, TensorType
from .basic import as_tensor_variable


class Gemm(Op):
    """``z + alpha * dot(x, y)`` for a matrix ``x``, matrices or vectors ``z`` and ``y`` (one
    column: ``gemv``) and a scalar ``alpha``."""

    scalar_operands = True  # alpha stays a host number: no copy, no synchronising test

    # The linker may let the result overwrite ``z`` when ``z`` dies here (the SGD update of a
    # shared weight then writes straight into the weight's own array).
    destroyable_input = 0
    fresh_outputs = True  # never a view of an input (unless the linker lets it overwrite z)

    def make_node(self, z: Any, alpha: Any, x: Any, y: Any) -> Apply:
        z, alpha, x, y = (as_tensor_variable(v) for v in (z, alpha, x, y))
        if (alpha.ndim, x.ndim) != (0, 2) or z.ndim != y.ndim or y.ndim not in (1, 2):
            raise TypeError(
                "gemm takes (matrix, scalar, matrix, matrix) or (vector, scalar, matrix, "
                f"vector), got {z, alpha, x, y}"
            )
        if len({z.dtype, alpha.dtype, x.dtype, y.dtype}) != 1:
            raise TypeError("gemm: all operands must have one dtype")
        shape = tuple(
            a if a is not None else b
            for a, b in zip(z.type.shape, (x.type.shape[0], *y.type.shape[1:]))
        )
        return Apply(self, [z, alpha, x, y], [TensorType(z.dtype, shape)])

    def make_impl(self, node, backend, inplace: bool = False):
        xp = backend.xp
        fast = getattr(backend, "gemm_into", None)

        def gemm(z, alpha, x, y):
            out = z if inplace else z.copy()
            if fast is not None and fast(out, alpha, x, y):  # one BLAS call
                return out
            if alpha != 1:  # scale the smaller operand, not the product
                if x.size <= y.size:
                    x = x * alpha
                else:
                    y = y * alpha
            product = xp.dot(x, y)
            if product.shape == out.shape:
                out += product
                return out
            return out + product  # a length-1 axis of z broadcast: a new array

        return gemm

    def grad(self, inputs, output_grads):
        from .. import tensor as T

        z, alpha, x, y = inputs
        (gz,) = output_grads
        return [
            T.sum_to_shape_of(gz, z),
            T.sum(gz * T.dot(x, y)),
            alpha * (T.outer(gz, y) if y.ndim == 1 else T.dot(gz, y.T)),
            alpha * T.dot(x.T, gz),
        ]


gemm_op = Gemm()


def gemm(z: Any, alpha: Any, x: Any, y: Any) -> Any:
    """``z + alpha * dot(x, y)``."""
    return gemm_op(z, alpha, x, y)
