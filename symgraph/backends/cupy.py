"""The CuPy backend (CUDA). This is the only module that imports CuPy, and it does so lazily."""

from __future__ import annotations

import sys
from typing import Any

_probe_result: tuple[bool, str] | None = None


def probe() -> tuple[bool, str]:
    """(True, '') when CuPy imports and a CUDA device answers, else (False, why). Cached."""
    global _probe_result
    if _probe_result is None:
        _probe_result = _probe()
    return _probe_result


def _probe() -> tuple[bool, str]:
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed (pip install 'symgraph[cuda]')"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError without a driver
        return False, f"no CUDA device answered ({type(e).__name__}: {e})"
    if n == 0:
        return False, "CuPy found no CUDA device"
    return True, ""


class CupyBackend:
    name = "cuda"

    def __init__(self) -> None:
        import cupy
        import cupyx

        self.xp = cupy
        self._cupyx = cupyx

    def to_device(self, a: Any) -> Any:
        return self.xp.asarray(a)

    @staticmethod
    def to_host(a: Any) -> Any:
        return a.get() if hasattr(a, "get") else a

    def scatter_add(self, out: Any, idx: Any, values: Any) -> None:
        self._cupyx.scatter_add(out, idx, values)

    def __repr__(self) -> str:
        return "CupyBackend()"


_backend: CupyBackend | None = None
_warned = False


def get_backend(required: bool) -> CupyBackend | None:
    global _backend, _warned
    ok, why = probe()
    if not ok:
        if required:
            from ..errors import SymgraphError

            raise SymgraphError(f"device='cuda' was requested but {why}")
        if not _warned:
            print(f"symgraph: using the CPU ({why})", file=sys.stderr)
            _warned = True
        return None
    if _backend is None:
        _backend = CupyBackend()
    return _backend
