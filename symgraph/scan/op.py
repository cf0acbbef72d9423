"""The Scan op: a loop whose step is an inner graph, traced once and compiled once.

Outer inputs, in order: ``n_steps`` (int64 scalar), the sequences (one per tap; the loop reads row
``t`` at step ``t``), the initial windows of the recurrent outputs (``[L, ...]``: the ``L`` values
before step 0, oldest first, ``L = -min(taps)``), then the non-sequences (passed whole to every
step).

Inner inputs, in the same order: one per-step slice per sequence, one placeholder per tap of each
recurrent output (taps sorted, oldest first), one placeholder per non-sequence.

Outputs, one per :class:`OutSpec`:

- ``state``: fed back. ``store='all'`` returns the ``[L + n, ...]`` buffer (initial window, then one
  row per step); ``store='last'`` returns only the final ``[L, ...]`` window (backward passes use it
  for carried gradients, which are needed once, at the end).
- ``seq``: not fed back; the ``[n, ...]`` stack of the per-step values.
- ``sum``: not fed back; the sum of the per-step values (how gradients of non-sequences add up).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..config import config
from ..errors import GraphTypeError, where
from ..graph import Apply, Op, TensorType, Variable
from ..ops.basic import as_tensor_variable

_uids = itertools.count()
MAX_SPECIALIZED = 8  # inner graphs compiled per op for distinct per-step shapes


class OutSpec(NamedTuple):
    """How the loop treats one inner output."""

    kind: str  # "state" | "seq" | "sum"
    taps: tuple[int, ...] = ()  # state: sorted negative taps
    store: str = "all"  # state: "all" | "last"
    shape_from: int | None = None  # sum: outer input with the sum's shape (for zero steps)

    @property
    def window(self) -> int:
        """``L``: how many past values a state needs (0 for non-states)."""
        return -min(self.taps) if self.taps else 0


class Scan(Op):
    """A loop over ``n_steps`` calls of a compiled inner graph (see the module docstring)."""

    __props__ = ("uid",)

    def __init__(
        self,
        inner_inputs: Sequence[Variable],
        inner_outputs: Sequence[Variable],
        n_seqs: int,
        outs: Sequence[OutSpec],
        *,
        n_from_seqs: bool,
        truncate_gradient: int = -1,
        bptt_truncate: int = -1,
        name: str = "scan",
        mode: str | None = None,
        exact_seqs: Sequence[int] = (),
    ):
        self.uid = next(_uids)
        self.inner_inputs = list(inner_inputs)
        self.inner_outputs = list(inner_outputs)
        self.n_seqs = n_seqs
        self.outs = tuple(outs)
        if len(self.outs) != len(self.inner_outputs):
            raise ValueError("Scan: one OutSpec per inner output")
        self.state_outs = [j for j, o in enumerate(self.outs) if o.kind == "state"]
        self.n_states = len(self.state_outs)
        n_taps = sum(len(self.outs[j].taps) for j in self.state_outs)
        self.n_nonseqs = len(self.inner_inputs) - n_seqs - n_taps
        if self.n_nonseqs < 0:
            raise ValueError("Scan: fewer inner inputs than sequences and taps")
        self.n_from_seqs = n_from_seqs
        # sequences known to have exactly n rows when n comes from the sequences: the loop reads
        # n from the first, and rewrites may drop the others without changing n
        self.exact_seqs = tuple(exact_seqs) if n_from_seqs else ()
        self.truncate_gradient = int(truncate_gradient)
        self.bptt_truncate = int(bptt_truncate)
        self.name = name
        self.mode = mode
        self._nodes: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._compiled: dict[str, Any] = {}

    def __str__(self) -> str:
        return f"Scan{{{self.name}}}"

    # -- layout ----------------------------------------------------------------------------
    @property
    def inner_seqs(self) -> list[Variable]:
        return self.inner_inputs[: self.n_seqs]

    @property
    def inner_nonseqs(self) -> list[Variable]:
        return self.inner_inputs[len(self.inner_inputs) - self.n_nonseqs :]

    def inner_taps(self, j: int) -> list[Variable]:
        """Placeholders of the taps of state output ``j`` (oldest first)."""
        start = self.n_seqs
        for k in self.state_outs:
            if k == j:
                return self.inner_inputs[start : start + len(self.outs[k].taps)]
            start += len(self.outs[k].taps)
        raise ValueError(f"output {j} of {self} is not a state")

    def init_index(self, j: int) -> int:
        """Position among the node's inputs of the initial window of state output ``j``."""
        return 1 + self.n_seqs + self.state_outs.index(j)

    @property
    def nonseq_start(self) -> int:
        return 1 + self.n_seqs + self.n_states

    # -- graph -----------------------------------------------------------------------------
    def make_node(self, n_steps: Any, *args: Any) -> Apply:
        n_steps = as_tensor_variable(n_steps)
        if n_steps.ndim != 0 or n_steps.dtype[:3] not in ("int", "uin"):
            raise GraphTypeError(f"{self}: n_steps must be an integer scalar, got {n_steps.type}")
        if n_steps.dtype != "int64":
            from ..ops.elemwise import cast

            n_steps = cast(n_steps, "int64")
        args = [as_tensor_variable(a) for a in args]
        want = self.n_seqs + self.n_states + self.n_nonseqs
        if len(args) != want:
            raise GraphTypeError(f"{self} takes {want + 1} inputs, got {len(args) + 1}")
        seqs = args[: self.n_seqs]
        inits = args[self.n_seqs : self.n_seqs + self.n_states]
        nonseqs = args[self.n_seqs + self.n_states :]
        for k, (outer, inner) in enumerate(zip(seqs, self.inner_seqs)):
            self._check(outer, inner, 1, f"sequence {k}")
        for j, init in zip(self.state_outs, inits):
            self._check(init, self.inner_taps(j)[0], 1, f"initial value of output {j}")
        for k, (outer, inner) in enumerate(zip(nonseqs, self.inner_nonseqs)):
            self._check(outer, inner, 0, f"non-sequence {k}")
        n_static = None
        if not self.n_from_seqs and hasattr(n_steps, "data"):
            n_static = int(n_steps.data)
        types = []
        for j, (spec, y) in enumerate(zip(self.outs, self.inner_outputs)):
            if spec.kind == "state":
                init = inits[self.state_outs.index(j)]
                row = _merge_shapes(init.type.shape[1:], y.type.shape)
                if spec.store == "last":
                    first = spec.window
                else:
                    first = None if n_static is None else n_static + spec.window
                types.append(TensorType(y.dtype, (first, *row)))
            elif spec.kind == "seq":
                types.append(TensorType(y.dtype, (n_static, *y.type.shape)))
            else:
                types.append(y.type)
        node = Apply(self, [n_steps, *args], types)
        self._nodes[tuple(id(v) for v in node.inputs)] = node
        return node

    def _check(self, outer: Variable, inner: Variable, extra: int, what: str) -> None:
        if outer.dtype != inner.dtype or outer.ndim != inner.ndim + extra:
            want = f"{inner.dtype} with {inner.ndim + extra} dimension(s)"
            raise GraphTypeError(
                f"{self}: {what} must be {want}, got {outer.describe()} ({outer.type})"
                f"{where(outer.trace)}"
            )

    # -- running ---------------------------------------------------------------------------
    def compiled(self, backend: Any, shapes: tuple | None = None, profile_parent=None) -> Any:
        """The inner graph rewritten and linked (a ``LinkedProgram``), once per backend and
        per-step input shapes.

        ``shapes`` (one tuple per inner input) specializes the graph on the shapes seen at run
        time: with static shapes known, the rewrites drop the no-op ``SumToShape`` /
        ``BroadcastLike`` nodes that gradients are full of and fuse longer chains. Per-step
        shapes rarely change between calls (an RNN's do not depend on the sentence length);
        after ``MAX_SPECIALIZED`` different ones the generic graph is used.
        """
        # a profiled outer function gets its own profiled copy of the step
        tag = backend.name if profile_parent is None else (backend.name, id(profile_parent[0]))
        cache = self._compiled.setdefault(tag, {})
        prog = cache.get(shapes)
        if prog is not None:
            return prog
        if shapes is not None and len(cache) > MAX_SPECIALIZED:
            return self.compiled(backend, None, profile_parent)
        from ..compile.linker import link
        from ..rewrite import optimize

        inputs, outputs = self.inner_inputs, self.inner_outputs
        if shapes is not None:
            inputs, outputs = self._specialize(shapes)
        outputs, nodes = optimize(inputs, outputs, self.mode or config.mode, device=backend.name)
        ident = "".join(c if c.isalnum() else "_" for c in self.name)
        profiler = None
        if profile_parent is not None:
            parent, k = profile_parent
            profiler = parent.attach_inner(k, f"step of {self}", nodes)
        prog = link(
            inputs,
            outputs,
            nodes,
            backend,
            name=f"scan_{ident}_step",
            profiler=profiler,
            output_targets=backend.name != "cpu",  # the loop passes its buffer rows
        )
        cache[shapes] = prog
        return prog

    def _specialize(self, shapes: tuple) -> tuple[list[Variable], list[Variable]]:
        from ..graph import clone_replace

        new = [
            v.type.with_shape(_merge_shapes(v.type.shape, shp)).make_variable(v.name)
            for v, shp in zip(self.inner_inputs, shapes)
        ]
        outputs = clone_replace(self.inner_outputs, dict(zip(self.inner_inputs, new)))
        return new, _drop_static_noops(outputs)

    def inner_shapes(self, seq_rows: tuple, init_rows: tuple, nonseq_shapes: tuple) -> tuple:
        """Per-inner-input shapes from the outer values' shapes (for :meth:`compiled`)."""
        shapes = list(seq_rows)
        for j, row in zip(self.state_outs, init_rows):
            shapes += [row] * len(self.outs[j].taps)
        return tuple(shapes) + tuple(nonseq_shapes)

    def make_impl(self, node: Apply, backend: Any):
        from .loop import build_loop

        return build_loop(self, node, backend)

    def perform(self, node: Apply, inputs: Sequence[Any], xp: Any) -> Sequence[Any]:
        from ..backends import get_backend

        backend = get_backend("cpu") if xp is np else get_backend("cuda")
        out = self.make_impl(node, backend)(*inputs)
        return out if len(node.outputs) > 1 else (out,)

    def grad(self, inputs: Sequence[Variable], output_grads: Sequence[Variable]) -> list:
        from .grad import scan_grad

        node = self._nodes.get(tuple(id(v) for v in inputs))
        if node is None:  # grad() always passes node.inputs; this is a fallback
            node = self.make_node(*inputs)
        return scan_grad(node, list(output_grads))


