"""The gradient of a Scan: a reverse Scan over the stored forward values.

For step ``t`` (visited from the last to the first) the backward step takes the gradient arriving
at each output of step ``t`` (from the cost, plus what later steps sent back through the taps of
recurrent outputs) and back-propagates it through the inner graph (``symgraph.grad.grad`` with
``known_grads``): gradients for the sequence slices become a per-step output, gradients for the
non-sequences are summed over steps, and gradients for the taps are carried to earlier steps.
Forward values the inner gradient needs are read from the stored buffers instead of recomputed
(the gradient graph is first merged with the forward step, so ``tanh(z)`` in ``tanh``'s gradient
is the stored state). The backward loop is then rewritten like any loop: the sums over steps of
outer products (``dW``) become one matrix product after the loop.

Truncation:

- Theano's ``truncate_gradient=k``: the backward loop runs over the last ``k`` steps only.
- The tutorial's ``bptt_truncate=k`` (per term): the gradient of each step's outputs goes back
  through at most ``k`` earlier steps. The backward loop carries, per state, a window of the ``k``
  youngest partial gradients (one row per age); each step back-propagates the whole window at
  once (the inner gradient graph vectorized over the window rows) and drops the oldest row.
"""

from __future__ import annotations

from ..grad import grad as _grad
from ..graph import Apply, Variable, clone_replace
from ..ops.basic import constant
from ..ops.reduce import broadcast_like
from ..ops.scalar import is_float
from ..ops.subtensor import IncSubtensor
from .op import OutSpec, Scan
from .parts import Out, ScanParts, fresh
from .store import store_products
from .utils import graph_key, is_zero, merge_equal
from .vectorize import vectorize


def _T():
    from .. import tensor

    return tensor


def scan_grad(node: Apply, output_grads: list[Variable]) -> list:
    op: Scan = node.op
    if any(s.kind == "sum" or s.store == "last" for s in op.outs):
        raise NotImplementedError(
            f"gradient through {op}: this loop is itself a gradient; second-order gradients "
            "through scan are not supported"
        )
    # Tutorial code asks for each gradient separately (``T.grad(cost, U)``, ``T.grad(cost,
    # W)``...): each call sends the loop output gradients that are equal graph for graph. One
    # backward loop serves them all, so a chain of loops (see ``fission.py``) is built once,
    # not once per call (merging equal loops after the fact sees one link of a chain at a time).
    key = graph_key(list(node.inputs) + list(output_grads))
    cache = op.__dict__.setdefault("_grad_cache", {})
    hit = cache.get(key) if key is not None else None
    if hit is not None:
        return list(hit[1])
    grads = _Backward(node, output_grads).build()
    if key is not None:
        cache[key] = (list(output_grads), grads)  # keeps the keyed leaves alive
    return list(grads)


