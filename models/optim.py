"""Optimizers as graph ``updates``: SGD, the tutorial's RMSProp, Adam; global-norm clipping.

Every optimizer keeps its state in shared variables (created once, before any function is
compiled) so that checkpoints can save and restore it alongside the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

import symgraph as sg
import symgraph.tensor as T

OPTIMIZERS = ("sgd", "rmsprop", "adam")


@dataclass(frozen=True)
class OptimizerSpec:
    """Hyperparameters fixed at compile time; the learning rate is a function input."""

    name: str = "sgd"
    decay: float = 0.9  # RMSProp, as in the tutorial
    epsilon: float = 1e-6  # RMSProp: inside the square root, as in the tutorial
    beta1: float = 0.9  # Adam
    beta2: float = 0.999
    adam_epsilon: float = 1e-8
    clip_norm: float = 0.0  # 0: no clipping

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")


def init_state(spec: OptimizerSpec, params: Mapping[str, sg.SharedVariable]) -> dict:
    """Zero-initialised optimizer state: ``{key: shared variable}`` (keys are checkpoint names)."""
    state: dict[str, sg.SharedVariable] = {}

    def zeros_like(name: str, key: str) -> None:
        p = params[name]
        state[key] = sg.shared(np.zeros_like(p.get_value()), name=key)

    for name in params:
        if spec.name == "rmsprop":
            zeros_like(name, f"ms.{name}")
        elif spec.name == "adam":
            zeros_like(name, f"m.{name}")
            zeros_like(name, f"v.{name}")
    if spec.name == "adam":
        dtype = next(iter(params.values())).dtype
        state["t"] = sg.shared(np.zeros((), dtype=dtype), name="adam_t")
    return state


def clip_by_global_norm(grads: Sequence[T.Variable], max_norm: float) -> list[T.Variable]:
    """Scale all gradients by ``min(1, max_norm / ||g||)`` (one norm over every parameter)."""
    if not max_norm or max_norm <= 0:
        return list(grads)
    dtype = grads[0].dtype
    sq = T.sum(T.sqr(grads[0]))
    for g in grads[1:]:
        sq = sq + T.sum(T.sqr(g))
    norm = T.sqrt(sq)
    scale = T.cast(T.minimum(1.0, max_norm / T.maximum(norm, 1e-12)), dtype)
    return [g * scale for g in grads]


def make_updates(
    spec: OptimizerSpec,
    params: Mapping[str, sg.SharedVariable],
    grads: Sequence[T.Variable],
    state: Mapping[str, sg.SharedVariable],
    lr: T.Variable,
) -> list[tuple[sg.SharedVariable, T.Variable]]:
    """``(shared, new_value)`` pairs for one optimisation step with learning rate ``lr``."""
    grads = clip_by_global_norm(grads, spec.clip_norm)
    updates: list[tuple[sg.SharedVariable, T.Variable]] = []

    def put(target: sg.SharedVariable, expr: T.Variable) -> None:
        updates.append((target, T.cast(expr, target.dtype)))

    if spec.name == "adam":
        t = state["t"] + 1
        # bias corrections folded into the step size, as in the Adam paper (section 2)
        step = lr * T.sqrt(1 - spec.beta2**t) / (1 - spec.beta1**t)
        put(state["t"], t)
    for (name, p), g in zip(params.items(), grads):
        if spec.name == "sgd":
            put(p, p - lr * g)
        elif spec.name == "rmsprop":
            ms = state[f"ms.{name}"]
            ms_new = spec.decay * ms + (1 - spec.decay) * T.sqr(g)
            put(ms, ms_new)
            put(p, p - lr * g / T.sqrt(ms_new + spec.epsilon))
        else:
            m, v = state[f"m.{name}"], state[f"v.{name}"]
            m_new = spec.beta1 * m + (1 - spec.beta1) * g
            v_new = spec.beta2 * v + (1 - spec.beta2) * T.sqr(g)
            put(m, m_new)
            put(v, v_new)
            put(p, p - step * m_new / (T.sqrt(v_new) + spec.adam_epsilon))
    return updates
