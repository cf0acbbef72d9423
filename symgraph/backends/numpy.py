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
        rows = _row_scatter(out, idx, values)
        if rows is None:
            np.add.at(out, idx, values)
            return
        target, index, vals = rows
        # ``np.add.at`` adds row by row; for many long rows, sorting the indices and summing
        # each run of equal ones with ``reduceat`` is about twice as fast (embedding gradients
        # of a minibatch). Each distinct row is then written once.
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        first = np.empty(len(sorted_index), bool)
        first[:1] = True
        np.not_equal(sorted_index[1:], sorted_index[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        target[sorted_index[starts]] += np.add.reduceat(vals[order], starts, axis=0)

    def __repr__(self) -> str:
        return "NumpyBackend()"


BACKEND = NumpyBackend()

# below this many values np.add.at is as fast as the sort (and has no setup)
_SORTED_SCATTER_MIN_SIZE = 4096


def _row_scatter(out: np.ndarray, idx: Any, values: Any) -> tuple | None:
    """``(target, index, values)`` when ``out[idx] += values`` adds whole rows of ``target``
    (a view of ``out``) at a 1-d integer ``index``: ``out[i]`` or ``out[:, i]`` on a matrix."""
    if isinstance(idx, tuple):
        if len(idx) == 1:
            idx = idx[0]
        elif len(idx) == 2 and out.ndim == 2 and _is_full_slice(idx[0]):
            index = idx[1]
            if not isinstance(index, np.ndarray) or index.ndim != 1:
                return None
            values = np.asarray(values)
            if values.shape != (out.shape[0], len(index)):
                return None
            out, idx, values = out.T, index, values.T
        else:
            return None
    if not isinstance(idx, np.ndarray) or idx.ndim != 1 or idx.dtype.kind not in "iu":
        return None
    if out.ndim < 2 or len(idx) == 0:
        return None
    values = np.asarray(values)
    if values.shape != (len(idx), *out.shape[1:]) or values.size < _SORTED_SCATTER_MIN_SIZE:
        return None
    n = out.shape[0]
    if idx.min() < -n or idx.max() >= n:
        return None  # let np.add.at raise its IndexError
    return out, idx % n if idx.min() < 0 else idx, values


def _is_full_slice(p: Any) -> bool:
    return isinstance(p, slice) and p == slice(None)
