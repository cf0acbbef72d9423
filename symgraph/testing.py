"""Numeric gradient checks: ``check_grad`` and Theano's ``verify_grad``.

Both compare symbolic gradients with central finite differences in float64, along random
directions: the output is projected on a random tensor (so any output shape gives a scalar), and
the directional derivative of that scalar along a random direction in input space is compared with
the dot product of the symbolic gradient and that direction. One test costs two evaluations
however large the inputs are; several tests with fresh directions make a wrong gradient
(a missing term, a wrong sign, a transposed product) show up with probability ~1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .config import config


class GradientError(AssertionError):
    """A symbolic gradient disagrees with finite differences."""


def check_grad(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    n_tests: int = 3,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    rng: np.random.Generator | int | None = 0,
    wrt: Sequence[int] | None = None,
    extra_inputs: Sequence[Any] = (),
) -> float:
    """Check the gradient of ``fn`` (symbolic tensors -> symbolic tensor) at ``inputs``.

    ``inputs`` are float arrays (converted to float64). ``extra_inputs`` are fixed non-float
    arguments (e.g. integer indices) passed after them. Returns the largest relative error seen;
    raises :class:`GradientError` naming the input and the two values when it is too large.
    """
    from . import function, grad, shared
    from . import tensor as T

    rng = np.random.default_rng(rng)
    wrt = list(range(len(inputs))) if wrt is None else list(wrt)
    with config.change_flags(floatX="float64"):
        pts = [np.array(p, dtype=np.float64) for p in inputs]
        syms = [T.tensor("float64", (None,) * p.ndim, name=f"x{k}") for k, p in enumerate(pts)]
        extra_syms = [
            T.tensor(np.asarray(e).dtype.name, (None,) * np.asarray(e).ndim, name=f"e{k}")
            for k, e in enumerate(extra_inputs)
        ]
        out = fn(*syms, *extra_syms)
        out = T.as_tensor_variable(out)
        extras = [np.asarray(e) for e in extra_inputs]
        f_out = function(syms + extra_syms, out, on_unused_input="ignore")
        out_val = np.asarray(f_out(*pts, *extras))
        proj = shared(
            rng.uniform(0.5, 1.5, size=out_val.shape) * rng.choice([-1, 1], out_val.shape)
        )
        cost = T.sum(T.cast(out, "float64") * proj)
        grads = grad(cost, [syms[k] for k in wrt], disconnected_inputs="ignore")
        f_cost = function(syms + extra_syms, cost, on_unused_input="ignore")
        f_grad = function(syms + extra_syms, grads, on_unused_input="ignore")
    sym_grads = f_grad(*pts, *extras)
    worst = 0.0
    for _ in range(n_tests):
        dirs = [rng.standard_normal(pts[k].shape) for k in wrt]
        plus = list(pts)
        minus = list(pts)
        for k, d in zip(wrt, dirs):
            plus[k] = pts[k] + eps * d
            minus[k] = pts[k] - eps * d
        numeric = (float(f_cost(*plus, *extras)) - float(f_cost(*minus, *extras))) / (2 * eps)
        symbolic = float(sum(np.sum(g * d) for g, d in zip(sym_grads, dirs)))
        err = abs(numeric - symbolic)
        rel = err / max(abs(numeric), abs(symbolic), 1e-12)
        worst = max(worst, rel if err > atol else 0.0)
        if err > atol + rtol * max(abs(numeric), abs(symbolic)):
            raise GradientError(
                f"gradient check failed: directional derivative numeric={numeric!r}, "
                f"symbolic={symbolic!r} (abs err {err:.3g}, rel err {rel:.3g})"
            )
    return worst


def verify_grad(
    fun: Callable[..., Any],
    pt: Sequence[Any],
    n_tests: int = 2,
    rng: Any = None,
    eps: float | None = None,
    abs_tol: float | None = None,
    rel_tol: float | None = None,
    **_: Any,
) -> None:
    """Theano-compatible name for :func:`check_grad` (raises on failure)."""
    if isinstance(rng, np.random.RandomState):
        rng = int(rng.randint(2**31))
    check_grad(
        fun,
        pt,
        n_tests=n_tests,
        eps=eps or 1e-6,
        rtol=rel_tol or 1e-5,
        atol=abs_tol or 1e-8,
        rng=rng,
    )
