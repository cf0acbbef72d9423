"""Exceptions, and the user's source line that every node remembers.

A node records where the *user's* code created it (the first stack frame outside this package), so
that errors raised at build time, at call time or after rewriting point at the line the user wrote.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class SourceLine:
    """A file:line in user code."""

    filename: str
    lineno: int
    function: str

    @property
    def code(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        code = self.code
        where = f'File "{self.filename}", line {self.lineno}, in {self.function}'
        return f"{where}\n    {code}" if code else where


def user_line(skip_package: bool = True) -> SourceLine | None:
    """The innermost stack frame that is not inside symgraph (the user's call site)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (skip_package and filename.startswith(_PACKAGE_DIR)):
            return SourceLine(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


class SymgraphError(Exception):
    """Base class of the errors symgraph raises itself."""


class ShapeError(SymgraphError, ValueError):
    """Shapes that cannot work together, found while building or running a graph."""


class GraphTypeError(SymgraphError, TypeError):
    """A variable of the wrong dtype or number of dimensions."""


class MissingInputError(SymgraphError):
    """A compiled function needs a variable that is neither an input, shared, nor constant."""


class UnusedInputError(SymgraphError):
    """An input of ``function`` that the outputs do not depend on."""


class DisconnectedInputError(SymgraphError, ValueError):
    """``grad`` was asked for the gradient with respect to a variable the cost does not use."""


class NaNDetectedError(SymgraphError, FloatingPointError):
    """The NaN guard found NaN or Inf in the output of a node."""


def report(policy: str, error: type[Exception], message: str) -> None:
    """Act on a problem the user may choose to allow: ``policy`` is 'raise', 'warn' or 'ignore'
    (``on_unused_input``, ``disconnected_inputs``, ``warn_float64``)."""
    if policy not in ("raise", "warn", "ignore"):
        raise ValueError(f"expected 'raise', 'warn' or 'ignore', got {policy!r}")
    if policy == "raise":
        raise error(message)
    if policy == "warn":
        import warnings

        warnings.warn(message, stacklevel=3)


def where(trace: SourceLine | None) -> str:
    """A line to append to an error message: where the node or variable was created."""
    if trace is None:
        return ""
    return f"\n  created at {trace}"
