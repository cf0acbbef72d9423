"""Launching generated elementwise kernels. ``plan_launch``: per call, how each input is passed
(its layout, see ``codegen``) and the collapsed index space the strided inputs are walked over.
``ElementwiseLauncher``: a node's kernel called with its inputs, planned once per layout. Pure
Python (the array module and the kernel compiler are handed in): the CUDA backend uses it with
CuPy, the tests and ``benchmarks/bench_launch.py`` with NumPy and host-compiled kernels."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class LaunchPlan:
    layouts: tuple[str, ...]
    shape: tuple[int, ...]  # collapsed output shape the 'g' inputs are indexed over
    strides: tuple[tuple[int, ...], ...]  # element strides of each 'g' input, in order
    index_type: str
    size: int


def plan_launch(
    out_shape: Sequence[int],
    in_shapes: Sequence[Sequence[int]],
    in_strides: Sequence[Sequence[int] | str | None],
) -> LaunchPlan:
    """Choose each input's layout and collapse the index space for one call.

    ``in_strides`` are element strides (``None`` for an input inlined as a literal, ``'value'``
    for a host scalar passed by value). The output
    is C-contiguous. Axes of length 1 are dropped; neighbouring axes merge when every strided
    input steps through them as one, so a transposed or sliced input pays for as few index
    divisions as possible.
    """
    out_shape = tuple(int(s) for s in out_shape)
    nd = len(out_shape)
    size = math.prod(out_shape)
    contiguous = _c_strides(out_shape)
    layouts: list[str] = []
    padded: list[tuple[int, ...]] = []
    for shape, strides in zip(in_shapes, in_strides):
        if strides is None or strides == "value":
            layouts.append("k" if strides is None else "v")
            continue
        shape = (1,) * (nd - len(shape)) + tuple(shape)
        strides = (0,) * (nd - len(strides)) + tuple(strides)
        st = tuple(0 if n == 1 else s for n, s in zip(shape, strides))
        if math.prod(shape) == 1:
            layouts.append("s")
        elif shape == out_shape and all(
            s == c for s, c, n in zip(st, contiguous, out_shape) if n != 1
        ):
            layouts.append("c")
        else:
            layouts.append("g")
            padded.append(st)
    if not padded:
        return LaunchPlan(tuple(layouts), (), (), "long long", size)
    axes = [d for d in range(nd) if out_shape[d] != 1]
    shape = [out_shape[axes[0]]]
    strides = [[st[axes[0]]] for st in padded]
    for d in axes[1:]:
        n = out_shape[d]
        if all(s[-1] == st[d] * n for s, st in zip(strides, padded)):
            shape[-1] *= n  # the previous axis steps exactly over this one: merge
            for s, st in zip(strides, padded):
                s[-1] = st[d]
        else:
            shape.append(n)
            for s, st in zip(strides, padded):
                s.append(st[d])
    reach = max(sum((n - 1) * abs(x) for n, x in zip(shape, s)) for s in strides)
    index = "int" if size <= _INT32_MAX and reach <= _INT32_MAX else "long long"
    return LaunchPlan(tuple(layouts), tuple(shape), tuple(tuple(s) for s in strides), index, size)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


class ElementwiseLauncher:
    """Runs one Elemwise node as a generated kernel.

    Per distinct (shapes, strides) of its inputs it plans the launch once (layouts, collapsed
    index space, kernel, grid); a call is then a dictionary lookup, one output allocation and one
    launch. It needs from ``xp`` only ``empty`` and ``asarray``, and from ``compile_kernel`` a
    callable ``kernel(grid, block, args)``, so tests run it with NumPy and host-compiled kernels.
    """

    BLOCK = 256
    # the linker may pass ``out=``: a loop's output row to write into (a tuple, one entry or
    # None per result, for a multi-output node)
    takes_out = True

    def __init__(
        self,
        node: Any,
        xp: Any,
        compile_kernel: Callable[[Any], Any],
        max_blocks: Callable[[], int],
    ) -> None:
        from . import codegen

        self.node = node
        self.xp = xp
        self.compile_kernel = compile_kernel
        self.max_blocks = max_blocks
        self.literals = codegen.inlinable_constants(node)
        self.out_dtypes = [o.dtype for o in node.outputs]
        self.multi = len(node.outputs) > 1
        self.array_type = xp.ndarray
        self._plans: dict[tuple, Callable[..., Any]] = {}
        self.entry = self._make_entry()

    def __call__(self, *xs: Any, out: Any = None) -> Any:
        """The result, in ``out`` when given with the result's shape and dtype (a C-contiguous
        row of a loop's output buffer), else in a new array; a tuple of them for a multi-output
        node (``out`` then is a tuple too). The linker calls ``entry`` itself."""
        return self.entry(*xs, out=out)

    def _make_entry(self) -> Callable[..., Any]:
        """The per-call function, generated for the node's arity: the key of the inputs'
        shapes and strides, one lookup, then the launch function of that plan (no loops, no
        argument lists built per call: a launch costs ~2 us of Python less)."""
        n = len(self.node.inputs)
        xs = ", ".join(f"x{k}" for k in range(n))
        key = ", ".join(
            f"(x{k}.shape, x{k}.strides) if isinstance(x{k}, A) else None" for k in range(n)
        )
        src = (
            f"def entry({xs}{', ' if n else ''}out=None):\n"
            f"    key = ({key}{',' if n == 1 else ''})\n"
            f"    run = plans.get(key)\n"
            f"    if run is None:\n"
            f"        run = prepare(({xs}{',' if n == 1 else ''}), key)\n"
            f"    return run({xs}{', ' if n else ''}out)\n"
        )
        env = {"A": self.array_type, "plans": self._plans, "prepare": self._prepare}
        exec(compile(src, f"<symgraph launch {self.node.op}>", "exec"), env)
        return env["entry"]

    def _prepare(self, xs: Sequence[Any], key: tuple) -> Callable[..., Any]:
        """The launch function for inputs of these shapes and strides (made once per key):
        the layouts, the kernel rendered and compiled for them, the grid, and the generated
        call that allocates the results and launches."""
        from . import codegen
        from .graph import Constant

        shapes = [tuple(np.shape(x)) if s is None else s[0] for x, s in zip(xs, key)]
        strides: list[Any] = [
            None if k in self.literals else "value" if s is None else _element_strides(x)
            for k, (x, s) in enumerate(zip(xs, key))
        ]
        shape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
        if self.multi and any(
            np.broadcast_shapes(*[shapes[k] for k in used]) != shape
            for used in codegen.program_of(self.node)[0].inputs_of()
        ):
            return self._prepare_apart(key)
        plan = codegen.plan_launch(shape, shapes, strides)
        ks = codegen.render_node(self.node, plan, self.literals)
        kernel = self.compile_kernel(ks)
        grid = min(-(-plan.size // self.BLOCK), self.max_blocks())
        # How each input is passed: as it is; a host scalar by value, as the kernel parameter's
        # exact type; a constant that is not inlined (non-finite, or an array) copied once, now.
        env: dict[str, Any] = {"kernel": kernel, "empty": self.xp.empty, "shape": shape}
        args = []
        for k, lay in enumerate(plan.layouts):
            if lay == "v":
                env[f"conv{k}"] = _by_value(self.node.inputs[k].dtype)
                args.append(f"conv{k}(x{k})")
            elif lay != "k" and isinstance(self.node.inputs[k], Constant):
                env[f"const{k}"] = self.xp.asarray(xs[k])
                args.append(f"const{k}")
            elif lay != "k":
                args.append(f"x{k}")
        tail = [np.int64(plan.size)] + [np.int64(n) for n in plan.shape]
        tail += [np.int64(s) for st in plan.strides for s in st]
        env["tail"], env["grid"], env["block"] = tuple(tail), (grid,), (self.BLOCK,)
        n, n_out = len(xs), len(self.out_dtypes)
        lines = [f"def run({''.join(f'x{k}, ' for k in range(n))}out):"]
        if self.multi:
            lines.append(f"    out = out or {(None,) * n_out!r}")
        for r, dtype in enumerate(self.out_dtypes):
            env[f"dt{r}"] = np.dtype(dtype)
            t = f"out[{r}]" if self.multi else "out"
            lines.append(
                f"    o{r} = {t} if {t} is not None and {t}.shape == shape and "
                f"{t}.dtype == dt{r} else empty(shape, dt{r})"
            )
        outs = [f"o{r}" for r in range(n_out)]
        if grid:
            lines.append(
                f"    kernel(grid, block, ({''.join(a + ', ' for a in args + outs)}*tail))"
            )
        lines.append(f"    return {', '.join(outs)}{',' if self.multi and n_out == 1 else ''}")
        exec(compile("\n".join(lines) + "\n", f"<symgraph launch {ks.name}>", "exec"), env)
        run = env["run"]
        run.source = "\n".join(lines)
        self._plans[key] = run
        return run

    def _prepare_apart(self, key: tuple) -> Callable[..., Any]:
        """The plan for inputs whose shapes give the results different shapes (a result that
        depends only on a bias row, say): one kernel per result, each over its own inputs."""
        from . import codegen
        from .ops.elemwise import Elemwise

        composite = codegen.program_of(self.node)[0]
        apart = []
        for r in range(len(self.out_dtypes)):
            program, used = composite.single_output(r)
            node = Elemwise(program).make_node(*[self.node.inputs[k] for k in used])
            launcher = ElementwiseLauncher(node, self.xp, self.compile_kernel, self.max_blocks)
            launcher.BLOCK = self.BLOCK
            apart.append((launcher.entry, used))

        def run(*args: Any) -> tuple:
            *xs, out = args
            targets = out or (None,) * len(apart)
            return tuple(
                entry(*[xs[k] for k in used], out=t) for (entry, used), t in zip(apart, targets)
            )

        self._plans[key] = run
        return run


def _by_value(dtype: str) -> Callable[[Any], Any]:
    """A host scalar or one-element array as the NumPy scalar of the kernel parameter's type."""
    scalar = np.dtype(dtype).type
    return lambda a: scalar(a.item() if hasattr(a, "item") else a)


def _element_strides(x: Any) -> tuple[int, ...]:
    itemsize = x.dtype.itemsize
    return tuple(s // itemsize for s in x.strides)
