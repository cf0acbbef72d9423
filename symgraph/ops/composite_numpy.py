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

# Ops whose NumPy implementation is not a single ufunc: the source lines that compute them into
# ``o`` with the same ufunc calls (hence the same rounding) as their table implementation (a test
# compares every table op with the unfused Elemwise bit for bit, so a formula changed there shows
# up). Each gets the argument names, the output name and ``k(value)``, which names a 0-d constant
# of the step's dtype. ``o`` may alias the argument of a one-input op, never an argument of a
# several-input op. Written inline rather than as helper functions: on 128-element vectors a
# Python call costs as much as a ufunc call.
#
# Measured on NumPy 2.4 (128 float32): a ufunc call with a positional ``out`` costs ~0.22 us, with
# ``out=`` ~0.27 us, except maximum/minimum, whose positional ``out`` takes a slow path (~1.4 us
# against ~0.33 us with ``out=``); a constant operand as a 0-d array ~0.23 us, as a NumPy scalar
# ~0.44 us (hard_sigmoid went from ~4.8 us to ~1.2 us).
_KEYWORD_OUT = {"maximum", "minimum"}
# np.copyto without its __array_function__ dispatch (~0.35 us a call): plans only see ndarrays
_copyto = getattr(np.copyto, "_implementation", np.copyto)


def _ufunc_call(name: str, args: list[str], o: str, ufunc: str | None = None) -> str:
    """``name(args..., o)``; ``ufunc`` is the ufunc's own name when ``name`` is an alias."""
    out = f"out={o}" if (ufunc or name) in _KEYWORD_OUT else o
    return f"{name}({', '.join(args)}, {out})"


def _sigmoid_src(a, o, k, info):
    return [  # 1 / (1 + exp(-x)), as the table computes it; overflow to inf gives exactly 0
        _ufunc_call("negative", [a[0]], o),
        _ufunc_call("exp", [o], o),
        _ufunc_call("add", [o, k(1)], o),
        _ufunc_call("reciprocal", [o], o),
    ]


def _hard_sigmoid_src(a, o, k, info):
    return [  # maximum/minimum rather than np.clip: same values (NaN stays NaN), no wrapper
        _ufunc_call("multiply", [a[0], k(0.2)], o),
        _ufunc_call("add", [o, k(0.5)], o),
        _ufunc_call("maximum", [o, k(0)], o),
        _ufunc_call("minimum", [o, k(1)], o),
    ]


def _softplus_src(a, o, k, info):
    return [_ufunc_call("logaddexp", [k(0), a[0]], o)]


def _relu_src(a, o, k, info):
    return [_ufunc_call("maximum", [a[0], k(0)], o)]


def _switch_src(a, o, k, info):
    cond = a[0] if info.arg_dtypes[0] == "bool" else f"{a[0]} != 0"  # where= wants booleans
    return [f"copyto({o}, {a[2]})", f"copyto({o}, {a[1]}, where={cond})"]


def _clip_src(a, o, k, info):
    return [_ufunc_call("maximum", [a[0], a[1]], o), _ufunc_call("minimum", [o, a[2]], o)]


def _copy_src(a, o, k, info):
    return [f"copyto({o}, {a[0]}, casting='unsafe')"]


def _round_src(a, o, k, info):
    if np.dtype(info.dtype).kind == "f":
        return [_ufunc_call("rint", [a[0]], o)]
    return [f"copyto({o}, {a[0]})"]


# Variants whose intermediate overflow is expected; a plan containing one runs under
# ``np.errstate(over="ignore")``, entered once per call (it costs about as much as a ufunc call).
_OVERFLOW_EXPECTED = {"sigmoid"}

_OUT_VARIANTS: dict[str, Callable[..., list[str]]] = {
    "sigmoid": _sigmoid_src,
    "hard_sigmoid": _hard_sigmoid_src,
    "softplus": _softplus_src,
    "relu": _relu_src,
    "switch": _switch_src,
    "clip": _clip_src,
    "identity": _copy_src,
    "round": _round_src,
}
# the ufuncs the variants name, bound in every plan's namespace
_VARIANT_UFUNCS = [
    "negative", "exp", "add", "reciprocal", "multiply", "maximum", "minimum", "logaddexp", "rint"
]  # fmt: skip


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

    def fixed(self, shapes: tuple, alias: int | None = None) -> Callable[..., Any]:
        """An entry for inputs of exactly these ``shapes`` (a graph whose static shapes are all
        known, as in a loop step compiled for its per-step shapes): the plans for no ``out`` and
        for ``out`` being input ``alias`` are bound directly, with no key built and no lookup per
        call (~0.3 us of a ~2 us program on 128-element vectors); any other ``out`` takes the
        general entry."""
        nin = self.composite.nin
        args = ", ".join(f"x{k}" for k in range(nin))
        env = {"general": self._entry, "p_none": _plan(self.composite, shapes, -1)[0]}
        lines = [f"def fixed_{self.composite.name}({args}, out=None):"]
        lines.append("    if out is None:")
        lines.append(f"        return p_none({args}, None)")
        if alias is not None and self.accepts_out:
            env["p_alias"] = _plan(self.composite, shapes, alias)[0]
            lines.append(f"    if out is x{alias}:")
            lines.append(f"        return p_alias({args}, out)")
        lines.append(f"    return general({args}, out=out)")
        exec(compile("\n".join(lines) + "\n", f"<symgraph {self.composite.name}>", "exec"), env)
        fn = env[f"fixed_{self.composite.name}"]
        fn.program = self
        fn.plans = self.plans
        fn.accepts_out = self.accepts_out
        return fn

    def _build(self, key: tuple) -> Callable[..., Any]:
        fn, self.source = _plan(self.composite, key[:-1], key[-1])
        if len(self.plans) >= self.MAX_PLANS:
            self.plans.pop(next(iter(self.plans)))
        self.plans[key] = fn
        return fn


