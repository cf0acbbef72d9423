"""Evaluating a ``Composite`` with NumPy: generated straight-line functions of ufunc calls over
buffers that are reused across calls, so that a call allocates one array (its output).

Any other array module gets :func:`generic_program`, a step-by-step loop over the table's
functions with the same casts as ``Elemwise``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .composite import Composite, StepInfo

# Ops whose NumPy implementation is not a single ufunc: how to compute them into ``out`` with the
# same ufunc calls (hence the same rounding) as their table implementation (a test compares every
# table op with the unfused Elemwise bit for bit, so a formula changed there shows up). Each takes
# the NumPy module, the argument arrays and the output buffer; ``out`` may alias the argument of a
# one-input op, never an argument of a several-input op.


def _sigmoid_out(np_, x, out):
    np_.negative(x, out=out)  # 1 / (1 + exp(-x)), as the table computes it
    np_.exp(out, out=out)  # overflow to inf gives exactly 0 below: the plan silences the warning
    np_.add(out, out.dtype.type(1), out=out)
    np_.reciprocal(out, out=out)


def _hard_sigmoid_out(np_, x, out):
    np_.multiply(x, out.dtype.type(0.2), out=out)
    np_.add(out, out.dtype.type(0.5), out=out)
    # maximum/minimum rather than np.clip: same values (NaN stays NaN), no Python-level wrapper
    np_.maximum(out, out.dtype.type(0), out=out)
    np_.minimum(out, out.dtype.type(1), out=out)


def _softplus_out(np_, x, out):
    np_.logaddexp(out.dtype.type(0), x, out=out)


def _relu_out(np_, x, out):
    np_.maximum(x, out.dtype.type(0), out=out)


def _switch_out(np_, c, a, b, out):
    np_.copyto(out, b)
    np_.copyto(out, a, where=c if c.dtype == bool else c != 0)  # where= wants booleans


def _clip_out(np_, x, lo, hi, out):
    np_.maximum(x, lo, out=out)
    np_.minimum(out, hi, out=out)


def _copy_out(np_, x, out):
    np_.copyto(out, x, casting="unsafe")


def _round_out(np_, x, out):
    if out.dtype.kind == "f":
        np_.rint(x, out=out)
    else:
        np_.copyto(out, x)


# Variants whose intermediate overflow is expected; a plan containing one runs under
# ``np.errstate(over="ignore")``, entered once per call (it costs about as much as a ufunc call).
_OVERFLOW_EXPECTED = {"sigmoid"}

_OUT_VARIANTS: dict[str, Callable[..., None]] = {
    "sigmoid": _sigmoid_out,
    "hard_sigmoid": _hard_sigmoid_out,
    "softplus": _softplus_out,
    "relu": _relu_out,
    "switch": _switch_out,
    "clip": _clip_out,
    "identity": _copy_out,
    "round": _round_out,
}


class NumpyProgram:
    """Callable evaluating a Composite with NumPy.

    For each combination of input shapes seen (a few are kept), it plans where every
    intermediate lives (buffers of the right shape and dtype, reused once their value is dead,
    kept across calls) and generates a Python function of ufunc calls. A call then costs one
    dictionary lookup, the ufunc calls, and one ``np.empty`` for the output.
    """

    MAX_PLANS = 8

    def __init__(self, composite: Composite):
        self.composite = composite
        self.plans: dict[tuple, Callable[..., Any]] = {}
        self.out_dtype = np.dtype(composite.output_dtype())
        args = ", ".join(f"x{k}" for k in range(composite.nin))
        shapes = "".join(f"x{k}.shape, " for k in range(composite.nin))
        # which input ``out`` is (-1: none given, -2: a buffer that is no input); the plan may
        # use the output buffer for intermediates only once that input has been read for good
        alias = (
            "-1 if out is None else "
            + "".join(f"{k} if out is x{k} else " for k in range(composite.nin))
            + "-2"
        )
        src = (
            f"def {composite.name}({args}, out=None):\n"
            f"    key = ({shapes}{alias})\n"
            f"    plan = plans.get(key)\n"
            f"    if plan is None:\n"
            f"        plan = build(key)\n"
            f"    return plan({args}, out)\n"
        )
        env = {"plans": self.plans, "build": self._build}
        exec(compile(src, f"<symgraph {composite.name}>", "exec"), env)
        self._entry = env[composite.name]
        self.source = ""  # the latest generated plan, for debugging
        # ``f(*xs, out=buffer)`` writes the result into ``buffer``; the linker's buffer reuse
        # passes an input that dies at this node (or a shared value being updated). That is
        # safe when the final step is one ufunc call or has one argument: it reads each element
        # before writing it. Multi-step variants (switch, clip) would clobber their arguments.
        final = composite.output - composite.nin
        self.accepts_out = final >= 0 and _aliasable(composite.infos[final])

    def __call__(self, *xs: Any, out: Any = None) -> Any:
        return self._entry(*xs, out=out)

    def _build(self, key: tuple) -> Callable[..., Any]:
        fn, self.source = _plan(self.composite, key[:-1], key[-1])
        if len(self.plans) >= self.MAX_PLANS:
            self.plans.pop(next(iter(self.plans)))
        self.plans[key] = fn
        return fn


# Scratch buffers shared by all fused programs, by (shape, dtype, rank among the buffers one
# program holds at once). A program's intermediates die before it returns, so programs running
# one after another can use the same memory: fewer buffers, fewer cache and page misses. (As
# with the buffers themselves, a compiled function must not run in two threads at once.)
_SCRATCH: dict[tuple, np.ndarray] = {}


def _scratch(shape: tuple, dtype: Any, rank: int) -> np.ndarray:
    key = (shape, np.dtype(dtype).str, rank)
    buf = _SCRATCH.get(key)
    if buf is None:
        buf = _SCRATCH[key] = np.empty(shape, dtype)
    return buf


def _plan(c: Composite, in_shapes: tuple, alias: int = -1) -> tuple[Callable[..., Any], str]:
    nin = c.nin
    infos = c.infos
    needed = c.needed_steps()
    full = np.broadcast_shapes(*in_shapes) if in_shapes else ()
    shapes: list[tuple] = list(in_shapes) + [()] * len(c.steps)
    for j in needed:
        shapes[nin + j] = np.broadcast_shapes(*[shapes[a] for a in c.steps[j][1]])
    dtypes = c.value_dtypes()
    out_dtype = dtypes[c.output]
    last_use: dict[int, int] = {}
    for j in needed:
        for a in c.steps[j][1]:
            last_use[a] = j

    env: dict[str, Any] = {"np": np, "empty": np.empty}
    lines = [f"def plan({', '.join(f'x{k}' for k in range(nin))}, out):"]
    lines.append("    if out is None:")
    lines.append(f"        out = empty({full!r}, {out_dtype!r})")
    if c.output < nin:  # the program returns one of its inputs: a broadcast copy
        lines.append(f"    np.copyto(out, x{c.output}, casting='unsafe')")
        lines.append("    return out")
        return _exec_plan(lines, env)

    # Slots: "out" (the fresh output array) and scratch buffers "b<k>", kept across calls.
    where: dict[int, str] = {k: f"x{k}" for k in range(nin)}  # value -> slot or input name
    slot_key: dict[str, tuple] = {"out": (full, out_dtype)}
    free: list[str] = []
    held: dict[str, int] = {}  # slot -> value it holds
    if alias >= 0:
        held["out"] = alias  # ``out`` is input ``alias``: taken until that input is read for good
    final = c.output - nin
    final_aliasable = _aliasable(infos[final])
    n_buffers = 0
    per_key: dict[tuple, int] = {}
    for j in needed:
        info = infos[j]
        v = nin + j
        key = (shapes[v], info.dtype)
        dying = [a for a in set(info.args) if a >= nin and last_use.get(a) == j]
        if j == final:
            slot = "out"
            if held.get("out") is not None and held["out"] not in info.args:
                raise AssertionError("internal: output buffer still holds a live value")
        else:
            slot = None
            if _aliasable(info):  # a single ufunc call may write over an argument dying here
                slot = next((where[a] for a in dying if slot_key[where[a]] == key), None)
            if slot is None:
                slot = next((s for s in free if slot_key[s] == key), None)
                if slot is not None:
                    free.remove(slot)
            if slot is None and final_aliasable and key == slot_key["out"] and "out" not in held:
                slot = "out"  # the output array is free until the final step writes it
            if slot is None:
                slot = f"b{n_buffers}"
                n_buffers += 1
                rank = per_key[key] = per_key.get(key, -1) + 1
                env[slot] = _scratch(shapes[v], info.dtype, rank)
                slot_key[slot] = key
        for a in dying:
            s = where[a]
            if held.get(s) == a:
                del held[s]
                if s != slot and s != "out":
                    free.append(s)
        if alias >= 0 and last_use.get(alias) == j and held.get("out") == alias:
            del held["out"]  # the input that ``out`` is has been read for the last time
        held[slot] = v
        where[v] = slot
        lines.append("    " + _step_call(info, [where[a] for a in info.args], slot, env, j))
    if any(infos[j].op.name in _OVERFLOW_EXPECTED for j in needed):
        lines[3:] = ['    with np.errstate(over="ignore"):'] + ["    " + x for x in lines[3:]]
    lines.append("    return out")
    return _exec_plan(lines, env)


def _aliasable(info: StepInfo) -> bool:
    """True when the step is one ufunc call (which may write over one of its own arguments)."""
    if info.mode == "cast_inputs" and info.op.name in _OUT_VARIANTS:
        return info.op.nin == 1
    return isinstance(info.op.numpy(np), np.ufunc) or info.op.nin == 1


def _step_call(info: StepInfo, args: list[str], out: str, env: dict, j: int) -> str:
    op = info.op
    fn = op.numpy(np)
    name = f"{op.name.strip('_')}_{j}"
    if isinstance(fn, np.ufunc):
        env[name] = fn
        if info.mode == "plain":
            return f"{name}({', '.join(args)}, out={out})"
        if info.mode == "cast_inputs":
            return f"{name}({', '.join(args)}, out={out}, dtype={info.dtype!r}, casting='unsafe')"
        return f"{name}({', '.join(args)}, out={out}, casting='unsafe')"
    variant = _OUT_VARIANTS.get(op.name)
    if op.name.startswith("cast_"):
        variant = _copy_out
    if variant is not None and info.mode == "plain":
        env[name] = variant
        return f"{name}(np, {', '.join(args)}, {out})"
    if variant is not None and info.mode == "cast_inputs" and op.nin == 1:
        env[name] = variant  # convert the argument into the output buffer, then compute there
        return f"np.copyto({out}, {args[0]}, casting='unsafe'); {name}(np, {out}, {out})"
    # Anything else: the table's own function (allocates), converted into the buffer.
    env[name] = fn
    if info.mode == "cast_inputs":
        cast = ", ".join(f"{a}.astype({info.dtype!r})" for a in args)
        return f"np.copyto({out}, {name}({cast}), casting='unsafe')"
    return f"np.copyto({out}, {name}({', '.join(args)}), casting='unsafe')"


def _exec_plan(lines: list[str], env: dict) -> tuple[Callable[..., Any], str]:
    src = "\n".join(lines) + "\n"
    exec(compile(src, "<symgraph fused plan>", "exec"), env)
    return env["plan"], src


def generic_program(c: Composite, xp: Any) -> Callable[..., Any]:
    """Step by step with the table's functions (any array module), casting like Elemwise."""
    fns = [op.numpy(xp) for op, _ in c.steps]
    infos = c.infos
    needed = c.needed_steps()
    nin, output = c.nin, c.output
    out_dtype = c.output_dtype()

    def run(*xs: Any) -> Any:
        values = list(xs) + [None] * len(infos)
        for j in needed:
            info = infos[j]
            args = [values[a] for a in info.args]
            if info.mode == "cast_inputs":
                args = [a.astype(info.dtype) for a in args]
            r = fns[j](*args)
            if info.mode == "cast_output":
                r = r.astype(info.dtype)
            values[nin + j] = r
        full = np.broadcast_shapes(*[x.shape for x in xs]) if xs else ()
        r = values[output]
        if output < nin or r.shape != full:
            r = xp.broadcast_to(xp.asarray(r, dtype=out_dtype), full).copy()
        return r

    return run


def numpy_program(c: Composite) -> Callable[..., Any]:
    """The program's generated entry function itself (no wrapper call on the hot path); its
    attributes give the plans, ``accepts_out`` and the NumpyProgram."""
    prog = NumpyProgram(c)
    entry = prog._entry
    entry.program = prog
    entry.plans = prog.plans
    entry.accepts_out = prog.accepts_out
    return entry
