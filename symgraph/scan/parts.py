"""An editable description of a Scan node, used by ``scan()``, the rewrites and the gradient.

Rewrites read a node into :class:`ScanParts`, change its lists (move work out, add sequences or
outputs), and :meth:`ScanParts.build` makes a new node, dropping inputs the inner graph no longer
uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ShapeError, where
from ..graph import Apply, Constant, Op, Variable, graph_inputs
from ..ops.basic import as_tensor_variable, constant
from .op import OutSpec, Scan


@dataclass
class Out:
    """One output of the loop: its spec, inner value and (for states) initial window and taps."""

    spec: OutSpec
    inner: Variable
    init: Variable | None = None
    taps: list[Variable] = field(default_factory=list)
    like: Variable | None = None  # sum outputs: an outer variable with the same shape
    origin: int | None = None  # index of the output in the node this was read from


def fresh(v: Variable, name: str | None = None, lead: int = 0) -> Variable:
    """A new placeholder with ``v``'s type (and ``lead`` extra leading axes of unknown length)."""
    t = v.type.with_shape((None,) * lead + v.type.shape)
    return t.make_variable(name if name is not None else v.name)


class ScanParts:
    """Sequences, outputs and non-sequences of a loop, as (outer, inner) pairs."""

    def __init__(
        self,
        n_steps: Variable,
        n_from_seqs: bool,
        seqs: list[tuple[Variable, Variable]],
        outs: list[Out],
        nonseqs: list[tuple[Variable, Variable]],
        *,
        name: str,
        mode: str | None = None,
        truncate_gradient: int = -1,
        bptt_truncate: int = -1,
        trace=None,
        same_len: set[int] | None = None,
    ):
        self.n = n_steps
        self.n_from_seqs = n_from_seqs
        self.seqs = seqs
        self.outs = outs
        self.nonseqs = nonseqs
        self.name = name
        self.mode = mode
        self.truncate_gradient = truncate_gradient
        self.bptt_truncate = bptt_truncate
        self.trace = trace
        # ids of outer sequences known to have exactly n rows when n comes from the sequences
        self.same_len = set(same_len or ())

    @classmethod
    def of(cls, node: Apply) -> ScanParts:
        op: Scan = node.op
        ns = op.n_seqs
        seqs = list(zip(node.inputs[1 : 1 + ns], op.inner_seqs))
        outs = []
        for j, (spec, y) in enumerate(zip(op.outs, op.inner_outputs)):
            o = Out(spec, y, origin=j)
            if spec.kind == "state":
                o.init = node.inputs[op.init_index(j)]
                o.taps = list(op.inner_taps(j))
            elif spec.kind == "sum" and spec.shape_from is not None:
                o.like = node.inputs[spec.shape_from]
            outs.append(o)
        nonseqs = list(zip(node.inputs[op.nonseq_start :], op.inner_nonseqs))
        same = {id(seqs[i][0]) for i in op.exact_seqs}
        if op.n_from_seqs and ns == 1:
            same.add(id(seqs[0][0]))
        parts = cls(
            node.inputs[0],
            op.n_from_seqs,
            seqs,
            outs,
            nonseqs,
            name=op.name,
            mode=op.mode,
            truncate_gradient=op.truncate_gradient,
            bptt_truncate=op.bptt_truncate,
            trace=node.trace,
            same_len=same,
        )
        return parts

    # -- symbolic helpers -------------------------------------------------------------------
    def n_steps(self) -> Variable:
        """The number of steps as an int64 scalar graph."""
        from .. import tensor as T

        if not self.n_from_seqs:
            return self.n
        exact = [o for o, _ in self.seqs if id(o) in self.same_len]
        lens = [T.shape(o)[0] for o in (exact[:1] or [o for o, _ in self.seqs])]
        n = lens[0]
        for m in lens[1:]:
            n = T.minimum(n, m)
        return n

    def aligned(self, outer: Variable) -> Variable:
        """An outer sequence cut to the rows the loop reads (rows 0..n-1)."""
        if id(outer) in self.same_len:
            return outer
        if self.n_from_seqs:
            return outer[: self.n_steps()]
        # n_steps was given: a sequence shorter than that is an error, also outside the loop
        return HeadRows(self.name, self.trace)(outer, self.n)

    # -- rebuilding -------------------------------------------------------------------------
    def build(self) -> Apply:
        """A new Scan node for these parts (inputs unused by the inner graph are dropped)."""
        used = {id(v) for v in graph_inputs([o.inner for o in self.outs])}
        kept = [(o, i) for o, i in self.seqs if id(i) in used]
        n, n_from_seqs = self.n, self.n_from_seqs
        if n_from_seqs and len(kept) < len(self.seqs):
            if not any(id(o) in self.same_len for o, _ in kept):
                n, n_from_seqs = self.n_steps(), False
        likes = {id(o.like) for o in self.outs if o.like is not None}
        nonseqs = [(o, i) for o, i in self.nonseqs if id(i) in used or id(o) in likes]
        have = {id(o) for o, _ in nonseqs}
        for o in self.outs:  # a sum's shape source must be an input of the node
            if o.like is not None and id(o.like) not in have and not self._is_input(o.like, kept):
                nonseqs.append((o.like, fresh(o.like)))
                have.add(id(o.like))
        states = [o for o in self.outs if o.spec.kind == "state"]
        inner_inputs = [i for _, i in kept]
        for o in states:
            inner_inputs += o.taps
        inner_inputs += [i for _, i in nonseqs]
        outer = [o for o, _ in kept] + [o.init for o in states] + [o for o, _ in nonseqs]
        specs = []
        for o in self.outs:
            spec = o.spec
            if spec.kind == "sum":
                spec = spec._replace(shape_from=None)
                if o.like is not None:
                    spec = spec._replace(shape_from=1 + _index(outer, o.like))
            specs.append(spec)
        if n is None or (isinstance(n, Constant) and n_from_seqs):
            n = constant(-1, dtype="int64")
        op = Scan(
            inner_inputs,
            [o.inner for o in self.outs],
            len(kept),
            specs,
            n_from_seqs=n_from_seqs,
            truncate_gradient=self.truncate_gradient,
            bptt_truncate=self.bptt_truncate,
            name=self.name,
            mode=self.mode,
            exact_seqs=[k for k, (o, _) in enumerate(kept) if id(o) in self.same_len],
        )
        node = op.make_node(n, *outer)
        if self.trace is not None:
            node.trace = self.trace
            for v in node.outputs:
                v.trace = self.trace
        return node

    @staticmethod
    def _is_input(v: Variable, kept: list) -> bool:
        return any(o is v for o, _ in kept)


