"""Array backends. ``numpy`` is always there; ``cupy`` (the only module that imports CuPy) is
loaded only when a CUDA device is asked for."""

from __future__ import annotations

from typing import Any

from ..config import config


def get_backend(device: str | None = None) -> Any:
    """The backend for ``device`` (``'cpu'``, ``'cuda'`` or ``'auto'``; default: config.device)."""
    device = device or config.device
    if device == "cpu":
        from .numpy import BACKEND

        return BACKEND
    from . import cupy as cupy_backend

    if device == "cuda":
        return cupy_backend.get_backend(required=True)
    if device == "auto":
        be = cupy_backend.get_backend(required=False)
        if be is not None:
            return be
        from .numpy import BACKEND

        return BACKEND
    raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")
