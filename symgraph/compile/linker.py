"""The linker: turns a toposorted graph into one generated Python function.

Each node becomes one line ``v7 = f3(v2, v5)`` calling the node's implementation on local
variables, so a call does no graph walks, no dict lookups and no per-node bookkeeping; values are
dropped (``del``) right after their last use so intermediates are freed early. When a node raises,
the line number tells which node it was, and the error is re-raised naming the op, the input shapes
and dtypes, and the user's line that created the node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from ..backends.numpy import BACKEND as NUMPY_BACKEND
from ..config import config
from ..errors import NaNDetectedError, SymgraphError, where
from ..graph import Apply, Constant, SharedVariable, Variable
from ..ops.elemwise import Elemwise
from ..profiling import building_node
from .inplace import inplace_line, plan_inplace, plan_kept_buffers
from .placement import device_copier, host_scalar, operand_conversion, plan_placement


class LinkedProgram:
    """The generated function and what is needed to explain its failures."""

    def __init__(
        self,
        fn: Callable,
        source: str,
        line_to_node: dict[int, Apply],
        nodes: list,
        outputs: Sequence[Variable] = (),
    ):
        self.fn = fn
        self.outputs = list(outputs)
        self.source = source
        self.line_to_node = line_to_node
        self.nodes = nodes
        self.host_inputs: list[int] = []  # inputs passed as host values (device backends)


def link(
    inputs: Sequence[Variable],
    outputs: Sequence[Variable],
    nodes: Sequence[Apply],
    backend: Any,
    nan_guard: bool = False,
    profiler: Any = None,
    name: str = "compiled",
    reuse_buffers: bool = True,
    updates: Sequence[tuple[Variable, SharedVariable]] = (),
    host_inputs: Collection[int] = (),
    host_outputs_ok: bool = False,
    output_targets: bool = False,
) -> LinkedProgram:
    """Generate ``fn(*input_values) -> tuple(output_values)``.

    ``inputs`` are the explicit inputs; shared variables and constants in the graph are read by
    the function itself (shared values at call time, so updates are seen by the next call).
    On a device backend, ``host_inputs`` are the positions of inputs passed as host values, and
    shape arithmetic runs on the host (see ``placement``); outputs computed on the host are
    copied to the device unless ``host_outputs_ok`` (a loop step's outputs go into device
    buffers; a function's go back to the caller). With ``output_targets`` the function takes a
    keyword ``__targets``: a tuple with, per output, an array to write it into or None. A loop
    passes its output buffers' rows; a node that can write into a given array (a generated
    kernel) then does, and the loop copies nothing.
    """
    env: dict[str, Any] = {}
    names: dict[int, str] = {}
    counter = [0]

    def new_name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    lines: list[str] = []
    line_to_node: dict[int, Apply] = {}
    params = [f"i{k}" for k in range(len(inputs))]
    params += ["__targets=None", "__joints=None"] if output_targets else []
    header = [f"def {name}({', '.join(params)}):"]
    # an output written into the caller's array: node id -> per node output, the position in
    # the outputs (or None)
    target_of: dict[int, list[int | None]] = {}
    written: set[int] = set()  # the positions actually written (the node can take ``out=``)
    if output_targets:
        for pos, v in enumerate(outputs):
            if v.owner is not None:
                slots = target_of.setdefault(id(v.owner), [None] * len(v.owner.outputs))
                r = v.owner.outputs.index(v)
                if slots[r] is None:
                    slots[r] = pos
    for k, v in enumerate(inputs):
        names[id(v)] = f"i{k}"

    on_device = backend.name != "cpu"
    host, host_nodes = plan_placement(inputs, nodes, host_inputs) if on_device else (set(), set())
    sync_profile = profiler is not None and on_device and config.profile_sync
    if sync_profile:
        env["__sync"] = backend.synchronize
    env["__dev"], env["__hs"] = device_copier(backend), host_scalar

    def backend_of(k: int) -> Any:
        return NUMPY_BACKEND if k in host_nodes else backend

    body_prefix: list[str] = []
    # Shared values are read once per call; constants are bound once at link time.
    needed = {id(v): v for node in nodes for v in node.inputs}
    needed.update({id(v): v for v in outputs})
    for v in needed.values():
        if id(v) in names:
            continue
        if isinstance(v, SharedVariable):
            sv = new_name("shared")
            env[sv] = v
            names[id(v)] = new_name("s")
            body_prefix.append(f"    {names[id(v)]} = {sv}.value")
        elif isinstance(v, Constant):
            cname = new_name("c")
            env[cname] = v.data if id(v) in host or not on_device else backend.to_device(v.data)
            names[id(v)] = cname
        elif v.owner is None:
            raise SymgraphError(f"internal: unbound graph input {v}")

    # last use of each variable, to free intermediates early
    last_use: dict[int, int] = {}
    for k, node in enumerate(nodes):
        for v in node.inputs:
            last_use[id(v)] = k
    keep = {id(v) for v in outputs}

    impls = []
    for k, node in enumerate(nodes):
        with building_node(profiler, k):
            impls.append(node.op.make_impl(node, backend_of(k)))
    inplace = plan_inplace(nodes, outputs, impls, backend, updates) if reuse_buffers else {}
    keep_products = reuse_buffers and not config.allow_gc
    kept = plan_kept_buffers(nodes, outputs, inplace, backend) if keep_products else set()
    for k in kept:
        impls[k] = nodes[k].op.make_impl(nodes[k], backend_of(k), keep_buffer=True)
    env["__ndarray"] = np.ndarray
    joins = _joins_of_outputs(nodes, impls, target_of, inplace) if output_targets else {}
    for k, node in enumerate(nodes):
        fname = f"f{k}"
        env[fname] = getattr(impls[k], "entry", impls[k])  # a launcher's generated entry
        if k in inplace and not isinstance(node.op, Elemwise):
            env[f"{fname}_inplace"] = node.op.make_impl(node, backend_of(k), inplace=True)
        for o in node.outputs:
            names[id(o)] = new_name("v")
        arg_names = [names[id(v)] for v in node.inputs]
        if on_device and k not in host_nodes:  # host values read by a device node
            for pos, v in enumerate(node.inputs):
                if id(v) in host:
                    arg_names[pos] = _device_read(node, pos, arg_names[pos], env, backend)
        args = ", ".join(arg_names)
        outs = ", ".join(names[id(o)] for o in node.outputs)
        if len(node.outputs) > 1:
            outs += ","
        if profiler is not None:
            env[f"p{k}"] = profiler.node_timer(k)
            lines.append("        __t = __clock()")
        line_to_node[len(header) + len(body_prefix) + 2 + len(lines)] = node
        static = _static_inplace(node, impls[k], inplace.get(k))
        if static is not None:
            env[fname] = static[0]
        if k in joins:  # the loop's buffer row already holds the blocks: no copy
            q, positions = joins[k]
            same = " and ".join(
                f"{a} is __targets[{p}]" for a, p in zip(arg_names, positions, strict=True)
            )
            lines.append(
                f"        {outs} = __joints[{q}] if __joints and {same} else {fname}({args})"
            )
        elif k in inplace:
            arg_list = arg_names
            known = static[1] if static is not None else None
            line = inplace_line(outs, fname, arg_list, inplace[k], node, shapes_allow=known)
            lines.append("        " + line)
        else:
            out_arg = ""
            if id(node) in target_of and getattr(impls[k], "takes_out", False):
                slots = target_of[id(node)]
                written.update(p for p in slots if p is not None)
                if len(slots) == 1:
                    target = f"__targets[{slots[0]}]"
                else:  # one entry per result of a multi-output kernel
                    entries = ", ".join("None" if p is None else f"__targets[{p}]" for p in slots)
                    target = f"({entries})"
                out_arg = f"{', ' if args else ''}out={target} if __targets else None"
            lines.append(f"        {outs} = {fname}({args}{out_arg})")
        if profiler is not None:
            if sync_profile:  # the node's device work counts too, not only its launch
                lines.append("        __sync()")
            lines.append(f"        p{k}(__clock() - __t)")
        if nan_guard:
            for o in node.outputs:
                if o.dtype.startswith("float"):
                    lines.append(f"        __nan_check({k}, {names[id(o)]})")
        dead = [
            names[id(v)]
            for v in dict.fromkeys(node.inputs)
            if last_use.get(id(v)) == k and v.owner is not None and id(v) not in keep
        ]
        dead += [names[id(o)] for o in node.outputs if id(o) not in last_use and id(o) not in keep]
        if dead:
            lines.append(f"        del {', '.join(dead)}")

    to_dev = host if not host_outputs_ok else set()
    ret = ", ".join(f"__dev({names[id(v)]})" if id(v) in to_dev else names[id(v)] for v in outputs)
    src_lines = header + body_prefix + ["    try:"] + (lines or ["        pass"])
    src_lines += [
        "    except Exception as __e:",
        "        __fail(__e, locals())",
        f"    return ({ret}{',' if len(outputs) == 1 else ''})",
    ]
    source = "\n".join(src_lines) + "\n"
    program = LinkedProgram(None, source, line_to_node, list(nodes), outputs)
    program.host_inputs = sorted(host_inputs) if on_device else []
    env["__fail"] = lambda e, local_vars: _reraise(program, e, local_vars, names)
    env["__clock"] = time.perf_counter
    env["__nan_check"] = lambda k, value: _nan_check(program.nodes[k], value, backend)
    code = compile(source, f"<symgraph {name}>", "exec")
    exec(code, env)
    program.fn = env[name]
    program.fn.written_outputs = frozenset(written)  # read by a loop (scan/loop.py)
    program.fn.joined_outputs = tuple(positions for _, positions in sorted(joins.values()))
    return program


def _joins_of_outputs(
    nodes: Sequence[Apply],
    impls: Sequence[Any],
    target_of: dict[int, list[int | None]],
    inplace: dict[int, int],
) -> dict[int, tuple[int, tuple[int, ...]]]:
    """The nodes that concatenate rows of outputs written into the caller's arrays:
    node index -> (join number, the outputs' positions in order).

    A loop that stores such outputs (a backward step's gate gradients, which it also stacks
    for one product) can give them one buffer, whose row at each step is their blocks side by
    side (``scan/loop.py``). The kernels then write the blocks, and the join reads the row as
    it is: ``joined_outputs`` tells the loop which positions, and the call passes that row in
    ``__joints``. Without it, or when a kernel wrote elsewhere, the join concatenates."""
    index = {id(n): k for k, n in enumerate(nodes)}
    # a row of the loop's buffer must not be overwritten by an op reusing its input
    overwritten = {id(nodes[m].inputs[pos]) for m, pos in inplace.items()}
    joins: dict[int, tuple[int, tuple[int, ...]]] = {}
    used: set[int] = set()
    for k, node in enumerate(nodes):
        if not getattr(node.op, "joins_rows", False) or len(node.inputs) < 2:
            continue
        if id(node.outputs[0]) in overwritten:
            continue
        positions = []
        for v in node.inputs:
            slots = target_of.get(id(v.owner)) if v.owner is not None else None
            p = slots[v.owner.outputs.index(v)] if slots else None
            if p is None or not getattr(impls[index[id(v.owner)]], "takes_out", False):
                break
            positions.append(p)
        else:
            if len(set(positions)) == len(positions) and not used & set(positions):
                used.update(positions)
                joins[k] = (len(joins), tuple(positions))
    return joins


def _device_read(node: Apply, pos: int, name: str, env: dict, backend: Any) -> str:
    """The expression by which a device node reads the host value ``name`` (see placement)."""
    how = operand_conversion(node, pos)
    if how is None:
        return name
    if how == "scalar":
        return f"__hs({name})"
    v = node.inputs[pos]
    if isinstance(v, Constant):  # copied once, now
        dname = f"{name}_dev"
        if dname not in env:
            env[dname] = backend.to_device(v.data)
        return dname
    return f"__dev({name})"


def _static_inplace(node: Apply, impl: Any, pos: int | None) -> tuple[Callable, bool] | None:
    """For a fused elementwise node whose input shapes are all known (a loop step compiled for
    its per-step shapes): the program's fixed-shape entry (no per-call plan lookup), and whether
    writing into input ``pos`` is known to be allowed, so that the line needs no run-time shape
    comparisons (see ``inplace_line``). None when a shape is unknown or it is no NumPy program."""
    shapes = [tuple(v.type.shape) for v in node.inputs]
    program = getattr(impl, "program", None)
    if not isinstance(node.op, Elemwise) or not hasattr(program, "fixed"):
        return None
    if any(None in s for s in shapes):
        return None
    allowed = False
    if pos is not None:
        target = shapes[pos]
        lead = len(target) - node.outputs[0].ndim
        # the result has the target's shape when every other operand's axes, aligned with the
        # trailing ones, are 1 or the target's length on that axis
        allowed = lead == 0 and all(
            n == 1 or target[len(target) - len(s) + i] == n
            for s in shapes
            for i, n in enumerate(s)
            if len(s) <= len(target)
        )
        allowed = allowed and all(len(s) <= len(target) for s in shapes)
    return program.fixed(tuple(shapes), pos if allowed else None), allowed


def _reraise(program: LinkedProgram, e: Exception, local_vars: dict, names: dict) -> None:
    tb = e.__traceback__
    node = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<symgraph"):
            node = program.line_to_node.get(tb.tb_lineno)
            break
        tb = tb.tb_next
    if node is None or isinstance(e, SymgraphError):
        raise e
    described = []
    for v in node.inputs:
        val = local_vars.get(names.get(id(v), ""), getattr(v, "data", None))
        if isinstance(v, SharedVariable):
            val = v.value
        shape = getattr(val, "shape", None)
        dtype = getattr(val, "dtype", None)
        described.append(f"{v.describe()}: shape {shape}, dtype {dtype}")
    origin = node.tag.get("fused_from")
    origin_text = ""
    if origin:
        origin_text = "\n  fused from:" + "".join(f"\n    {o}" for o in origin)
    msg = (
        f"{type(e).__name__} in {node.op}: {e}\n  inputs:\n    "
        + "\n    ".join(described)
        + where(node.trace)
        + origin_text
    )
    raise ComputeError(msg, e) from None  # the message says it all; .original keeps the cause


class ComputeError(SymgraphError, RuntimeError):
    """An op failed while a compiled function ran; ``original`` is the exception it raised."""

    def __init__(self, message: str, original: Exception):
        super().__init__(message)
        self.original = original


def _nan_check(node: Apply, value: Any, backend: Any) -> None:
    xp = backend.xp
    if not bool(xp.all(xp.isfinite(value))):
        kind = "NaN" if bool(xp.any(xp.isnan(value))) else "Inf"
        raise NaNDetectedError(
            f"nan_guard: {node.op} produced {kind} (shape {np.shape(value)}){where(node.trace)}"
        )
