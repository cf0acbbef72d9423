"""symgraph: a Theano-style symbolic graph compiler for NumPy (CPU) and CuPy (CUDA).

import symgraph as sg              # or: import symgraph as theano
import symgraph.tensor as T
"""

from __future__ import annotations

from . import (
    gradient,
    printing,
    tensor,  # binds the tensor API to graph variables; import first  # noqa: I001
    testing,
)
from .compile.function import Function, In, function
from .config import config
from .errors import (
    DisconnectedInputError,
    GraphTypeError,
    MissingInputError,
    NaNDetectedError,
    ShapeError,
    SymgraphError,
    UnusedInputError,
)
from .grad import grad
from .graph import Apply, Constant, Op, SharedVariable, TensorType, Variable, clone_replace
from .printing import debugprint, pp
from .scan import scan
from .shared import shared

clone = clone_replace
floatX = config.floatX

__version__ = "0.1.0"

__all__ = [
    "Apply",
    "Constant",
    "DisconnectedInputError",
    "Function",
    "GraphTypeError",
    "In",
    "MissingInputError",
    "NaNDetectedError",
    "Op",
    "ShapeError",
    "SharedVariable",
    "SymgraphError",
    "TensorType",
    "UnusedInputError",
    "Variable",
    "clone",
    "clone_replace",
    "config",
    "debugprint",
    "function",
    "grad",
    "gradient",
    "pp",
    "printing",
    "scan",
    "shared",
    "tensor",
    "testing",
]
