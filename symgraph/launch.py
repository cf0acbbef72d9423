"""Launch planning for generated elementwise kernels: per call, how each input is passed
(its layout, see ``codegen``) and the collapsed index space the strided inputs are walked over.
Pure Python, used by the CUDA backend and by the tests that run kernels on the host."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
