"""``Composite``: a fused elementwise program, used as the scalar op of one ``Elemwise`` node.

A Composite is a straight-line program over scalar ops from the table in ``scalar.py``. Values are
numbered: ``0 .. nin-1`` are the inputs, ``nin + j`` is the result of ``steps[j]``; ``output`` is
the value returned. Each intermediate has the dtype its scalar op's rule gives, exactly as the
unfused chain of ``Elemwise`` nodes would, so fusing never changes a result's dtype or rounding.

On NumPy the program runs as a short generated Python function of ufunc calls writing into
buffers that are reused across calls (one fresh array per call: the output). On CUDA,
``symgraph.codegen`` renders the same program as one kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import scalar as S

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
    np_.clip(out, 0, 1, out=out)


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


def _numpy_dtype(op: S.ScalarOp, dtypes: tuple[str, ...]) -> str:
    """The dtype NumPy's own implementation of ``op`` returns for these input dtypes."""
    probe = getattr(op, "numpy_dtype", None)
    if probe is not None:
        return probe(*dtypes)
    args = [np.ones(1, dtype=d) for d in dtypes]
    with np.errstate(all="ignore"):
        return np.asarray(op.numpy(np)(*args)).dtype.name


class StepInfo:
    """How one step computes: its dtypes and how NumPy casts around it (see ``Elemwise``)."""

    __slots__ = ("op", "args", "arg_dtypes", "dtype", "compute_dtype", "mode")

    def __init__(self, op: S.ScalarOp, args: tuple[int, ...], arg_dtypes: tuple[str, ...]):
        self.op = op
        self.args = args
        self.arg_dtypes = arg_dtypes
        self.dtype = op.output_dtype(*arg_dtypes)  # the step's result dtype (the op's rule)
        natural = _numpy_dtype(op, arg_dtypes)
        if natural == self.dtype:
            self.mode = "plain"
            self.compute_dtype = self.dtype
        elif S.is_float(self.dtype) and op.dtype_rule == "float":
            # e.g. tanh of int32 in a float32 graph: cast the inputs, compute in float32
            self.mode = "cast_inputs"
            self.compute_dtype = self.dtype
        else:  # NumPy computes in its own dtype; the result is converted to the rule's dtype
            self.mode = "cast_output"
            self.compute_dtype = natural


class Composite:
    """A fused scalar program; duck-types ``ScalarOp`` so that ``Elemwise(Composite(...))`` works.

    ``input_dtypes``: dtypes of the inputs. ``steps``: ``(scalar_op, argument value numbers)``.
    ``output``: the value number returned. ``origin``: readable descriptions of the fused nodes
    (op and user's file:line), for error messages; not part of equality.
    """

    is_composite = True
    dtype_rule = "composite"
    out_dtype = None
    commutative = False

    def __init__(
        self,
        input_dtypes: Sequence[str],
        steps: Sequence[tuple[S.ScalarOp, tuple[int, ...]]],
        output: int,
        origin: Sequence[str] = (),
    ):
        self.input_dtypes = tuple(np.dtype(d).name for d in input_dtypes)
        self.steps = tuple((op, tuple(int(a) for a in args)) for op, args in steps)
        self.output = int(output)
        self.origin = tuple(origin)
        self.nin = len(self.input_dtypes)
        n_values = self.nin + len(self.steps)
        for j, (op, args) in enumerate(self.steps):
            if len(args) != op.nin:
                raise TypeError(
                    f"Composite step {j}: {op.name} takes {op.nin} arguments, got {args}"
                )
            if any(a < 0 or a >= self.nin + j for a in args):
                raise ValueError(
                    f"Composite step {j} ({op.name}) reads values {args}; only values "
                    f"0..{self.nin + j - 1} exist before it"
                )
        if not 0 <= self.output < n_values:
            raise ValueError(f"Composite output {self.output} is not one of its {n_values} values")
        self._infos: dict[tuple[str, ...], list[StepInfo]] = {}
        self.infos = self.step_infos(self.input_dtypes)
        self.name = _readable_name([op for op, _ in self.steps])
        self._key = (self.input_dtypes, self.steps, self.output)
        self._hash = hash(self._key)

    # -- dtypes ---------------------------------------------------------------------------------

    def step_infos(self, input_dtypes: Sequence[str]) -> list[StepInfo]:
        """Per step dtype information for these input dtypes (those given at construction by
        default). Raises TypeError when some step has no NumPy loop for its dtypes."""
        key = tuple(np.dtype(d).name for d in input_dtypes)
        if key not in self._infos:
            if len(key) != self.nin:
                raise TypeError(f"{self.name} takes {self.nin} inputs, got {len(key)}")
            dtypes = list(key)
            infos = []
            for op, args in self.steps:
                info = StepInfo(op, args, tuple(dtypes[a] for a in args))
                infos.append(info)
                dtypes.append(info.dtype)
            self._infos[key] = infos
        return self._infos[key]

    def value_dtypes(self, input_dtypes: Sequence[str] | None = None) -> list[str]:
        dtypes = self.input_dtypes if input_dtypes is None else input_dtypes
        return [np.dtype(d).name for d in dtypes] + [i.dtype for i in self.step_infos(dtypes)]

    def output_dtype(self, *dtypes: str) -> str:
        return self.value_dtypes(dtypes or None)[self.output]

    def numpy_dtype(self, *dtypes: str) -> str:
        # the NumPy implementation returns exactly output_dtype (Elemwise then casts nothing)
        return self.output_dtype(*dtypes)

    # -- structure --------------------------------------------------------------------------------

    def needed_steps(self) -> list[int]:
        """Indices of the steps the output depends on, in order."""
        needed = {self.output}
        for j in range(len(self.steps) - 1, -1, -1):
            if self.nin + j in needed:
                needed.update(self.steps[j][1])
        return [j for j in range(len(self.steps)) if self.nin + j in needed]

    def formula(self, names: Sequence[str] | None = None) -> str:
        """The program as one readable expression, e.g. ``tanh(add(x0, x1))``."""
        texts = list(names) if names is not None else [f"x{k}" for k in range(self.nin)]
        for op, args in self.steps:
            texts.append(f"{op.name}({', '.join(texts[a] for a in args)})")
        return texts[self.output]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Composite) and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    # -- evaluation ---------------------------------------------------------------------------

    def numpy(self, xp: Any) -> Callable[..., Any]:
        """The program as a function over arrays of module ``xp``, broadcasting like NumPy and
        returning an array of exactly ``output_dtype``."""
        if xp is np:
            return _NumpyProgram(self)
        return _generic_program(self, xp)

    def make_impl(self, node: Any, backend: Any) -> Callable[..., Any]:
        dtypes = tuple(v.dtype for v in node.inputs)
        program = (
            self if dtypes == self.input_dtypes else Composite(dtypes, self.steps, self.output)
        )
        return program.numpy(backend.xp)

    # -- gradient -----------------------------------------------------------------------------

    def expand(self, inputs: Sequence[Any]) -> Any:
        """The program rebuilt as a graph of ordinary ``Elemwise`` nodes over ``inputs``."""
        from .elemwise import Elemwise

        values = list(inputs)
        for j in self.needed_steps():
            op, args = self.steps[j]
            while len(values) < self.nin + j:
                values.append(None)  # a step the output does not need
            values.append(Elemwise(op)(*[values[a] for a in args]))
        return values[self.output]

    def grad(self, T: Any, inputs: Sequence[Any], output: Any, gz: Any) -> list:
        """Differentiate by expanding back into Elemwise ops (fusion normally runs after grad)."""
        from ..grad import grad

        expanded = self.expand(inputs)
        wrt = [v for v in inputs if S.is_float(v.dtype)]
        if not wrt:
            return [None] * len(inputs)
        gs = grad(
            None,
            wrt,
            known_grads={expanded: gz},
            disconnected_inputs="ignore",
            return_disconnected="none",
        )
        by_id = {id(v): g for v, g in zip(wrt, gs)}
        return [by_id.get(id(v)) for v in inputs]


