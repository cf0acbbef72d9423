"""``symgraph.gradient``: Theano's ``theano.gradient`` names."""

from __future__ import annotations

from .grad import grad, jacobian
from .ops.gradient import disconnected_grad, grad_clip, zero_grad
from .testing import verify_grad

__all__ = ["disconnected_grad", "grad", "grad_clip", "jacobian", "verify_grad", "zero_grad"]
