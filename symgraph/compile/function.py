"""``function(inputs, outputs, updates=...)``: compile a graph into a callable.

Steps: check the arguments (naming the user's variables and lines on any mistake), substitute
``givens``, run the rewrite pipeline, then link the toposorted graph into a generated Python
function. Updates are computed from the old values and assigned only after every output and update
has been computed, so an error never leaves shared state half-updated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import config
from ..errors import (
    GraphTypeError,
    MissingInputError,
    UnusedInputError,
    report,
    user_line,
    where,
)
from ..graph import (
    Constant,
    SharedVariable,
    Variable,
    ancestors,
    clone_replace,
    graph_inputs,
)
from ..ops.basic import as_tensor_variable
from .checks import (
    check_float64,
    check_inputs,
    check_shared_placement,
    check_updates,
    normalize_pairs,
)
from .linker import link


class In:
    """An input with options, as in Theano: ``In(x, value=default, name=...)``."""

    def __init__(self, variable: Variable, name: str | None = None, value: Any = None):
        self.variable = variable
        self.name = name or variable.name
        self.value = value


def function(
    inputs: Sequence[Variable | In] = (),
    outputs: Variable | Sequence[Variable] | None = None,
    updates: Any = None,
    givens: Any = None,
    on_unused_input: str = "raise",
    allow_input_downcast: bool | None = None,
    name: str | None = None,
    mode: Any = None,
    profile: bool = False,
    device: str | None = None,
    nan_guard: bool | None = None,
) -> Function:
    """Compile ``outputs`` (a variable, a list, or None) as a function of ``inputs``.

    ``updates``: pairs ``(shared_variable, new_value_expression)`` (list or dict), applied after the
    outputs are computed. ``givens``: pairs ``(variable, replacement)`` substituted in the graph.
    """
    t0 = time.perf_counter()
    trace = user_line()
    fname = name or (
        f"function@{trace.filename.rsplit('/', 1)[-1]}:{trace.lineno}" if trace else "f"
    )
    in_specs = [i if isinstance(i, In) else In(i) for i in (inputs or [])]
    in_vars = [s.variable for s in in_specs]
    check_inputs(in_vars, trace)

    single = outputs is not None and not isinstance(outputs, list | tuple)
    out_list = [] if outputs is None else ([outputs] if single else list(outputs))
    out_list = [as_tensor_variable(o) for o in out_list]

    upd_pairs = normalize_pairs(updates, "updates")
    upd_pairs = check_updates(upd_pairs)
    given_pairs = normalize_pairs(givens, "givens")
    for old, _new in given_pairs:
        if not isinstance(old, Variable):
            raise GraphTypeError(f"givens keys must be symbolic variables, got {old!r}")

    # substitute givens in outputs and update expressions
    targets = out_list + [u for _, u in upd_pairs]
    if given_pairs:
        rep = {old: as_tensor_variable(new) for old, new in given_pairs}
        for old, new in rep.items():
            if old.dtype != new.dtype or old.ndim != new.ndim:
                raise GraphTypeError(
                    f"givens: {old.describe()} ({old.type}) cannot be replaced by "
                    f"{new.describe()} ({new.type}){where(trace)}"
                )
        targets = clone_replace(targets, rep)

    # every graph input must be provided
    provided = {id(v) for v in in_vars}
    leaves = graph_inputs(targets)
    for v in leaves:
        if id(v) in provided or isinstance(v, Constant | SharedVariable):
            continue
        raise MissingInputError(
            f"{fname}: the outputs need {v.describe()}, which is not among the inputs"
            f"{where(v.trace)}\n  (the function was compiled{where(trace)[13:]})"
        )
    used = ancestors(targets)
    for v in in_vars:
        if id(v) not in used:
            msg = (
                f"{fname}: input {v.describe()} is not used to compute the outputs"
                f"{where(v.trace)}\n  (pass on_unused_input='warn' or 'ignore' to allow this)"
            )
            report(on_unused_input, UnusedInputError, msg)

    from ..backends import get_backend
    from ..rewrite import optimize

    backend = get_backend(device)
    shared_vars = [v for v in leaves if isinstance(v, SharedVariable)]
    check_shared_placement(fname, shared_vars + [s for s, _ in upd_pairs], backend)
    mode = mode or config.mode
    if mode not in ("FAST_RUN", "FAST_COMPILE", "DEBUG_MODE"):
        raise ValueError(f"mode must be 'FAST_RUN', 'FAST_COMPILE' or 'DEBUG_MODE', got {mode!r}")
    t1 = time.perf_counter()
    profiler = None
    if mode == "DEBUG_MODE":
        from .debugmode import link_debug

        program, nodes = link_debug(in_vars, targets, backend)
        t2 = time.perf_counter()
    else:
        targets, nodes = optimize(in_vars, targets, mode, device=backend.name)
        check_float64(nodes)
        t2 = time.perf_counter()
        if profile:
            from ..profiling import Profiler

            profiler = Profiler(fname, nodes)
        guard = config.nan_guard if nan_guard is None else nan_guard
        n_out = len(out_list)
        inplace_updates = [(e, s) for e, (s, _) in zip(targets[n_out:], upd_pairs)]
        program = link(
            in_vars,
            targets,
            nodes,
            backend,
            nan_guard=guard,
            profiler=profiler,
            updates=inplace_updates,
            host_inputs=[k for k, v in enumerate(in_vars) if v.ndim == 0],
            host_outputs_ok=True,  # results return to the caller; updates are moved in _call
        )
    t3 = time.perf_counter()
    fn = Function(
        program,
        in_specs,
        n_outputs=len(out_list),
        single=single,
        update_targets=[s for s, _ in upd_pairs],
        backend=backend,
        allow_input_downcast=bool(allow_input_downcast),
        name=fname,
    )
    fn.compile_times = {"check": t1 - t0, "rewrite": t2 - t1, "link": t3 - t2}
    fn.profile = profiler
    if profiler is not None:
        profiler.compile_times = fn.compile_times
    return fn


class Function:
    """A compiled function. Call it with input values (positionally or by input name)."""

    def __init__(
        self,
        program,
        in_specs: list[In],
        n_outputs: int,
        single: bool,
        update_targets: list[SharedVariable],
        backend: Any,
        allow_input_downcast: bool,
        name: str,
    ):
        self.program = program
        self.in_specs = in_specs
        self.inputs = [s.variable for s in in_specs]
        self.n_outputs = n_outputs
        self.single = single
        self.update_targets = update_targets
        self.backend = backend
        self.name = name
        self.allow_input_downcast = allow_input_downcast
        self._fn = program.fn
        self._types = [(v.type, np.dtype(v.dtype), v.ndim) for v in self.inputs]
        self._names = {s.name: k for k, s in enumerate(in_specs) if s.name}
        self._on_device = backend.name != "cpu"
        host_inputs = set(program.host_inputs)
        # on a device, inputs are copied over once per call, except 0-d ones (host values)
        self._to_device = [k not in host_inputs for k in range(len(self.inputs))]
        self._trust_input = False
        self._n_in = len(self._types)
        # outputs (and new shared values) that are inputs, shared or constant values, or views
        # of them (x[1:], x.T), are copied so callers cannot mutate state through them
        self._copy_outputs = {
            k for k, o in enumerate(program.outputs[:n_outputs]) if _may_alias_state(o)
        }
        self._copy_updates = {
            k for k, o in enumerate(program.outputs[n_outputs:]) if _may_alias_state(o)
        }
        # host-side fast path; device functions move their inputs and outputs in ``_call``
        self._fast = None if self._on_device else self._build_fast_call()

    @property
    def trust_input(self) -> bool:
        """True: skip the input checks (the caller guarantees the types), as in Theano."""
        return self._trust_input

    @trust_input.setter
    def trust_input(self, value: bool) -> None:
        self._trust_input = bool(value)

    @property
    def source(self) -> str:
        """The generated Python source (one line per node)."""
        return self.program.source

    def _convert(self, k: int, value: Any) -> Any:
        t, dt, nd = self._types[k]
        v = self.inputs[k]
        label = f"input {k} ({v.describe()}) of {self.name}"
        arr = t.check_value(value, label, self.allow_input_downcast)
        return arr

    def _build_fast_call(self) -> Any:
        """Generated code for the common call: positional host arrays of the right types.

        Each input costs one type, dtype and rank test; anything else goes through the checks
        of ``_convert`` (which raise the errors naming the input)."""
        n_in = len(self._types)
        args = [f"a{k}" for k in range(n_in)]
        env: dict[str, Any] = {
            "fn": self._fn,
            "ndarray": np.ndarray,
            "asarray": np.asarray,
            "conv": self._convert,
        }
        lines = [f"def fast_call({', '.join(args)}):"]
        for k, (t, dt, nd) in enumerate(self._types):
            env[f"dt{k}"] = dt
            test = f"type(a{k}) is not ndarray or a{k}.dtype is not dt{k} or a{k}.ndim != {nd}"
            if None not in t.shape:
                test += f" or a{k}.shape != {t.shape!r}"
            lines.append(f"    if {test}:")
            lines.append(f"        a{k} = conv({k}, a{k})")
        lines.append(f"    r = fn({', '.join(args)})")
        n = self.n_outputs
        for k, target in enumerate(self.update_targets):
            env[f"t{k}"] = target
            lines.append(f"    u = r[{n + k}]")
            lines.append("    if type(u) is not ndarray:")
            lines.append("        u = asarray(u)  # NumPy ops on 0-d arrays return scalars")
            copy = ".copy()" if k in self._copy_updates else ""
            lines.append(f"    t{k}.value = u{copy}")
        outs = []
        for k in range(n):
            lines.append(f"    o{k} = r[{k}]")
            lines.append(f"    if type(o{k}) is not ndarray:")
            lines.append(f"        o{k} = asarray(o{k})")
            if k in self._copy_outputs:
                lines.append(f"    o{k} = o{k}.copy()")
            outs.append(f"o{k}")
        if self.single:
            lines.append("    return o0")
        else:
            lines.append(f"    return [{', '.join(outs)}]")
        exec(compile("\n".join(lines) + "\n", f"<symgraph call {self.name}>", "exec"), env)
        return env["fast_call"]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and len(args) == self._n_in and self._fast is not None:
            if not self.trust_input:
                return self._fast(*args)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if kwargs or len(args) != len(self._types):
            args = self._bind(args, kwargs)
        if not self.trust_input:
            vals = []
            for k, a in enumerate(args):
                t = self._types[k]
                if not (type(a) is np.ndarray and a.dtype == t[1] and a.ndim == t[2]):
                    a = self._convert(k, a)
                elif None not in t[0].shape and a.shape != t[0].shape:
                    a = self._convert(k, a)
                vals.append(a)
            args = vals
        if self._on_device:
            to_device = self.backend.to_device
            args = [to_device(a) if d else a for a, d in zip(args, self._to_device)]
        results = self._fn(*args)
        n = self.n_outputs
        for k, (target, value) in enumerate(zip(self.update_targets, results[n:])):
            # NumPy ops on 0-d arrays return scalars; shared state stays an ndarray
            if isinstance(value, np.generic):
                value = np.asarray(value)
            if self._on_device and type(value) is np.ndarray:  # computed on the host
                value = self.backend.to_device(value)
            target.value = value.copy() if k in self._copy_updates else value
        outs = results[:n]
        if self._on_device:
            to_host = self.backend.to_host
            outs = [to_host(o) for o in outs]
        outs = [o if type(o) is np.ndarray else np.asarray(o) for o in outs]
        if self._copy_outputs:
            outs = [o.copy() if k in self._copy_outputs else o for k, o in enumerate(outs)]
        if self.single:
            return outs[0]
        return outs

    def _bind(self, args: tuple, kwargs: dict) -> list:
        values: list[Any] = list(args) + [_MISSING] * (len(self._types) - len(args))
        if len(args) > len(self._types):
            raise TypeError(f"{self.name} takes {len(self._types)} inputs, got {len(args)}")
        for key, val in kwargs.items():
            if key not in self._names:
                raise TypeError(f"{self.name} has no input named {key!r}")
            values[self._names[key]] = val
        for k, v in enumerate(values):
            if v is _MISSING:
                if self.in_specs[k].value is not None:
                    values[k] = self.in_specs[k].value
                else:
                    raise TypeError(
                        f"{self.name}: missing input {k} ({self.inputs[k].describe()}); it takes "
                        f"{len(self._types)} inputs"
                    )
        return values

    def __repr__(self) -> str:
        return f"<symgraph Function {self.name}>"


_MISSING = object()


def _may_alias_state(v: Variable) -> bool:
    """True when ``v``'s value may share memory with an input, shared or constant value: it is
    one, or a view of one through ops that do not always return fresh arrays."""
    from .inplace import returns_fresh

    stack, seen = [v], set()
    while stack:
        v = stack.pop()
        if v.owner is None:
            return True
        if id(v) in seen or returns_fresh(v.owner):
            continue
        seen.add(id(v))
        stack.extend(v.owner.inputs)
    return False
