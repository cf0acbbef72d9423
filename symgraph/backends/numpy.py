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

    @staticmethod
    def gemm_into(out: np.ndarray, alpha: Any, x: np.ndarray, y: np.ndarray) -> bool:
        """``out += alpha * x @ y`` in place with one BLAS call; False if it should not (no
        SciPy, operands it does not take, a long inner axis), and the caller computes it with
        NumPy instead."""
        # A product with a short inner axis is bound by memory traffic, and accumulating in
        # BLAS saves passes over ``out``; a long one is bound by arithmetic, where NumPy's
        # own BLAS measured up to 10% faster than SciPy's here.
        if x.shape[-1] >= _SHORT_INNER:
            return False
        blas = _scipy_blas()
        return blas is not None and _blas_gemm_into(blas, out, alpha, x, y)

    def __repr__(self) -> str:
        return "NumpyBackend()"


BACKEND = NumpyBackend()

# inner lengths below which ``gemm_into`` adds the product in by BLAS itself
_SHORT_INNER = 128

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


_BLAS: list = []


def _scipy_blas() -> Any:
    """SciPy's BLAS wrappers (NumPy exposes no ``gemm`` with ``beta``), or None."""
    if not _BLAS:
        try:
            from scipy.linalg import blas
        except ImportError:  # pragma: no cover - SciPy is a dependency
            blas = None
        _BLAS.append(blas)
    return _BLAS[0]


def _blas_gemm_into(blas: Any, out: np.ndarray, alpha: Any, x: np.ndarray, y: np.ndarray) -> bool:
    """``out += alpha * x @ y`` in place through a BLAS module with Fortran-order ``gemm``
    (``scipy.linalg.blas``); False when the operands do not suit it (the caller falls back).

    A C-ordered ``out`` is a Fortran-ordered ``out.T``, so ``out.T += alpha * y.T @ x.T`` is
    computed; each operand is handed over as whichever of itself and its transpose is
    Fortran-ordered, with the matching transpose flag, so nothing is copied.
    """
    if out.ndim != 2 or y.ndim != 2 or out.dtype != x.dtype or out.dtype != y.dtype:
        return False
    if out.shape != (x.shape[0], y.shape[1]):
        return False
    routine = {"float32": "sgemm", "float64": "dgemm"}.get(out.dtype.name)
    if routine is None or 0 in out.shape or x.shape[1] == 0:
        return False
    if out.flags.c_contiguous:
        c, a, b = out.T, y.T, x.T  # out.T = alpha * y.T @ x.T + out.T
    elif out.flags.f_contiguous:
        c, a, b = out, x, y
    else:
        return False
    a, trans_a = _fortran_operand(a)
    b, trans_b = _fortran_operand(b)
    if a is None or b is None:
        return False
    result = getattr(blas, routine)(
        alpha, a, b, beta=1.0, c=c, trans_a=trans_a, trans_b=trans_b, overwrite_c=1
    )
    if result is not c and not np.shares_memory(result, c):  # BLAS copied: keep its result
        c[...] = result
    return True


def _fortran_operand(m: np.ndarray) -> tuple[np.ndarray | None, int]:
    if m.flags.f_contiguous:
        return m, 0
    if m.flags.c_contiguous:
        return m.T, 1  # m.T is Fortran-ordered; BLAS transposes it back
    return None, 0
