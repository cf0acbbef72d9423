"""Global flags, read once from the ``SYMGRAPH_FLAGS`` environment variable.

``SYMGRAPH_FLAGS="floatX=float32,device=cuda"`` works like Theano's ``THEANO_FLAGS``.
Flags can also be changed at run time (``symgraph.config.floatX = "float64"``); a compiled
function keeps the values it was compiled with.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_CHOICES = {
    "floatX": ("float32", "float64"),
    "device": ("auto", "cpu", "cuda"),
    "mode": ("FAST_RUN", "FAST_COMPILE", "DEBUG_MODE"),
    "warn_float64": ("ignore", "warn", "raise"),
    "nan_guard": (False, True),
    "print_kernels": (False, True),
    "allow_gc": (False, True),
    "profile_sync": (False, True),
}


class Config:
    """The flag set. Attribute assignment is validated so that typos fail loudly."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})
        self.floatX = "float32"
        self.device = "auto"
        self.mode = "FAST_RUN"
        self.warn_float64 = "ignore"
        self.nan_guard = False
        self.print_kernels = False
        # Theano's name, the other default: False keeps the buffers of large matrix products
        # that die within a call from one call to the next (compile/inplace.py); True frees
        # every intermediate after its last use, holding less memory between calls
        self.allow_gc = False
        # profile=True on a device times what the host spends enqueueing each node; with this
        # flag it waits for each node's work as well (per-node device times; a slower run)
        self.profile_sync = False

    def __setattr__(self, name: str, value) -> None:
        if name not in _CHOICES:
            raise AttributeError(f"symgraph.config has no flag {name!r}; flags: {sorted(_CHOICES)}")
        choices = _CHOICES[name]
        if isinstance(choices[0], bool):
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            value = bool(value)
        elif value not in choices:
            raise ValueError(f"config.{name} must be one of {choices}, got {value!r}")
        self._values[name] = value

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    @contextlib.contextmanager
    def change_flags(self, **flags) -> Iterator[None]:
        """Temporarily set flags: ``with config.change_flags(floatX="float64"): ...``."""
        old = {k: getattr(self, k) for k in flags}
        try:
            for k, v in flags.items():
                setattr(self, k, v)
            yield
        finally:
            for k, v in old.items():
                setattr(self, k, v)

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


def parse_flags(text: str) -> dict[str, str]:
    """Parse ``"a=1,b=2"`` into a dict; empty items are ignored."""
    flags = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"SYMGRAPH_FLAGS item {item!r} is not of the form name=value")
        key, value = item.split("=", 1)
        flags[key.strip()] = value.strip()
    return flags


config = Config()
for _k, _v in parse_flags(os.environ.get("SYMGRAPH_FLAGS", "")).items():
    setattr(config, _k, _v)