def _readable_name(ops: Sequence[S.ScalarOp], limit: int = 6) -> str:
    names = [op.name.strip("_") for op in ops]
    if len(names) > limit:
        names = names[:limit] + [f"{len(names) - limit}more"]
    return "fused_" + "_".join(names)


# -- NumPy: generated straight-line functions over reused buffers -------------------------------


class _NumpyProgram:
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
        src = (
            f"def {composite.name}({args}):\n"
            f"    plan = plans.get(({shapes}))\n"
            f"    if plan is None:\n"
            f"        plan = build(({shapes}))\n"
            f"    return plan({args})\n"
        )
        env = {"plans": self.plans, "build": self._build}
        exec(compile(src, f"<symgraph {composite.name}>", "exec"), env)
        self._entry = env[composite.name]
        self.source = ""  # the latest generated plan, for debugging

    def __call__(self, *xs: Any) -> Any:
        return self._entry(*xs)

    def _build(self, shapes: tuple) -> Callable[..., Any]:
        fn, self.source = _plan(self.composite, shapes)
        if len(self.plans) >= self.MAX_PLANS:
            self.plans.pop(next(iter(self.plans)))
        self.plans[shapes] = fn
        return fn


def _plan(c: Composite, in_shapes: tuple) -> tuple[Callable[..., Any], str]:
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
    lines = [f"def plan({', '.join(f'x{k}' for k in range(nin))}):"]
    lines.append(f"    out = empty({full!r}, {out_dtype!r})")
    if c.output < nin:  # the program returns one of its inputs: a broadcast copy
        lines.append(f"    np.copyto(out, x{c.output}, casting='unsafe')")
        lines.append("    return out")
        return _exec_plan(lines, env)

    # Slots: "out" (the fresh output array) and scratch buffers "b<k>", kept across calls.
    where: dict[int, str] = {k: f"x{k}" for k in range(nin)}  # value -> slot or input name
    slot_key: dict[str, tuple] = {"out": (full, out_dtype)}
    free: list[str] = []
    held: dict[str, int] = {}  # slot -> value it holds
    final = c.output - nin
    final_aliasable = _aliasable(infos[final])
    n_buffers = 0
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
                env[slot] = np.empty(shapes[v], info.dtype)
                slot_key[slot] = key
        for a in dying:
            s = where[a]
            if held.get(s) == a:
                del held[s]
                if s != slot and s != "out":
                    free.append(s)
        held[slot] = v
        where[v] = slot
        lines.append("    " + _step_call(info, [where[a] for a in info.args], slot, env, j))
    if any(infos[j].op.name in _OVERFLOW_EXPECTED for j in needed):
        lines[2:] = ['    with np.errstate(over="ignore"):'] + ["    " + x for x in lines[2:]]
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


def _generic_program(c: Composite, xp: Any) -> Callable[..., Any]:
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


def single(op: S.ScalarOp, input_dtypes: Sequence[str]) -> Composite:
    """A one-step Composite applying ``op`` to all its inputs (codegen renders plain Elemwise
    nodes this way)."""
    n = len(input_dtypes)
    return Composite(input_dtypes, [(op, tuple(range(n)))], n)
