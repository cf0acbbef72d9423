"""The argument checks of ``function``: each mistake is named with the user's variable and the
line that created it, before anything is compiled."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import config
from ..errors import GraphTypeError, SymgraphError, report, where
from ..graph import Constant, SharedVariable, Variable, shape_conflict
from ..ops.basic import as_tensor_variable


def check_float64(nodes) -> None:
    """``config.warn_float64``: name every node that computes in float64 (slow on GPUs)."""
    if config.warn_float64 == "ignore":
        return
    found = [n for n in nodes if any(o.dtype == "float64" for o in n.outputs)]
    if not found:
        return
    lines = "".join(f"\n  {n.op}{where(n.trace)}" for n in found[:10])
    more = f"\n  ... and {len(found) - 10} more" if len(found) > 10 else ""
    msg = f"{len(found)} node(s) compute in float64 (config.warn_float64):{lines}{more}"
    report(config.warn_float64, GraphTypeError, msg)


def check_shared_placement(fname: str, shared_vars: list, backend: Any) -> None:
    """Shared state must live where the function runs: an op on one device cannot read an array
    of the other (CuPy refuses NumPy arrays, NumPy cannot read device memory)."""
    on_device = backend.name != "cpu"
    for s in shared_vars:
        if isinstance(s.value, np.ndarray) == on_device:
            here = "on the CPU (a NumPy array)" if on_device else "on a CUDA device"
            raise SymgraphError(
                f"{fname} runs on device={backend.name!r}, but shared variable {s.describe()} "
                f"lives {here}{where(s.trace)}\n  (create shared variables under the device of "
                f"the functions that use them: SYMGRAPH_FLAGS=device=..., or "
                f"symgraph.config.change_flags(device=...))"
            )


def check_inputs(in_vars: list, trace) -> None:
    seen = set()
    for v in in_vars:
        if not isinstance(v, Variable):
            raise GraphTypeError(
                f"function inputs must be symbolic variables, got {type(v).__name__} {v!r}"
                f"{where(trace)}"
            )
        if isinstance(v, SharedVariable):
            raise GraphTypeError(
                f"shared variable {v.describe()} cannot be a function input: its value is "
                f"already part of the function (use givens= to replace it){where(trace)}"
            )
        if isinstance(v, Constant) or v.owner is not None:
            raise GraphTypeError(
                f"function input {v.describe()} is computed from other variables; inputs must "
                f"be free variables like T.vector(){where(v.trace)}"
            )
        if id(v) in seen:
            raise GraphTypeError(f"input {v.describe()} is given twice{where(trace)}")
        seen.add(id(v))


def normalize_pairs(pairs: Any, what: str) -> list[tuple[Any, Any]]:
    if pairs is None:
        return []
    if isinstance(pairs, dict):
        return list(pairs.items())
    out = []
    for p in pairs:
        if not isinstance(p, tuple | list) or len(p) != 2:
            raise TypeError(f"{what} must be (variable, expression) pairs or a dict, got {p!r}")
        out.append((p[0], p[1]))
    return out


def check_updates(pairs: list) -> list[tuple[SharedVariable, Variable]]:
    seen = set()
    out = []
    for target, expr in pairs:
        if not isinstance(target, SharedVariable):
            what = target.describe() if isinstance(target, Variable) else repr(target)
            line = target.trace if isinstance(target, Variable) else None
            raise GraphTypeError(
                f"updates: {what} is not a shared variable; only sg.shared(...) state can be "
                f"updated{where(line)}"
            )
        if id(target) in seen:
            raise GraphTypeError(f"updates: {target.describe()} is updated twice")
        seen.add(id(target))
        expr = as_tensor_variable(expr)
        if expr.ndim != target.ndim:
            raise GraphTypeError(
                f"update of shared variable {target.describe()} ({target.type}) has "
                f"{expr.ndim} dimensions instead of {target.ndim}{where(expr.trace)}"
            )
        if expr.dtype != target.dtype:
            raise GraphTypeError(
                f"update of shared variable {target.describe()} has dtype {expr.dtype}, but the "
                f"variable holds {target.dtype}; cast the expression (T.cast(expr, "
                f"'{target.dtype}')){where(expr.trace)}"
            )
        conflict = shape_conflict(target.type.shape, expr.type.shape)
        if conflict is not None:
            a, s, e = conflict
            raise GraphTypeError(
                f"update of shared variable {target.describe()}: axis {a} has length {e}, "
                f"the variable has {s}{where(expr.trace)}"
            )
        out.append((target, expr))
    return out