def _merge_shapes(a: Sequence[int | None], b: Sequence[int | None]) -> tuple[int | None, ...]:
    if len(a) != len(b):
        return tuple(a)
    return tuple(x if x is not None else y for x, y in zip(a, b))


def _drop_static_noops(outputs: list[Variable]) -> list[Variable]:
    """Remove scan's own row-wise ``BatchSumToShape`` where static shapes prove it sums nothing
    (the pipeline does the same for ``SumToShape``, which it knows)."""
    from ..graph import toposort
    from .vectorize import BatchSumToShape

    memo: dict[int, Variable] = {}
    for node in toposort(outputs):
        ins = [memo.get(id(v), v) for v in node.inputs]
        if isinstance(node.op, BatchSumToShape):
            g, x = ins
            if None not in x.type.shape and g.type.shape[1:] == x.type.shape:
                memo[id(node.outputs[0])] = g
                continue
        if any(a is not b for a, b in zip(ins, node.inputs)):
            for o, n in zip(node.outputs, node.clone_with_new_inputs(ins).outputs):
                memo[id(o)] = n
    return [memo.get(id(o), o) for o in outputs]


def scan_nodes_in(outputs: Sequence[Variable]) -> list[Apply]:
    """The Scan nodes of a graph (for tests and tools)."""
    from ..graph import toposort

    return [n for n in toposort(outputs) if isinstance(n.op, Scan)]