class HeadRows(Op):
    """``x[:n]``, raising if ``x`` has fewer than ``n`` rows (work moved out of a scan keeps the
    loop's check that its sequences cover ``n_steps``)."""

    __props__ = ("label", "trace")

    def __init__(self, label: str, trace: Any):
        self.label, self.trace = label, trace

    def __str__(self) -> str:
        return "HeadRows"

    def make_node(self, x: Any, n: Any) -> Apply:
        x, n = as_tensor_variable(x), as_tensor_variable(n)
        return Apply(self, [x, n], [x.type.with_shape((None, *x.type.shape[1:]))])

    def make_impl(self, node: Apply, backend: Any):
        label, trace = self.label, self.trace

        def head_rows(x, n):
            n = int(n)
            if x.shape[0] < n:
                raise ShapeError(
                    f"scan {label!r}: a sequence has {x.shape[0]} rows but n_steps is {n}"
                    f"{where(trace)}"
                )
            return x[:n]

        return head_rows

    def grad(self, inputs, output_grads):
        from .. import tensor as T

        x, n = inputs
        return [T.inc_subtensor(T.zeros_like(x)[:n], output_grads[0]), None]


def _index(seq: list, v: Variable) -> int:
    for k, x in enumerate(seq):
        if x is v:
            return k
    raise ValueError("internal: variable not among the inputs")