# Scratch buffers shared by all fused programs, by (size, dtype, rank among the buffers one
# program holds at once). A program's intermediates die before it returns, so programs running
# one after another can use the same memory: fewer buffers, fewer cache and page misses. (As
# with the buffers themselves, a compiled function must not run in two threads at once.)
_SCRATCH: dict[tuple, np.ndarray] = {}


def _scratch(shape: tuple, dtype: Any, rank: int) -> np.ndarray:
    # keyed by size, not shape: an 8000 x 128 and a 128 x 8000 program (an embedding's and an
    # output layer's update) then share the same memory, as the allocator would for temporaries
    size = int(np.prod(shape))
    key = (size, np.dtype(dtype).str, rank)
    buf = _SCRATCH.get(key)
    if buf is None:
        buf = _SCRATCH[key] = np.empty(size, dtype)
    return buf.reshape(shape)


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

    env: dict[str, Any] = {"np": np, "empty": np.empty, "copyto": _copyto}
    env.update((u, getattr(np, u)) for u in _VARIANT_UFUNCS)
    lines = [f"def plan({', '.join(f'x{k}' for k in range(nin))}, out):"]
    lines.append("    if out is None:")
    lines.append(f"        out = empty({full!r}, out_dtype)")  # a dtype object: faster
    env["out_dtype"] = np.dtype(out_dtype)
    if c.output < nin:  # the program returns one of its inputs: a broadcast copy
        lines.append(f"    copyto(out, x{c.output}, casting='unsafe')")
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
                # ranks count buffers of one size and dtype: two shapes of one size in this
                # program (x[:, None] and x[None, :]) must not share memory
                size_key = (int(np.prod(shapes[v])), np.dtype(info.dtype).str)
                rank = per_key[size_key] = per_key.get(size_key, -1) + 1
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
        lines += ["    " + x for x in _step_call(info, [where[a] for a in info.args], slot, env, j)]
    if any(infos[j].op.name in _OVERFLOW_EXPECTED for j in needed):
        lines[3:] = ['    with np.errstate(over="ignore"):'] + ["    " + x for x in lines[3:]]
    lines.append("    return out")
    return _exec_plan(lines, env)


def _aliasable(info: StepInfo) -> bool:
    """True when the step is one ufunc call (which may write over one of its own arguments)."""
    if info.mode == "cast_inputs" and info.op.name in _OUT_VARIANTS:
        return info.op.nin == 1
    return isinstance(info.op.numpy(np), np.ufunc) or info.op.nin == 1


def _step_call(info: StepInfo, args: list[str], out: str, env: dict, j: int) -> list[str]:
    """Source lines computing step ``j`` into the buffer named ``out``."""
    op = info.op
    fn = op.numpy(np)
    name = f"{op.name.strip('_')}_{j}"
    if isinstance(fn, np.ufunc):
        env[name] = fn
        if info.mode == "plain":
            return [_ufunc_call(name, args, out, fn.__name__)]
        if info.mode == "cast_inputs":
            return [f"{name}({', '.join(args)}, out={out}, dtype={info.dtype!r}, casting='unsafe')"]
        return [f"{name}({', '.join(args)}, out={out}, casting='unsafe')"]
    variant = _OUT_VARIANTS.get(op.name)
    if op.name.startswith("cast_"):
        variant = _copy_src

    def const(value: float) -> str:  # a 0-d array of the step's dtype, bound once per plan
        cname = f"k_{info.dtype}_{str(value).replace('.', '_').replace('-', 'm')}"
        env[cname] = np.array(value, dtype=info.dtype)
        return cname

    if variant is not None and info.mode == "plain":
        return variant(args, out, const, info)
    if variant is not None and info.mode == "cast_inputs" and op.nin == 1:
        # convert the argument into the output buffer, then compute there
        return [f"copyto({out}, {args[0]}, casting='unsafe')"] + variant([out], out, const, info)
    # Anything else: the table's own function (allocates), converted into the buffer.
    env[name] = fn
    if info.mode == "cast_inputs":
        cast = ", ".join(f"{a}.astype({info.dtype!r})" for a in args)
        return [f"copyto({out}, {name}({cast}), casting='unsafe')"]
    return [f"copyto({out}, {name}({', '.join(args)}), casting='unsafe')"]


def _exec_plan(lines: list[str], env: dict) -> tuple[Callable[..., Any], str]:
    src = "\n".join(lines) + "\n"
    exec(compile(src, "<symgraph fused plan>", "exec"), env)
    return env["plan"], src


def generic_program(c: Composite, xp: Any) -> Callable[..., Any]:
    """Step by step with the table's functions (any array module), casting like Elemwise. A
    multi-output program returns a tuple; each result has the broadcast shape of the inputs it
    depends on."""
    fns = [op.numpy(xp) for op, _ in c.steps]
    infos = c.infos
    needed = c.needed_steps()
    nin, outputs = c.nin, c.outputs
    out_dtypes = c.output_dtypes()
    # a single result keeps Elemwise's rule: the broadcast shape of all inputs
    depends = c.inputs_of() if c.nout > 1 else [tuple(range(nin))]

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
        results = []
        for o, dtype, used in zip(outputs, out_dtypes, depends):
            full = np.broadcast_shapes(*[xs[k].shape for k in used])
            r = values[o]
            if o < nin or r.shape != full:
                r = xp.broadcast_to(xp.asarray(r, dtype=dtype), full).copy()
            results.append(r)
        return results[0] if len(results) == 1 else tuple(results)

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
