"""``scan``: Theano's loop construct.

The step function is called ONCE, on symbolic placeholders, to trace the inner graph; the Scan op
compiles that graph once and runs it in a generated loop. Outer variables the step function uses
without receiving them (shared weights, typically) become explicit non-sequence inputs of the op,
so gradients reach them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import GraphTypeError, SourceLine, user_line, where
from ..graph import Constant, TensorType, Variable, clone_replace, shape_conflict
from ..ops.basic import as_tensor_variable, constant
from ..ops.scalar import is_float
from .op import OutSpec
from .parts import Out, ScanParts


class ScanUpdates(OrderedDict):
    """The updates returned by ``scan`` (always empty here: no random-state updates)."""


def scan(
    fn: Callable[..., Any],
    sequences: Any = None,
    outputs_info: Any = None,
    non_sequences: Any = None,
    n_steps: Any = None,
    truncate_gradient: int = -1,
    go_backwards: bool = False,
    strict: bool = False,
    name: str | None = None,
    mode: str | None = None,
    bptt_truncate: int = -1,
) -> tuple[Variable | list[Variable], ScanUpdates]:
    """Loop ``fn`` over ``sequences``; returns ``(outputs, updates)`` like Theano's scan.

    ``fn`` receives, in order: the slice of each sequence (one argument per tap), the previous
    values of each recurrent output (one per tap), then the non-sequences. It returns one
    output or a list/tuple of outputs.

    - ``sequences``: variables (tap 0) or ``dict(input=x, taps=[-1, 0, 1])``.
    - ``outputs_info``: one entry per output: ``None`` (not fed back), an initial value (fed back
      with tap -1), or ``dict(initial=x0, taps=[-2, -1])`` (``x0`` then has ``-min(taps)`` leading
      rows, oldest first, as in Theano).
    - ``non_sequences``: passed unchanged to every step. Shared variables used inside ``fn``
      without being passed work too; ``strict=True`` makes that an error.
    - ``n_steps``: number of steps (int or symbolic); required without sequences; with sequences
      it must not exceed their length (checked at run time).
    - ``go_backwards``: iterate the sequences from the end (outputs stay in iteration order).
    - ``truncate_gradient=k``: Theano's truncation: the backward pass runs over the LAST ``k``
      steps only; gradients from earlier steps (and into the initial state, unless ``k`` covers
      every step) are dropped.
    - ``bptt_truncate=k``: the tutorial's truncation: every per-step term of the cost
      back-propagates through at most ``k`` earlier steps (its own step plus ``k``), exactly what
      the WildML RNN tutorial's NumPy ``bptt`` computes. Only for outputs fed back with tap -1.
    - ``mode='FAST_COMPILE'``: build the loop as written, without moving work out of it (see
      ``symgraph.scan.rewrites``); otherwise invariant and per-sequence work is hoisted before
      the loop and output-only work moved after it when ``scan`` builds the op.

    A single output is returned as a variable, several as a list. Outputs fed back do not include
    the initial value (row ``t`` is the value computed at step ``t``).
    """
    trace = user_line()
    mode = mode if isinstance(mode, str) else None  # a Theano Mode object: default pipeline
    label = name or getattr(fn, "__name__", "scan_fn")
    if label == "<lambda>":
        label = "scan_fn"
    where_ = where(trace) + _fn_line(fn)
    if truncate_gradient not in (-1, None) and bptt_truncate not in (-1, None):
        raise ValueError(f"scan {label!r}: give truncate_gradient or bptt_truncate, not both")
    truncate_gradient = -1 if truncate_gradient is None else int(truncate_gradient)
    bptt_truncate = -1 if bptt_truncate is None else int(bptt_truncate)
    if truncate_gradient == 0 or truncate_gradient < -1 or bptt_truncate < -1:
        raise ValueError(f"scan {label!r}: truncation must be -1 (none) or a positive step count")

    # -- sequences: one outer slice and one placeholder per tap (Theano's cutting rule)
    seqs: list[tuple[Variable, Variable]] = []
    seq_args: list[Variable] = []
    for k, entry in enumerate(_as_list(sequences)):
        var, taps = _sequence_entry(entry, k, label, where_)
        lo, hi = min(min(taps), 0), max(max(taps), 0)
        for tap in taps:
            start, stop = tap - lo, (tap - hi) or None
            sl = var if (start == 0 and stop is None) else var[start:stop]
            if go_backwards:
                sl = sl[::-1]
            ph = TensorType(var.dtype, var.type.shape[1:]).make_variable(_tap_name(var, tap))
            seqs.append((sl, ph))
            seq_args.append(ph)

    # -- number of steps
    if n_steps is None:
        if not seqs:
            raise ValueError(f"scan {label!r}: give sequences or n_steps{where_}")
        n_var, n_from_seqs = constant(-1, dtype="int64"), True
    else:
        n_var = as_tensor_variable(n_steps)
        if n_var.ndim != 0 or n_var.dtype[:3] not in ("int", "uin"):
            raise GraphTypeError(f"scan {label!r}: n_steps must be an integer scalar{where_}")
        if isinstance(n_var, Constant) and int(n_var.data) < 0:
            raise ValueError(
                f"scan {label!r}: n_steps={int(n_var.data)} is negative; use go_backwards=True "
                f"to iterate backwards{where_}"
            )
        n_from_seqs = False

    # -- outputs_info: states get an initial window and one placeholder per tap
    infos = _outputs_info(outputs_info, label, where_, bptt_truncate)
    state_args: list[Variable] = []
    tap_phs: dict[int, dict[int, Variable]] = {}
    windows: dict[int, Variable] = {}
    for j, (init, taps) in enumerate(infos):
        if init is None:
            continue
        L = -min(taps)
        if taps == (-1,):
            row_type, window = init.type, init.dimshuffle("x", *range(init.ndim))
        else:
            if init.ndim == 0:
                raise GraphTypeError(
                    f"scan {label!r}: output {j} uses taps {list(taps)}, so its initial value "
                    f"needs a leading axis of {L} past values{where_}"
                )
            row_type = TensorType(init.dtype, init.type.shape[1:])
            window = init[:L]
        windows[j] = window
        tap_phs[j] = {}
        for tap in taps:
            ph = row_type.make_variable(_tap_name(init, tap) or f"out{j}[t{tap:+d}]")
            tap_phs[j][tap] = ph
            state_args.append(ph)

    non_seqs = [
        v if isinstance(v, Variable) else as_tensor_variable(v) for v in _as_list(non_sequences)
    ]

    # -- trace the step function once
    first_traced = TensorType("int8", ()).make_variable().id
    result = fn(*seq_args, *state_args, *non_seqs)
    outputs = _step_outputs(result, label, where_)
    if infos and len(outputs) != len(infos):
        raise ValueError(
            f"scan {label!r}: the step function returned {len(outputs)} output(s) but "
            f"outputs_info describes {len(infos)}{where_}"
        )
    if not infos:
        infos = [(None, ())] * len(outputs)
    for j, (init, taps) in enumerate(infos):
        if init is not None:
            _check_state(j, outputs[j], tap_phs[j][taps[-1]], init, label, where_)

    # -- free variables of the step become non-sequences
    placeholders = {id(v) for v in seq_args + state_args}
    free = _free_variables(outputs, placeholders, first_traced)
    explicit = {id(v) for v in non_seqs}
    implicit = [v for v in free if id(v) not in explicit]
    if strict and implicit:
        names = ", ".join(v.describe() for v in implicit)
        raise GraphTypeError(
            f"scan {label!r} (strict=True): the step function uses {names} without receiving "
            f"them through non_sequences{where_}"
        )
    ordered = [v for v in non_seqs if id(v) in {id(f) for f in free}] + implicit
    nonseqs = [(v, TensorType(v.dtype, v.type.shape).make_variable(v.name)) for v in ordered]
    inner_outputs = clone_replace(outputs, {v: ph for v, ph in nonseqs})

    outs = []
    for j, ((init, taps), y) in enumerate(zip(infos, inner_outputs)):
        if init is None:
            outs.append(Out(OutSpec("seq"), y, origin=j))
        else:
            order = sorted(taps)
            outs.append(
                Out(OutSpec("state", tuple(order)), y, windows[j], [tap_phs[j][k] for k in order],
                    origin=j)
            )  # fmt: skip
    parts = ScanParts(
        n_var,
        n_from_seqs,
        seqs,
        outs,
        nonseqs,
        name=label,
        mode=mode,
        truncate_gradient=truncate_gradient,
        bptt_truncate=bptt_truncate,
        trace=trace,
        same_len={id(seqs[0][0])} if len(seqs) == 1 else set(),
    )
    node = parts.build()
    results = list(node.outputs)
    if mode != "FAST_COMPILE":
        results = _optimized(node)
    user = []
    for (init, taps), r in zip(infos, results):
        user.append(r[-min(taps) :] if init is not None else r)
    return (user[0] if len(user) == 1 else user), ScanUpdates()


def _optimized(node) -> list[Variable]:
    """The outputs of ``node`` after loop fission (``symgraph.scan.fission``) and the rewrites
    that move work out of each loop."""
    from .fission import split_scan
    from .rewrites import optimize_scan

    chain = split_scan(node)
    if chain is None:
        return optimize_scan(node)
    results: list = [None] * len(node.outputs)
    moved: dict = {}  # outputs of a loop before its rewrites -> after
    for part, positions in chain:
        built = part
        if moved:  # a later loop reads an earlier one's outputs: read the rewritten ones
            built = part.op.make_node(*clone_replace(part.inputs, moved))
        outs = optimize_scan(built)
        moved.update(zip(part.outputs, outs))
        for j, p in enumerate(positions):
            if p is not None:
                results[j] = outs[p]
    return results


# -- argument parsing ----------------------------------------------------------------------------


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, list | tuple):
        return list(x)
    return [x]


def _fn_line(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    return f"\n  step function {SourceLine(code.co_filename, code.co_firstlineno, code.co_name)}"


def _tap_name(v: Variable, tap: int) -> str | None:
    if not v.name:
        return None
    return f"{v.name}[t]" if tap == 0 else f"{v.name}[t{tap:+d}]"


def _sequence_entry(entry: Any, k: int, label: str, where_: str) -> tuple[Variable, list[int]]:
    if isinstance(entry, dict):
        if "input" not in entry:
            raise ValueError(f"scan {label!r}: sequence {k} is a dict without 'input'{where_}")
        var, taps = as_tensor_variable(entry["input"]), list(entry.get("taps", [0]) or [0])
    else:
        var, taps = as_tensor_variable(entry), [0]
    if var.ndim == 0:
        raise GraphTypeError(
            f"scan {label!r}: sequence {k} ({var.describe()}) is a scalar; a sequence needs a "
            f"leading axis to iterate over{where_}"
        )
    return var, [int(t) for t in taps]


def _outputs_info(
    info: Any, label: str, where_: str, bptt_truncate: int
) -> list[tuple[Variable | None, tuple]]:
    out = []
    for j, entry in enumerate(_as_list(info)):
        if entry is None:
            out.append((None, ()))
            continue
        if isinstance(entry, dict):
            if entry.get("initial") is None:
                out.append((None, ()))
                continue
            init = as_tensor_variable(entry["initial"])
            taps = tuple(int(t) for t in entry.get("taps", [-1]) or [-1])
        else:
            init, taps = as_tensor_variable(entry), (-1,)
        if taps != (-1,) and bptt_truncate >= 0:
            raise ValueError(
                f"scan {label!r}: bptt_truncate works on outputs fed back with tap -1; output "
                f"{j} uses taps {list(taps)} (use truncate_gradient){where_}"
            )
        if any(t >= 0 for t in taps):
            raise ValueError(
                f"scan {label!r}: output {j} has taps {list(taps)}; outputs can only read past "
                f"values (negative taps){where_}"
            )
        out.append((init, taps))
    return out


def _step_outputs(result: Any, label: str, where_: str) -> list[Variable]:
    if isinstance(result, dict):
        raise TypeError(f"scan {label!r}: updates returned by the step are not supported{where_}")
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        if result[1]:
            raise TypeError(f"scan {label!r}: updates from the step are not supported{where_}")
        result = result[0]
    items = list(result) if isinstance(result, list | tuple) else [result]
    if not items:
        raise ValueError(f"scan {label!r}: the step function returned no outputs{where_}")
    out = []
    for k, v in enumerate(items):
        try:
            out.append(as_tensor_variable(v))
        except (GraphTypeError, TypeError) as e:
            raise GraphTypeError(
                f"scan {label!r}: output {k} of the step function is {type(v).__name__}, not a "
                f"tensor{where_}"
            ) from e
    return out


def _check_state(j: int, y: Variable, ph: Variable, init: Variable, label: str, where_: str):
    what = f"scan {label!r}: output {j} is fed back to the next step, but"
    if y.dtype != ph.dtype:
        hint = f"T.cast(..., '{ph.dtype}')" if is_float(ph.dtype) else "a cast"
        raise GraphTypeError(
            f"{what} its initial value ({init.describe()}) has dtype {ph.dtype} and the step "
            f"function returns {y.dtype}; the dtype must not change between steps (use {hint} "
            f"on the initial value or on the step's result){where_}"
        )
    if y.ndim != ph.ndim:
        raise GraphTypeError(
            f"{what} the step function returns {y.ndim} dimension(s) where the state has "
            f"{ph.ndim}{where_}"
        )
    conflict = shape_conflict(y.type.shape, ph.type.shape)
    if conflict is not None:
        a, s, t = conflict
        raise GraphTypeError(
            f"{what} the step function returns length {s} on axis {a} where the initial "
            f"value has {t}; a state must keep its shape{where_}"
        )


def _free_variables(outputs: list[Variable], placeholders: set[int], first_traced: int) -> list:
    """Outer variables the traced step reads (stopping at anything made before tracing)."""
    free, seen = [], set()
    stack = list(reversed(outputs))
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if id(v) in placeholders or isinstance(v, Constant):
            continue
        if v.owner is None or v.id < first_traced:
            free.append(v)
            continue
        stack.extend(reversed(v.owner.inputs))
    return free
