"""The graph: types, variables, applications of ops, and walks over them.

A graph is a DAG of :class:`Variable` and :class:`Apply` nodes. Every ``Apply`` records the user's
source line that created it. This module knows nothing about particular ops or backends; the tensor
layer plugs its operator overloads in through :func:`bind_tensor_api`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import operators
from .errors import GraphTypeError, SourceLine, user_line, where
from .operators import TensorOperators

_api: Any = None  # the symgraph.tensor namespace, bound at import time by the tensor layer


def bind_tensor_api(namespace: Any) -> None:
    global _api
    _api = namespace
    operators.api = namespace


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


class TensorType:
    """dtype + static shape (a tuple of ``int`` or ``None`` per dimension).

    Unlike Theano, a dimension of unknown length may hold 1 and broadcast at run time as in
    NumPy; a dimension known to be 1 is broadcastable at build time.
    """

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str | np.dtype, shape: Sequence[int | None]):
        self.dtype = np.dtype(dtype).name
        self.shape = tuple(None if s is None else int(s) for s in shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        return tuple(s == 1 for s in self.shape)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TensorType)
            and self.dtype == other.dtype
            and self.shape == other.shape
        )

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape))

    def __repr__(self) -> str:
        dims = ",".join("?" if s is None else str(s) for s in self.shape)
        return f"TensorType({self.dtype}, ({dims}{',' if self.ndim == 1 else ''}))"

    def accepts(self, other: TensorType) -> bool:
        """True when every value of ``other`` is a valid value of ``self``."""
        if self.dtype != other.dtype or self.ndim != other.ndim:
            return False
        return all(a is None or a == b for a, b in zip(self.shape, other.shape))

    def with_shape(self, shape: Sequence[int | None]) -> TensorType:
        return TensorType(self.dtype, shape)

    def make_variable(self, name: str | None = None) -> Variable:
        return Variable(self, name=name)

    def check_value(self, value: Any, name: str, allow_downcast: bool = False) -> np.ndarray:
        """Convert a host value to this type or raise a TypeError naming the variable."""
        if isinstance(value, np.ndarray) and value.dtype.name == self.dtype:
            arr = value
        else:
            arr = np.asarray(value)
            if arr.dtype.name != self.dtype:
                ok = allow_downcast or _is_safe_input_cast(value, arr, self.dtype)
                if not ok:
                    raise GraphTypeError(
                        f"{name} expects dtype {self.dtype}, got {arr.dtype.name} (pass "
                        f"allow_input_downcast=True to function() to cast, or cast the data)"
                    )
                arr = arr.astype(self.dtype)
        if arr.ndim != self.ndim:
            raise GraphTypeError(
                f"{name} expects {self.ndim} dimension(s) ({self}), got an array of shape "
                f"{arr.shape}"
            )
        for axis, (want, got) in enumerate(zip(self.shape, arr.shape)):
            if want is not None and want != got:
                raise GraphTypeError(
                    f"{name} expects length {want} on axis {axis}, got shape {arr.shape}"
                )
        return arr


def shape_conflict(a: Sequence[int | None], b: Sequence[int | None]) -> tuple[int, int, int] | None:
    """The first axis where two static shapes both know a length and disagree:
    ``(axis, length in a, length in b)``, or None when they may agree."""
    for axis, (x, y) in enumerate(zip(a, b)):
        if x is not None and y is not None and x != y:
            return axis, x, y
    return None


def _is_safe_input_cast(value: Any, arr: np.ndarray, dtype: str) -> bool:
    # Python scalars and lists are "weak": they may take the input's dtype if it holds them.
    if not isinstance(value, np.ndarray | np.generic):
        if np.issubdtype(arr.dtype, np.floating) and np.dtype(dtype).kind == "f":
            return True
        if arr.dtype.kind in "iub" and np.dtype(dtype).kind in "iuf":
            return bool(np.all(arr.astype(dtype) == arr))
    return np.can_cast(arr.dtype, dtype, casting="safe")


# ---------------------------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------------------------

_ids = itertools.count()


class Variable(TensorOperators):
    """A symbolic value: a graph input (``owner is None``) or the output of an ``Apply``."""

    __array_priority__ = 1000  # so that ndarray + Variable defers to Variable.__radd__

    def __init__(
        self,
        type: TensorType,
        owner: Apply | None = None,
        index: int | None = None,
        name: str | None = None,
    ):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.id = next(_ids)
        self.trace: SourceLine | None = owner.trace if owner is not None else user_line()
        self.tag: dict[str, Any] = {}

    # -- properties Theano users reach for
    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        return self.type.broadcastable

    @property
    def static_shape(self) -> tuple[int | None, ...]:
        return self.type.shape

    def describe(self) -> str:
        """``name`` or a description of the op that made it, for error messages."""
        if self.name:
            return repr(self.name)
        if self.owner is not None:
            return f"output {self.index} of {self.owner.op}"
        return f"<unnamed {self.type}>"

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.owner is not None:
            op = str(self.owner.op)
            return op if len(self.owner.outputs) == 1 else f"{op}.{self.index}"
        return f"<{self.type}>"

    __str__ = __repr__

    def clone(self) -> Variable:
        v = type(self).__new__(type(self))
        v.__dict__.update(self.__dict__)
        v.owner, v.index, v.id = None, None, next(_ids)
        v.tag = dict(self.tag)
        return v

    def eval(self, inputs_to_values: dict | None = None) -> np.ndarray:
        """Compile and run this variable (cached per set of inputs), like Theano's ``eval``."""
        from .compile.function import function

        inputs_to_values = inputs_to_values or {}
        ins = list(inputs_to_values)
        key = tuple(v.id for v in ins)
        cache = self.tag.setdefault("_eval_cache", {})
        if key not in cache:
            cache[key] = function(ins, self, on_unused_input="ignore")
        return cache[key](*[inputs_to_values[v] for v in ins])

    # Variables are dictionary keys everywhere: identity semantics, as in Theano.
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError(
            f"symbolic variable {self} has no truth value; use T.switch/T.lt/... to build "
            "conditions into the graph"
        )

    def __iter__(self):
        raise TypeError(f"symbolic variable {self} is not iterable; index it instead")

    def __len__(self):
        raise TypeError(f"symbolic variable {self} has no len(); use .shape[0]")

    def __getitem__(self, idx):
        return _api.getitem(self, idx)

    def __getattr__(self, name: str):
        # Methods like .sum(), .dot(), .reshape() and properties like .T and .shape
        if name.startswith("__") or _api is None:
            raise AttributeError(name)
        method = _api.VARIABLE_METHODS.get(name)
        if method is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return method(self)