class _Backward:
    def __init__(self, node: Apply, output_grads: list[Variable]):
        T = _T()
        self.node, self.op = node, node.op
        self.parts = ScanParts.of(node)
        self.n = self.parts.n_steps()
        self.start = None  # first step covered (None: step 0)
        self.nb = self.n
        k = self.op.truncate_gradient
        if k > 0:
            self.nb = T.minimum(constant(k, dtype="int64"), self.n)
            self.start = self.n - self.nb
        self.k_theano = k
        self.seqs: list[tuple[Variable, Variable]] = []
        self.nonseqs: list[tuple[Variable, Variable]] = []
        self.mapping: dict[Variable, Variable] = {}
        self.g = output_grads

    # -- outer rows seen by the backward loop, last step first
    def rows(self, a: Variable, offset: int, tail: int | None) -> Variable:
        if self.start is None:
            if tail is not None:
                return a[offset : (-tail or None)][::-1]
            return a[offset : offset + self.n][::-1]
        return a[offset + self.start : offset + self.n][::-1]

    def add_seq(self, fwd: Variable, outer_rows: Variable, ph: Variable | None = None) -> Variable:
        ph = ph if ph is not None else fresh(fwd)
        self.seqs.append((outer_rows, ph))
        if fwd is not None:
            self.mapping[fwd] = ph
        return ph

    def build(self) -> list:
        op, node = self.op, self.node
        ys = op.inner_outputs
        for i, x in enumerate(op.inner_seqs):
            outer = node.inputs[1 + i]
            tail = 0 if id(outer) in self.parts.same_len else None
            self.add_seq(x, self.rows(outer, 0, tail))
        for j in op.state_outs:
            L, buf = op.outs[j].window, node.outputs[j]
            for k, ph in zip(op.outs[j].taps, op.inner_taps(j)):
                self.add_seq(ph, self.rows(buf, L + k, -k))
            if ys[j].owner is not None and ys[j] not in self.mapping:
                self.add_seq(ys[j], self.rows(buf, L, 0), fresh(ys[j], f"out{j}[t]"))
        for j, spec in enumerate(op.outs):
            if spec.kind == "seq" and ys[j].owner is not None and ys[j] not in self.mapping:
                ph = fresh(ys[j], f"out{j}[t]")
                self.add_seq(ys[j], self.rows(node.outputs[j], 0, 0), ph)
        for outer, p in zip(node.inputs[op.nonseq_start :], op.inner_nonseqs):
            ph = fresh(p)
            self.nonseqs.append((outer, ph))
            self.mapping[p] = ph
        # incoming gradients, per step
        self.bg: dict[int, Variable] = {}
        self.head: dict[int, Variable | None] = {}
        for j, (spec, y) in enumerate(zip(op.outs, ys)):
            if not is_float(y.dtype):
                continue
            g = self.g[j]
            body, head = _split_rows(g, spec.window) if spec.kind == "state" else (g, None)
            self.head[j] = head
            if not is_zero(body):
                self.bg[j] = self.add_seq(None, self.rows(body, 0, 0), fresh(y, f"g_out{j}[t]"))
        self.float_states = [j for j in op.state_outs if is_float(ys[j].dtype)]
        if op.bptt_truncate >= 0:
            return self._per_term(op.bptt_truncate)
        return self._full()

    # -- full backprop (and Theano's truncation) --------------------------------------------
    def _full(self) -> list:
        T = _T()
        op, ys = self.op, self.op.inner_outputs
        carries: dict[int, list[Variable]] = {}
        known: dict[Variable, Variable] = {}
        for j, y in enumerate(ys):
            if not is_float(y.dtype):
                continue
            terms = [self.bg[j]] if j in self.bg else []
            if j in self.float_states:
                row = op.inner_taps(j)[0]
                carries[j] = [fresh(row, f"g_out{j}[t-{d + 1}]") for d in range(op.outs[j].window)]
                terms.append(carries[j][0])
            if terms:
                _accumulate(known, y, terms)
        wrt = self._wrt(taps=True)
        gmap = self._grads(known, wrt)
        new_carries: dict[int, list[Variable]] = {}
        for j, cs in carries.items():
            L, taps = op.outs[j].window, op.outs[j].taps
            phs = dict(zip(taps, op.inner_taps(j)))
            new = []
            for d in range(L):
                terms = [cs[d + 1]] if d + 1 < L else []
                g = gmap.get(id(phs[-(d + 1)])) if -(d + 1) in phs else None
                if g is not None:
                    terms.append(g)
                new.append(_sum(terms) if terms else T.zeros_like(cs[d]))
            new_carries[j] = new
        outs = []
        for j, cs in carries.items():
            init = self.node.inputs[op.init_index(j)]
            for c, nc in zip(cs, new_carries[j]):
                outs.append(("carry", j, nc, c, T.zeros_like(init[0:1])))
        results, where_ = self._loop(outs, gmap, store=True)
        grads = self._seq_and_nonseq_grads(results, where_)
        for j in carries:
            finals = [results[where_[("carry", j, d)]] for d in range(op.outs[j].window)]
            g = finals[0] if len(finals) == 1 else T.concatenate(finals[::-1], axis=0)
            if self.start is not None:
                g = T.switch(T.ge(constant(self.k_theano, dtype="int64"), self.n), g, 0)
            grads[op.init_index(j)] = self._with_head(j, g)
        return grads

    # -- the tutorial's per-term truncation -------------------------------------------------
    def _per_term(self, k: int) -> list:
        T = _T()
        op, ys = self.op, self.op.inner_outputs
        for j in self.float_states:
            if op.outs[j].taps != (-1,):
                raise NotImplementedError(
                    f"{op}: bptt_truncate needs outputs fed back with tap -1 only, output {j} "
                    f"uses taps {list(op.outs[j].taps)}"
                )
        K = T.minimum(constant(k, dtype="int64"), self.n) if k > 0 else None
        windows = (
            {j: fresh(ys[j], name=f"window{j}", lead=1) for j in self.float_states} if k else {}
        )
        known_c: dict[Variable, Variable] = {}
        known_0: dict[Variable, Variable] = {}
        for j, y in enumerate(ys):
            if not is_float(y.dtype):
                continue
            terms = [self.bg[j]] if j in self.bg else []
            if terms:
                _accumulate(known_0, y, terms)
            if j in windows:
                terms = terms + [T.sum(windows[j], axis=0)]
            if terms:
                _accumulate(known_c, y, terms)
        gmap = self._grads(known_c, self._wrt(taps=False))
        taps = {j: op.inner_taps(j)[0] for j in self.float_states}
        g0 = self._grads(known_0, list(taps.values()))
        p0 = {j: g0.get(id(h)) for j, h in taps.items()}
        p0 = {j: g if g is not None else T.zeros_like(taps[j]) for j, g in p0.items()}
        qc = {}
        if k:
            deltas = {j: fresh(ys[j]) for j in self.float_states}
            gq = self._grads({ys[j]: d for j, d in deltas.items()}, list(taps.values()))
            qs = [gq.get(id(taps[j])) for j in self.float_states]
            batched = {deltas[j]: windows[j] for j in self.float_states}
            rows = _batch_rows(qs, deltas, windows, self.float_states, op.inner_inputs, batched)
            qc = dict(zip(self.float_states, rows))
        outs = []
        for j in self.float_states:
            init = self.node.inputs[op.init_index(j)]
            if k:
                window = T.concatenate([p0[j].dimshuffle("x", *range(p0[j].ndim)), qc[j][:-1]])
                sh = T.shape(init)
                zeros = T.alloc(
                    constant(0, dtype=init.dtype), 1, K, *[sh[a] for a in range(1, init.ndim)]
                )
                outs.append(("carry", j, window, windows[j], zeros))
                dropped = qc[j][-1]
            else:
                dropped = p0[j]
            drop_ph = fresh(taps[j], name=f"dropped{j}")
            outs.append(("drop", j, dropped, drop_ph, T.zeros_like(init[0:1])))
        results, where_ = self._loop(outs, gmap)
        grads = self._seq_and_nonseq_grads(results, where_)
        for j in self.float_states:
            g = results[where_[("drop", j, 0)]][0]
            if k:
                g = g + T.sum(results[where_[("carry", j, 0)]][0], axis=0)
            grads[op.init_index(j)] = self._with_head(j, g.dimshuffle("x", *range(g.ndim)))
        return grads

    # -- shared pieces ----------------------------------------------------------------------
    def _wrt(self, taps: bool) -> list[Variable]:
        op = self.op
        wrt = [x for x in op.inner_seqs if is_float(x.dtype)]
        if taps:
            wrt += [h for j in self.float_states for h in op.inner_taps(j)]
        return wrt + [p for p in op.inner_nonseqs if is_float(p.dtype)]

    @staticmethod
    def _grads(known: dict, wrt: list[Variable]) -> dict[int, Variable]:
        if not known or not wrt:
            return {}
        gs = _grad(
            None, wrt, known_grads=known, disconnected_inputs="ignore", return_disconnected="none"
        )
        return {id(w): g for w, g in zip(wrt, gs) if g is not None}

    def _loop(self, carries: list[tuple], gmap: dict[int, Variable], store: bool = False):
        """Build, rewrite and run the backward loop; ``results`` and where each piece landed.

        With ``store``, per-step matrix products the gradient reads are stored by the forward
        loop instead of recomputed (see ``store.py``)."""
        T = _T()
        op = self.op
        exprs, layout = [], []
        for kind, j, new, ph, zeros in carries:
            exprs.append(new)
            layout.append((kind, j, ph, zeros))
        seq_g = [(i, gmap[id(x)]) for i, x in enumerate(op.inner_seqs) if id(x) in gmap]
        ns_g = [(i, gmap[id(p)]) for i, p in enumerate(op.inner_nonseqs) if id(p) in gmap]
        exprs += [g for _, g in seq_g] + [g for _, g in ns_g]
        exprs = merge_equal(exprs, op.inner_outputs)
        stored = store_products(self.node, exprs) if store else None
        if stored is not None:
            extended, products = stored
            for v, index in products:
                self.add_seq(v, self.rows(extended.outputs[index], 0, 0), fresh(v, "stored"))
        exprs = clone_replace(exprs, self.mapping)
        outs = []
        where_: dict[tuple, int] = {}
        count: dict[tuple, int] = {}
        for (kind, j, ph, zeros), e in zip(layout, exprs):
            d = count.get((kind, j), 0)
            count[(kind, j)] = d + 1
            where_[(kind, j, d)] = len(outs)
            outs.append(Out(OutSpec("state", (-1,), "last"), e, zeros, [ph]))
        rest = exprs[len(layout) :]
        for (i, _), e in zip(seq_g, rest):
            where_[("seq", i)] = len(outs)
            outs.append(Out(OutSpec("seq"), e))
        for (i, _), e in zip(ns_g, rest[len(seq_g) :]):
            where_[("nonseq", i)] = len(outs)
            outer = self.node.inputs[op.nonseq_start + i]
            outs.append(Out(OutSpec("sum"), e, like=outer))
        for k, o in enumerate(outs):
            o.origin = k
        from_seqs = self.start is None and bool(self.seqs)
        parts = ScanParts(
            self.nb if not from_seqs else constant(-1, dtype="int64"),
            from_seqs,
            self.seqs,
            outs,
            self.nonseqs,
            name=f"grad_of_{op.name}",
            mode=op.mode,
            trace=self.node.trace,
            same_len={id(o) for o, _ in self.seqs} if from_seqs else set(),
        )
        if not from_seqs and self.start is None:
            parts.n = T.cast(self.n, "int64")
        from .rewrites import optimize_scan

        bnode = parts.build()
        return optimize_scan(bnode), where_

    def _seq_and_nonseq_grads(self, results: list, where_: dict) -> list:
        T = _T()
        op, node = self.op, self.node
        grads: list = [None] * len(node.inputs)
        for i in range(op.n_seqs):
            if ("seq", i) not in where_:
                continue
            g = results[where_[("seq", i)]][::-1]  # back in step order
            outer = node.inputs[1 + i]
            if self.start is None and id(outer) in self.parts.same_len:
                grads[1 + i] = g
            else:
                lo = self.start if self.start is not None else 0
                grads[1 + i] = T.inc_subtensor(T.zeros_like(outer)[lo : self.n], g)
        for i in range(op.n_nonseqs):
            if ("nonseq", i) in where_:
                grads[op.nonseq_start + i] = results[where_[("nonseq", i)]]
        return grads

    def _with_head(self, j: int, g: Variable) -> Variable:
        head = self.head.get(j)
        return g if head is None or is_zero(head) else g + head


