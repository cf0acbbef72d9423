"""The NumPy backend: the reference, always available."""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyBackend:
    name = "cpu"
    xp = np

    @staticmethod
    def to_device(a: Any) -> np.ndarray:
        return a

    @staticmethod
    def to_host(a: Any) -> np.ndarray:
        return a

    @staticmethod
    def scatter_add(out: np.ndarray, idx: Any, values: Any) -> None:
        """``out[idx] += values`` where repeated indices accumulate."""
        np.add.at(out, idx, values)

    def __repr__(self) -> str:
        return "NumpyBackend()"


BACKEND = NumpyBackend()
