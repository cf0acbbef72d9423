"""The forward loop of a Scan node, generated as Python source once per node and backend.

The generated function reads each sequence row and tap with one indexing expression, calls the
linked inner step (one generated function, see ``compile/linker.py``), and writes results into
buffers allocated once: state buffers before the loop (their shape is the initial window's), ``seq``
buffers after step 0 (when the per-step shape is known). Step 0 is peeled off so the loop body has
no branches. So per step there is no graph walk, no dict, no list and no allocation beyond what the
inner ops themselves allocate.

Before the first step the loop looks up (one dict lookup per call) the step compiled for the
per-step shapes of this call's inputs (see ``Scan.compiled``): gradient steps are full of
shape-dependent no-ops that static shapes remove.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..compile.linker import ComputeError
from ..compile.placement import device_copier
from ..errors import ShapeError, SymgraphError, where
from ..graph import Apply
from .op import Scan


def build_loop(op: Scan, node: Apply, backend: Any):
    """The callable ``loop(n_steps, *outer_inputs)`` for ``node`` (a tuple for several outputs)."""
    xp = backend.xp
    trace = node.trace
    label = f"scan {op.name!r}"

    ns = op.n_seqs
    seq_args = [f"s{i}" for i in range(ns)]
    init_args = {j: f"i{k}" for k, j in enumerate(op.state_outs)}
    nonseq_args = [f"p{i}" for i in range(op.n_nonseqs)]
    src: list[str] = []
    emit = src.append
    params = ", ".join(["n_steps", *seq_args, *init_args.values(), *nonseq_args])
    emit(f"def scan_loop({params}):")
    if backend.name != "cpu":  # host values (NumPy scalars, shapes) read by the step go over once
        for a in [*seq_args, *init_args.values(), *nonseq_args]:
            emit(f"    {a} = __dev_in({a})")

    # number of steps
    if op.n_from_seqs:
        lens = [f"{s}.shape[0]" for s in seq_args]
        if op.exact_seqs:
            lens = [lens[op.exact_seqs[0]]]
        emit(f"    n = {lens[0] if len(lens) == 1 else 'min(' + ', '.join(lens) + ')'}")
    else:
        emit("    n = int(n_steps)")
        emit("    if n < 0: __negative(n)")
        for i, s in enumerate(seq_args):
            emit(f"    if {s}.shape[0] < n: __short({i}, {s}.shape[0], n)")

    # state storage
    for j, a in init_args.items():
        spec = op.outs[j]
        L = spec.window
        emit(f"    if {a}.shape[0] < {L}: __short_init({j}, {a}.shape[0], {L})")
        if spec.store == "all":
            dt = op.inner_outputs[j].dtype
            emit(f"    b{j} = __empty((n + {L},) + {a}.shape[1:], dtype={dt!r})")
            emit(f"    b{j}[:{L}] = {a}[:{L}]")
        else:
            for d in range(1, L + 1):  # w{j}_{d}: the value d steps back
                emit(f"    w{j}_{d} = {a}[{L - d}]")

    # the step, compiled for these per-step shapes (one dict lookup per call)
    rows = "".join(f"{a}.shape[1:], " for a in seq_args)
    inits = "".join(f"{a}.shape[1:], " for a in init_args.values())
    whole = "".join(f"{a}.shape, " for a in nonseq_args)
    emit(f"    inner = __step(({rows}), ({inits}), ({whole}))")

    # zero steps: nothing runs
    empties = []
    for j, spec in enumerate(op.outs):
        if spec.kind == "state":
            empties.append(f"b{j}" if spec.store == "all" else f"{init_args[j]}[:{spec.window}]")
        elif spec.kind == "seq":
            empties.append(f"__empty_seq({j})")
        else:
            src_arg = _arg_name(op, spec.shape_from, seq_args, init_args, nonseq_args)
            empties.append(f"__zeros_sum({j}, {src_arg})")
    emit("    if n == 0:")
    emit(f"        return {_tuple(empties)}")

    # one step: inner call arguments
    call_args = [f"{s}[t]" for s in seq_args]
    for j in op.state_outs:
        spec = op.outs[j]
        L = spec.window
        for k in spec.taps:
            call_args.append(f"b{j}[t + {L + k}]" if spec.store == "all" else f"w{j}_{-k}")
    call_args += nonseq_args
    results = "".join(f"r{j}, " for j in range(len(op.outs)))
    call = f"{results}= inner({', '.join(call_args)})"

    first: list[str] = []  # writes after step 0 (with checks and allocation)
    body: list[str] = []  # writes after every later step
    # On a device each stored output is a copy launched per step. A backward step often hands
    # one value to several outputs (equal expressions merge only when the step is compiled for
    # its shapes), so an output that is the same object as an earlier one is stored once and
    # shared. (Not on the CPU: the in-place planner there assumes outputs do not share memory.)
    # Also on a device, from the second step on, the step writes the results it can (those of
    # generated kernels: ``written_outputs`` of the step's program) straight into the rows of the
    # output buffers; only the other results are copied. A row view is made only for those.
    share_stored = on_device = backend.name != "cpu"
    stored_seqs: list[int] = []
    targets = ["None"] * len(op.outs)
    seq_positions = tuple(j for j, spec in enumerate(op.outs) if spec.kind == "seq")
    if on_device:
        first.append("__written = inner.written_outputs")
        # outputs the step also joins for one product share one buffer (``plan_joints``)
        rs = "".join(f"r{j}, " for j in range(len(op.outs)))
        first.append(f"__jv, __jrows = __plan_joints(inner, n, ({rs}), {seq_positions}, __written)")

    def alloc(j: int, dt: str) -> str:
        fresh = f"__empty((n,) + __shape(r{j}), dtype={dt!r})"
        return f"o{j} = __jv[{j}] if {j} in __jv else {fresh}" if on_device else f"o{j} = {fresh}"

    def store(j: int, row: str, own: str = "") -> None:
        if on_device:
            first.append(f"tgt{j} = {own + ' and ' if own else ''}{j} in __written")
            targets[j] = f"({row} if tgt{j} else None)"
            body.append(f"if {own + ' and ' if own else ''}r{j} is not __tg[{j}]: {row} = r{j}")
        else:
            body.append(f"{row} = r{j}")

    for j, spec in enumerate(op.outs):
        dt = op.inner_outputs[j].dtype
        if spec.kind == "state":
            L = spec.window
            want = f"b{j}.shape[1:]" if spec.store == "all" else f"__shape({init_args[j]})[1:]"
            first.append(f"if __shape(r{j}) != {want}: __bad_state({j}, __shape(r{j}), {want})")
            if spec.store == "all":
                first.append(f"b{j}[t + {L}] = r{j}")
                store(j, f"b{j}[t + {L}]")
            else:
                names = [f"w{j}_{d}" for d in range(L, 0, -1)]
                news = [f"w{j}_{d}" for d in range(L - 1, 0, -1)] + [f"r{j}"]
                w = f"{', '.join(names)} = {', '.join(news)}"
                first.append(w)
                body.append(w)
        elif spec.kind == "seq" and share_stored and stored_seqs:
            alloc_j = f"{alloc(j, dt)}; o{j}[0] = r{j}"
            same = " or ".join(f"r{j} is r{i}" for i in stored_seqs)
            shared = " else ".join(f"o{i} if r{j} is r{i}" for i in stored_seqs) + " else None"
            first.append(f"own{j} = not ({same})")
            first.append(f"if own{j}: {alloc_j}")
            first.append(f"else: o{j} = {shared}")
            store(j, f"o{j}[t]", own=f"own{j}")
            stored_seqs.append(j)
        elif spec.kind == "seq":
            first.append(alloc(j, dt))
            first.append(f"o{j}[0] = r{j}")
            store(j, f"o{j}[t]")
            stored_seqs.append(j)
        else:
            first.append(f"a{j} = __copy(r{j})")
            body.append(f"a{j} += r{j}")

    emit("    t = 0")
    emit("    try:")
    emit(f"        {call}")
    for line in first:
        emit(f"        {line}")
    emit("        for t in range(1, n):")
    if any(tg != "None" for tg in targets):
        emit(f"            __tg = ({', '.join(targets)},)")
        joints = "[b[t] for b in __jrows] if __jrows else None"
        emit(f"            {call[:-1]}, __targets=__tg, __joints={joints})")
    else:
        emit(f"            {call}")
    for line in body:
        emit(f"            {line}")
    emit("    except Exception as __e:")
    emit("        __fail(__e, t)")

    rets = []
    for j, spec in enumerate(op.outs):
        if spec.kind == "state":
            if spec.store == "all":
                rets.append(f"b{j}")
            else:
                ws = ", ".join(f"w{j}_{d}" for d in range(spec.window, 0, -1))
                rets.append(f"__stack([{ws}])")
        elif spec.kind == "seq":
            rets.append(f"o{j}")
        else:
            rets.append(f"a{j}")
    emit(f"    return {_tuple(rets)}")
    source = "\n".join(src) + "\n"

    def fail(e: Exception, t: int) -> None:
        if isinstance(e, ShapeError):
            raise e
        inner_msg = str(e)
        if isinstance(e, SymgraphError):
            raise ComputeError(f"in step {t} of {label}: {inner_msg}{where(trace)}", e) from e
        raise ComputeError(
            f"{type(e).__name__} in step {t} of {label}: {inner_msg}{where(trace)}", e
        ) from e

    def short(i: int, have: int, n: int) -> None:
        raise ShapeError(
            f"{label}: sequence {i} ({_describe(node.inputs[1 + i])}) has {have} rows but "
            f"n_steps is {n}{where(trace)}"
        )

    def short_init(j: int, have: int, L: int) -> None:
        raise ShapeError(
            f"{label}: output {j} uses taps {list(op.outs[j].taps)}, so its initial value needs "
            f"{L} leading rows, got {have}{where(trace)}"
        )

    def negative(n: int) -> None:
        raise ShapeError(f"{label}: n_steps is negative ({n}){where(trace)}")

    def bad_state(j: int, got: tuple, want: tuple) -> None:
        raise ShapeError(
            f"{label}: output {j} is fed back to the next step, but the step function returns "
            f"shape {tuple(got)} where the initial value has shape {tuple(want)} (a recurrent "
            f"state must keep its shape from step to step){where(trace)}"
        )

    def empty_seq(j: int):
        shape = tuple(0 if s is None else s for s in op.inner_outputs[j].type.shape)
        return xp.empty((0, *shape), dtype=op.inner_outputs[j].dtype)

    def zeros_sum(j: int, like: Any):
        shape = (
            like.shape
            if like is not None
            else tuple(0 if s is None else s for s in op.inner_outputs[j].type.shape)
        )
        return xp.zeros(shape, dtype=op.inner_outputs[j].dtype)

    step_cache: dict = {}
    from ..profiling import parent

    profile_parent = parent()  # set when the outer function is compiled with profile=True

    def step(seq_rows, init_rows, nonseq_shapes):
        key = (seq_rows, init_rows, nonseq_shapes)
        fn = step_cache.get(key)
        if fn is None:
            shapes = op.inner_shapes(seq_rows, init_rows, nonseq_shapes)
            try:
                fn = op.compiled(backend, shapes, profile_parent).fn
            except SymgraphError:
                # a mistake the static shapes reveal early: run the generic step, whose error
                # names the step's node and line (and the step number)
                fn = op.compiled(backend, None, profile_parent).fn
            step_cache[key] = fn
        return fn

    env = {
        "__step": step,
        "__dev_in": device_copier(backend),
        "__empty": xp.empty,
        "__shape": np.shape,
        "__copy": _copy,
        "__stack": xp.stack,
        "__fail": fail,
        "__short": short,
        "__short_init": short_init,
        "__negative": negative,
        "__bad_state": bad_state,
        "__empty_seq": empty_seq,
        "__zeros_sum": zeros_sum,
        "__plan_joints": lambda *args: plan_joints(xp, *args),
    }
    code = compile(source, f"<symgraph scan {op.name}>", "exec")
    exec(code, env)
    fn = env["scan_loop"]
    fn.source = source
    return fn


def plan_joints(
    xp: Any, inner: Any, n: int, rs: tuple, seq_positions: tuple[int, ...], written: Any
) -> tuple[dict[int, Any], tuple[Any, ...]]:
    """One buffer for the stored outputs that the step also joins (``joined_outputs`` of its
    program: a backward step's gate gradients, stacked for one product): ``({position: view
    of the buffer}, (buffer, ...))``, the views to store each output in. The row of the buffer
    at each step is then the outputs' blocks side by side, which the step's kernels write and
    its join reads as it is: one copy less per step. ``({}, ())`` when any join does not suit
    (a broadcast block, an output stored elsewhere or not written by a kernel)."""
    joined = getattr(inner, "joined_outputs", ())
    views: dict[int, Any] = {}
    buffers = []
    for positions in joined:
        parts = [rs[p] for p in positions]
        head = parts[0]
        own = all(  # stored in a buffer of its own (not the same value as an earlier output)
            p in seq_positions and p in written and p not in views
            and not any(rs[i] is rs[p] for i in seq_positions if i < p)
            for p in positions
        )  # fmt: skip
        if not own or any(
            x.ndim == 0 or x.dtype != head.dtype or x.shape[1:] != head.shape[1:] for x in parts
        ):
            return {}, ()
        buffer = xp.empty((n, sum(x.shape[0] for x in parts), *head.shape[1:]), dtype=head.dtype)
        start = 0
        for p, x in zip(positions, parts):
            views[p] = buffer[:, start : start + x.shape[0]]
            start += x.shape[0]
        buffers.append(buffer)
    return views, tuple(buffers)


def _copy(x: Any) -> Any:
    # The first step's value may alias an input of the step (e.g. a non-sequence passed through);
    # the sum accumulates in place afterwards, so it needs its own array.
    return x.copy() if hasattr(x, "copy") else x


def _tuple(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(" + ", ".join(items) + ",)"


def _arg_name(op: Scan, index: int | None, seqs, inits, nonseqs) -> str:
    if index is None:
        return "None"
    if index == 0:
        return "n_steps"
    if index <= op.n_seqs:
        return seqs[index - 1]
    if index < op.nonseq_start:
        return list(inits.values())[index - 1 - op.n_seqs]
    return nonseqs[index - op.nonseq_start]


def _describe(v) -> str:
    return v.describe() if hasattr(v, "describe") else str(v)
