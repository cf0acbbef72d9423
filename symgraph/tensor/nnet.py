"""``T.nnet``: activations, softmax and cross-entropies, with Theano's names."""

from __future__ import annotations

from typing import Any

from ..graph import Variable
from ..ops.elemwise import apply as _apply
from ..ops.nnet import (
    binary_crossentropy,
    categorical_crossentropy,
    log_softmax,
    one_hot,
    relu,
    sigmoid_binary_crossentropy,
    softmax,
)


def sigmoid(x: Any) -> Variable:
    return _apply("sigmoid", x)


def hard_sigmoid(x: Any) -> Variable:
    """``clip(0.2 * x + 0.5, 0, 1)``, as in Theano."""
    return _apply("hard_sigmoid", x)


def ultra_fast_sigmoid(x: Any) -> Variable:
    """Theano's approximation; here the exact sigmoid (it is as fast in a fused kernel)."""
    return _apply("sigmoid", x)


def softplus(x: Any) -> Variable:
    return _apply("softplus", x)


def logsoftmax(x: Any) -> Variable:
    return log_softmax(x)


nnet = __import__(__name__, fromlist=["_"])  # Theano code sometimes writes T.nnet.nnet.sigmoid

__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "hard_sigmoid",
    "log_softmax",
    "logsoftmax",
    "one_hot",
    "relu",
    "sigmoid",
    "sigmoid_binary_crossentropy",
    "softmax",
    "softplus",
    "ultra_fast_sigmoid",
]