class Constant(Variable):
    """A variable with a fixed value, folded into compiled functions."""

    def __init__(self, type: TensorType, data: np.ndarray, name: str | None = None):
        super().__init__(type, name=name)
        self.data = data
        self.data.setflags(write=False)

    def signature(self) -> tuple:
        d = self.data
        return (self.type, d.tobytes() if d.size <= 64 else id(d))

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.data.size <= 4:
            return f"Constant{{{np.array2string(self.data, separator=',')}}}"
        return f"Constant{{{self.type}}}"

    __str__ = __repr__


class SharedVariable(Variable):
    """State that lives across calls of compiled functions (weights, optimizer state).

    The value is held by the backend that computes on it (NumPy on the CPU, CuPy on the GPU);
    ``get_value`` always returns a host (NumPy) array unless ``return_device=True``.
    """

    def __init__(self, type: TensorType, value: Any, name: str | None = None):
        super().__init__(type, name=name)
        self.value = value  # numpy or device array, already of ``type``

    def get_value(self, borrow: bool = False, return_device: bool = False) -> Any:
        v = self.value
        if return_device:
            return v if borrow else v.copy()
        if not isinstance(v, np.ndarray):
            return v.get()  # a device array: ``.get()`` copies it to the host
        return v if borrow else v.copy()

    def set_value(self, value: Any, borrow: bool = False) -> None:
        name = f"shared variable {self.describe()}"
        if not isinstance(value, np.ndarray) and hasattr(value, "__cuda_array_interface__"):
            if value.dtype.name != self.dtype or value.ndim != self.ndim:
                raise GraphTypeError(f"{name} holds {self.type}, got {value.dtype}{value.shape}")
            self.value = value if borrow else value.copy()
            return
        arr = self.type.check_value(value, name, allow_downcast=False)
        if arr is value and not borrow:
            arr = arr.copy()
        if not isinstance(self.value, np.ndarray):  # keep state on the device it lives on
            import sys

            self.value = sys.modules[type(self.value).__module__.split(".")[0]].asarray(arr)
        else:
            self.value = arr

    def __repr__(self) -> str:
        return self.name or f"<shared {self.type}>"

    __str__ = __repr__


# ---------------------------------------------------------------------------------------------
# Apply and Op
# ---------------------------------------------------------------------------------------------


class Apply:
    """One application of an op to input variables, producing output variables."""

    def __init__(self, op: Op, inputs: Sequence[Variable], output_types: Sequence[TensorType]):
        self.op = op
        self.inputs = list(inputs)
        self.trace = user_line()
        self.outputs = []
        for i, t in enumerate(output_types):
            v = Variable.__new__(Variable)
            Variable.__init__(v, t, owner=self, index=i)
            self.outputs.append(v)
        self.tag: dict[str, Any] = {}

    @property
    def out(self) -> Variable:
        return self.outputs[0]

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> Apply:
        """Rebuild through ``make_node`` so that types are re-inferred; keep the user's line."""
        node = self.op.make_node(*inputs)
        node.trace = self.trace
        node.tag.update(self.tag)
        for old, new in zip(self.outputs, node.outputs):
            new.name = old.name
            new.trace = old.trace
        return node

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(str, self.inputs))})"


class Op:
    """An operation. Subclasses declare ``__props__`` (which define equality, so CSE is a lookup)
    and implement ``make_node``, ``perform`` (or ``make_impl``), and ``grad`` if differentiable."""

    __props__: tuple[str, ...] = ()

    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self) -> int:
        return hash((type(self), self._props()))

    def __str__(self) -> str:
        props = self._props()
        if not props:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(map(str, props))}}}"

    __repr__ = __str__

    def __call__(self, *inputs: Any) -> Any:
        node = self.make_node(*inputs)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def make_node(self, *inputs: Any) -> Apply:
        raise NotImplementedError

    def perform(self, node: Apply, inputs: Sequence[Any], xp: Any) -> Sequence[Any]:
        """Compute the outputs (a tuple) from input arrays with array module ``xp``."""
        raise NotImplementedError(f"{self} has no implementation")

    def make_impl(self, node: Apply, backend: Any):
        """A callable ``f(*input_arrays) -> output array`` (one output) or tuple of outputs.

        The default wraps ``perform``; ops override it to precompute per-node constants.
        """
        xp = backend.xp
        perform = self.perform
        if len(node.outputs) == 1:
            return lambda *ins: perform(node, ins, xp)[0]
        return lambda *ins: tuple(perform(node, ins, xp))

    def grad(self, inputs: Sequence[Variable], output_grads: Sequence[Variable]) -> list:
        raise NotImplementedError(f"{self} has no gradient")

    differentiable = True


def as_apply_trace(node: Apply) -> str:
    return where(node.trace)


from .walks import ancestors, clone_replace, graph_inputs, toposort  # noqa: E402,F401
