"""Numeric gradient checks: ``check_grad`` and Theano's ``verify_grad``.

Both compare symbolic gradients with central finite differences in float64, along random
directions: the output is projected on a random tensor (so any output shape gives a scalar), and
the directional derivative of that scalar along a random direction in input space is compared with
the dot product of the symbolic gradient and that direction. One test costs two evaluations
however large the inputs are; several tests with fresh directions make a wrong gradient
(a missing term, a wrong sign, a transposed product) show up with probability ~1.
"""

from __future__ import annotations

import itertools
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
        if not (np.isfinite(numeric) and np.isfinite(symbolic)):  # NaN compares as "close"
            raise GradientError(
                f"gradient check failed: directional derivative numeric={numeric!r}, "
                f"symbolic={symbolic!r} (not finite)"
            )
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


def check_against_numpy(
    build: Callable[..., Any],
    reference: Callable[..., Any],
    values: Sequence[Any],
    rtol: float | None = None,
    atol: float = 0.0,
    static_shapes: bool | None = None,
    device: str = "cpu",
    modes: Sequence[str] = ("FAST_COMPILE", "FAST_RUN"),
) -> Any:
    """Compile ``build(*symbolic_inputs)`` and compare its result with ``reference(*values)``.

    Inputs are symbolic tensors of each value's dtype. With ``static_shapes=None`` the check runs
    twice: once with every dimension unknown and once with the exact shapes known at build time
    (so wrong static-shape inference is caught as well as wrong values); each is compiled in
    every mode of ``modes`` (the ops as built, and after the rewrites). Checked, for every
    output: runtime dtype == NumPy's dtype == the graph's static dtype; runtime shape == NumPy's
    shape; every known static dimension == the runtime one; values equal (integers, bools) or
    close (floats; ``rtol`` defaults to 1e-5 for float32 and 1e-12 for float64). Returns the
    outputs of the last run.
    """
    from . import function
    from . import tensor as T

    arrays = [np.asarray(v) for v in values]
    expected = reference(*[a.copy() for a in arrays])
    multi = isinstance(expected, tuple | list)
    expected = [np.asarray(e) for e in expected] if multi else [np.asarray(expected)]
    statics = [False, True] if static_shapes is None else [static_shapes]
    got = None
    for static, mode_name in itertools.product(statics, modes):
        syms = [
            T.tensor(a.dtype.name, a.shape if static else (None,) * a.ndim, name=f"in{k}")
            for k, a in enumerate(arrays)
        ]
        outs = build(*syms)
        outs = list(outs) if multi else [outs]
        outs = [T.as_tensor_variable(o) for o in outs]
        fn = function(syms, outs, on_unused_input="ignore", device=device, mode=mode_name)
        got = fn(*arrays)
        mode = f"{'static' if static else 'unknown'} shapes, {mode_name}"
        for k, (o, g, e) in enumerate(zip(outs, got, expected)):
            what = f"output {k} ({mode})"
            assert g.dtype == e.dtype, f"{what}: dtype {g.dtype}, NumPy gives {e.dtype}"
            assert o.dtype == g.dtype, f"{what}: static dtype {o.dtype}, runtime {g.dtype}"
            assert g.shape == e.shape, f"{what}: shape {g.shape}, NumPy gives {e.shape}"
            assert o.ndim == g.ndim, f"{what}: static ndim {o.ndim}, runtime {g.ndim}"
            for s, n in zip(o.type.shape, g.shape):
                assert s is None or s == n, f"{what}: static shape {o.type.shape}, got {g.shape}"
            if e.dtype.kind in "fc":
                tol = rtol if rtol is not None else (1e-5 if e.dtype.itemsize <= 4 else 1e-12)
                np.testing.assert_allclose(g, e, rtol=tol, atol=atol, err_msg=what)
            else:
                np.testing.assert_array_equal(g, e, err_msg=what)
    return got if multi else got[0]
