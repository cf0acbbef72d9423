"""``Composite``: a fused elementwise program, used as the scalar op of one ``Elemwise`` node.

A Composite is a straight-line program over scalar ops from the table in ``scalar.py``. Values are
numbered: ``0 .. nin-1`` are the inputs, ``nin + j`` is the result of ``steps[j]``; ``output`` is
the value returned, or a tuple of them: a multi-output program (made on a device, where one
kernel computing several results saves launches and reads; see ``rewrite/multi_fusion.py``).
Each intermediate has the dtype its scalar op's rule gives, exactly as the unfused chain of
``Elemwise`` nodes would, so fusing never changes a result's dtype or rounding.

On NumPy the program runs as a short generated Python function of ufunc calls writing into
buffers that are reused across calls (one fresh array per call: the output). On CUDA,
``symgraph.codegen`` renders the same program as one kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import scalar as S


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
    ``output``: the value number returned, or a sequence of them (``outputs`` always holds the
    tuple; ``output`` is refused on a multi-output program, so that no code reads only its
    first result by mistake). ``origin``: readable descriptions of the fused nodes
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
        output: int | Sequence[int],
        origin: Sequence[str] = (),
    ):
        self.input_dtypes = tuple(np.dtype(d).name for d in input_dtypes)
        self.steps = tuple((op, tuple(int(a) for a in args)) for op, args in steps)
        if isinstance(output, (int, np.integer)):
            self.outputs: tuple[int, ...] = (int(output),)
        else:
            self.outputs = tuple(int(o) for o in output)
        self.nout = len(self.outputs)
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
        if not self.outputs or any(not 0 <= o < n_values for o in self.outputs):
            raise ValueError(
                f"Composite outputs {self.outputs} are not among its {n_values} values"
            )
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"Composite outputs {self.outputs} name a value twice")
        self._infos: dict[tuple[str, ...], list[StepInfo]] = {}
        self.infos = self.step_infos(self.input_dtypes)
        self.name = _readable_name([op for op, _ in self.steps])
        if self.nout > 1:
            self.name += f"_{self.nout}out"
        self._key = (self.input_dtypes, self.steps, self.outputs)
        self._hash = hash(self._key)

    @property
    def output(self) -> int:
        """The value returned by a single-output program."""
        if self.nout != 1:
            raise AttributeError(f"{self.name} has {self.nout} outputs: read .outputs")
        return self.outputs[0]

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

    def output_dtypes(self, *dtypes: str) -> list[str]:
        values = self.value_dtypes(dtypes or None)
        return [values[o] for o in self.outputs]

    def check_dtypes(self, *dtypes: str) -> None:
        """Raises TypeError when some step has no NumPy loop for these input dtypes."""
        self.step_infos(dtypes)

    def numpy_dtype(self, *dtypes: str) -> str:
        # the NumPy implementation returns exactly output_dtype (Elemwise then casts nothing)
        return self.output_dtype(*dtypes)

    # -- structure --------------------------------------------------------------------------------

    def needed_steps(self) -> list[int]:
        """Indices of the steps the outputs depend on, in order."""
        return _needed(set(self.outputs), self.nin, self.steps)

    def inputs_of(self) -> list[tuple[int, ...]]:
        """Per output, the inputs it depends on, in order. A result has the broadcast shape of
        these (as each value had before fusing); see ``Elemwise``."""
        deps: list[frozenset[int]] = [frozenset([k]) for k in range(self.nin)]
        for _, args in self.steps:
            deps.append(frozenset().union(*[deps[a] for a in args]))
        return [tuple(sorted(deps[o])) for o in self.outputs]

    def single_output(self, r: int) -> tuple[Composite, tuple[int, ...]]:
        """Result ``r`` alone: a one-output program over only the inputs it depends on, and the
        positions of those inputs in this program's."""
        used = self.inputs_of()[r]
        renumber = {k: i for i, k in enumerate(used)}
        keep = [j for j in _needed({self.outputs[r]}, self.nin, self.steps)]
        for j, k in enumerate(keep):
            renumber[self.nin + k] = len(used) + j
        steps = [(self.steps[k][0], tuple(renumber[a] for a in self.steps[k][1])) for k in keep]
        dtypes = [self.input_dtypes[k] for k in used]
        return Composite(dtypes, steps, renumber[self.outputs[r]], self.origin), used

    def formula(self, names: Sequence[str] | None = None) -> str:
        """The program as one readable expression, e.g. ``tanh(add(x0, x1))`` (several,
        comma separated, for a multi-output program)."""
        texts = list(names) if names is not None else [f"x{k}" for k in range(self.nin)]
        for op, args in self.steps:
            texts.append(f"{op.name}({', '.join(texts[a] for a in args)})")
        return ", ".join(texts[o] for o in self.outputs)

    def with_input_dtypes(self, dtypes: Sequence[str]) -> Composite:
        """The same program over inputs of these dtypes (itself when they are its own)."""
        if tuple(np.dtype(d).name for d in dtypes) == self.input_dtypes:
            return self
        return Composite(dtypes, self.steps, self.outputs, self.origin)

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
        from .composite_numpy import generic_program, numpy_program

        if xp is np and self.nout == 1:
            return numpy_program(self)
        # several outputs: only made for a device, where a host fallback runs step by step
        return generic_program(self, xp)

    def make_impl(self, node: Any, backend: Any) -> Callable[..., Any]:
        return self.with_input_dtypes([v.dtype for v in node.inputs]).numpy(backend.xp)

    # -- gradient -----------------------------------------------------------------------------

    def expand(self, inputs: Sequence[Any]) -> Any:
        """The program rebuilt as a graph of ordinary ``Elemwise`` nodes over ``inputs``: the
        output variable, or the list of them for a multi-output program."""
        from .elemwise import Elemwise

        values = list(inputs)
        for j in self.needed_steps():
            op, args = self.steps[j]
            while len(values) < self.nin + j:
                values.append(None)  # a step the output does not need
            values.append(Elemwise(op)(*[values[a] for a in args]))
        if self.nout > 1:
            return [values[o] for o in self.outputs]
        return values[self.output]

    def grad(self, T: Any, inputs: Sequence[Any], output: Any, gz: Any) -> list:
        """Differentiate by expanding back into Elemwise ops (fusion normally runs after grad).
        For a multi-output program ``gz`` is the list of the outputs' gradients (None for an
        output nothing depends on)."""
        from ..grad import grad

        expanded = self.expand(inputs)
        if self.nout > 1:
            known = {e: g for e, g in zip(expanded, gz) if g is not None}
        else:
            known = {expanded: gz}
        wrt = [v for v in inputs if S.is_float(v.dtype)]
        if not wrt or not known:
            return [None] * len(inputs)
        gs = grad(
            None,
            wrt,
            known_grads=known,
            disconnected_inputs="ignore",
            return_disconnected="none",
        )
        by_id = {id(v): g for v, g in zip(wrt, gs)}
        return [by_id.get(id(v)) for v in inputs]


def _needed(values: set[int], nin: int, steps: Sequence) -> list[int]:
    """Indices of the steps the value numbers ``values`` depend on, in order."""
    needed = set(values)
    for j in range(len(steps) - 1, -1, -1):
        if nin + j in needed:
            needed.update(steps[j][1])
    return [j for j in range(len(steps)) if nin + j in needed]


def _readable_name(ops: Sequence[S.ScalarOp], limit: int = 6) -> str:
    names = [op.name.strip("_") for op in ops]
    if len(names) > limit:
        names = names[:limit] + [f"{len(names) - limit}more"]
    return "fused_" + "_".join(names)


def single(op: S.ScalarOp, input_dtypes: Sequence[str]) -> Composite:
    """A one-step Composite applying ``op`` to all its inputs (codegen renders plain Elemwise
    nodes this way)."""
    n = len(input_dtypes)
    return Composite(input_dtypes, [(op, tuple(range(n)))], n)