def _batch_rows(qs, deltas, windows, states, inner_inputs, batched) -> list[Variable]:
    """The per-term propagation applied to every row of the windows at once."""
    T = _T()
    present = [q for q in qs if q is not None]
    res = vectorize(present, batched, {v: v for v in inner_inputs}) if present else []
    if all(r is not None and r[1] for r in res):
        it = iter(r[0] for r in res)
    else:  # no batch rule for some op: map the rows with an inner loop
        from .api import scan

        order = [deltas[j] for j in states]

        def one_row(*rows):
            return clone_replace(present, dict(zip(order, rows)))

        mapped, _ = scan(one_row, sequences=[windows[j] for j in states], name="bptt_window")
        it = iter(mapped if isinstance(mapped, list) else [mapped])
    return [next(it) if q is not None else T.zeros_like(windows[j]) for j, q in zip(states, qs)]


def _split_rows(g: Variable, L: int) -> tuple[Variable, Variable | None]:
    """``(g[L:], g[:L])`` for the gradient of a state buffer, skipping the zeros that
    ``inc_subtensor(zeros_like(buf)[L:], g_user)`` puts in front."""
    o = g.owner
    if (
        o is not None
        and isinstance(o.op, IncSubtensor)
        and not o.op.set_instead_of_inc
        and o.op.spec == (("slice", L, None, None),)
        and is_zero(o.inputs[0])
    ):
        # the added value may broadcast over the rows; broadcast_like is free when it does not
        return broadcast_like(o.inputs[1], o.inputs[0][L:]), None
    return g[L:], g[:L]


def _accumulate(known: dict, y: Variable, terms: list[Variable]) -> None:
    total = _sum(terms)
    known[y] = known[y] + total if y in known else total


def _sum(terms: list[Variable]) -> Variable:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total
