"""CuPy emulated on the CPU, as strict as CuPy where a first GPU run would break.

symgraph's CUDA backend (``symgraph/backends/cupy.py``) and every op's ``xp`` path run unchanged
against this module when it is installed as ``cupy``/``cupyx`` (:func:`install`). What it checks
that a NumPy-subclass stand-in cannot:

- device arrays are not NumPy arrays: ``np.asarray(device_array)`` raises the TypeError CuPy
  raises, and a NumPy array (0-d included) handed to a device function, ufunc, ``out=`` or
  ``a[...] = value`` raises CuPy's ``Unsupported type`` TypeError;
- only names the installed CuPy really has exist (module functions, ufunc methods, array
  methods, ``cupy.random.Generator`` methods), so code calling a NumPy-only function fails here;
- reductions and scalar indexing give 0-d device arrays (CuPy), not NumPy scalars;
- ``RawKernel`` (in ``emulated_cuda``) compiles the exact generated CUDA source with the host C++
  compiler under ``codegen.HOST_SHIM`` and runs it over a host grid; scalar and pointer arguments
  must match the kernel's parameter types exactly (a mismatch is silent garbage on a GPU);
- calls are checked against the installed CuPy's signatures where CuPy has them;
- :data:`STATS` counts host<->device copies, synchronising reads, kernel launches and all device
  work, so tests can assert that a training step does not synchronise inside its loops.

What it cannot show: CuPy's own numerics, cuBLAS, fast-math, timing. That is for a real device
(``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

import inspect
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # CuPy imports without a GPU; its namespace tells which names really exist
    import cupy as _real_cupy
    import cupyx as _real_cupyx
    from cupy.cuda import nvrtc as _real_nvrtc

    # CuPy resolves this lazily through ``import cupy``, which is the emulation once installed
    _REAL_GENERATOR = _real_cupy.random.Generator
except ImportError:  # pragma: no cover - the test extra installs CuPy
    _real_cupy = _real_cupyx = _real_nvrtc = _REAL_GENERATOR = None

STATS = {"to_device": 0, "to_host": 0, "syncs": 0, "launches": 0, "kernels": 0, "compiles": 0,
         "cublas": 0}  # fmt: skip
# "launches": generated kernels (RawKernel); "cublas": cuBLAS calls; "kernels": every call that
# runs device work (those, ufuncs, products, reductions, copies, gathers, scatters), an estimate
# of what a GPU launches (views and allocations are free; CuPy may launch more than one kernel
# for some calls)
_VIEWS = {
    "empty", "empty_like", "reshape", "transpose", "expand_dims", "squeeze", "broadcast_to",
    "swapaxes", "moveaxis", "view", "shape", "ndim", "size", "result_type", "get_array_module",
}  # fmt: skip
# where each copy or synchronisation happened: (kind, the innermost lines of symgraph or of a
# generated program); for failure messages
EVENTS: list[tuple[str, str]] = []
_UNSUPPORTED = "Unsupported type {}"
_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


def reset_stats() -> None:
    for k in STATS:
        STATS[k] = 0
    EVENTS.clear()


def _count(kind: str) -> None:
    STATS[kind] += 1
    if kind in ("to_device", "to_host", "syncs"):
        frames = [
            f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.line or ''}".strip()
            for f in traceback.extract_stack()[:-2]
            if "symgraph" in f.filename and "emulated_cupy" not in f.filename
        ]
        EVENTS.append((kind, " <- ".join(reversed(frames[-3:]))))


def events(kind: str) -> str:
    """The places of the recorded events of ``kind``, one per line, most frequent first."""
    from collections import Counter

    counts = Counter(where for k, where in EVENTS if k == kind)
    return "\n".join(f"{n} x {where}" for where, n in counts.most_common())


def _has(real: Any, name: str) -> bool:
    return real is None or hasattr(real, name)


# -- arrays ---------------------------------------------------------------------------------


class ndarray(np.lib.mixins.NDArrayOperatorsMixin):  # noqa: N801 - CuPy's name
    """A device array: a NumPy array behind a wall that only explicit copies cross."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]
    __module__ = "cupy"  # as CuPy's (code finds the array's module by this name)

    def __init__(self, shape: Any, dtype: Any = float, order: str = "C") -> None:
        self._a = np.empty(shape, dtype, order=order)

    # NumPy's protocols: computing with NumPy functions on device arrays stays on the device
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _ufunc(ufunc)._apply(method, inputs, kwargs)

    def __array_function__(self, func: Callable, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        sub = func.__module__.removeprefix("numpy").lstrip(".").split(".")[0]
        real = getattr(_real_cupy, sub, None) if sub and sub not in ("_core", "lib") else _real_cupy
        if real is not None and not hasattr(real, name):
            raise TypeError(f"CuPy has no {func.__module__}.{name}: it cannot run on the device")
        _check_call(getattr(real, name, None), name, args, kwargs)
        if name not in _VIEWS:
            _count("kernels")
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # attributes that read metadata only
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(self._a.mT))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))

    @property
    def data(self) -> Any:  # CuPy's MemoryPointer: the device address, for cuBLAS
        import emulated_cuda

        return emulated_cuda.DevicePointer(self._a)

    @property
    def __cuda_array_interface__(self) -> dict:  # how libraries recognise device arrays
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self._a.ctypes.data, False),
            "strides": None if self._a.flags.c_contiguous else self.strides,
            "version": 3,
        }

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __repr__(self) -> str:
        return f"emulated_cupy.ndarray({np.array2string(self._a)}, dtype={self.dtype})"

    __str__ = __repr__

    # reads that copy to the host (and synchronise on a GPU)
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        _count("to_host")
        _count("syncs")
        return np.array(self._a, order=order)

    def _sync_read(self, fn: Callable) -> Any:
        _count("syncs")
        return fn(self._a)

    def __float__(self) -> float:
        return self._sync_read(float)

    def __int__(self) -> int:
        return self._sync_read(int)

    def __bool__(self) -> bool:
        return self._sync_read(bool)

    def __index__(self) -> int:
        return self._sync_read(lambda a: a.__index__())

    def __complex__(self) -> complex:
        return self._sync_read(complex)

    def item(self, *args: Any) -> Any:
        return self._sync_read(lambda a: a.item(*args))

    def tolist(self) -> Any:
        return self._sync_read(lambda a: a.tolist())

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        _count("to_device")
        self._a[...] = arr

    def __copy__(self) -> ndarray:
        return _wrap(self._a.copy())

    def __deepcopy__(self, memo: Any) -> ndarray:
        return _wrap(self._a.copy())

    def __getitem__(self, key: Any) -> Any:
        index = _index(key)
        if any(isinstance(k, np.ndarray) for k in (index if isinstance(index, tuple) else [index])):
            _count("kernels")  # a gather; basic indexing is a view
        result = self._a[index]
        if isinstance(result, np.generic):  # CuPy gives a 0-d view (writable into the array)
            result = self._a[(*(index if isinstance(index, tuple) else (index,)), Ellipsis)]
        return _wrap(result)

    def __setitem__(self, key: Any, value: Any) -> None:
        _count("kernels")  # a copy or a fill
        self._a[_index(key)] = _unwrap(value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or not _has(getattr(_real_cupy, "ndarray", None), name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args: Any, **kwargs: Any) -> Any:
            if name not in _VIEWS and name not in ("item", "tolist"):
                _count("kernels")
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

        return method


def _wrap(x: Any) -> Any:
    """NumPy results as device arrays; a NumPy scalar becomes a 0-d array, as in CuPy."""
    if isinstance(x, np.ndarray):
        obj = ndarray.__new__(ndarray)
        obj._a = x
        return obj
    if isinstance(x, np.generic):
        return _wrap(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x: Any) -> Any:
    """Device arrays to their NumPy storage; a host NumPy array is refused, as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(_UNSUPPORTED.format(type(x)))
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _index(key: Any) -> Any:
    """CuPy copies NumPy (and list) index arrays to the device; device indices stay."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, (np.ndarray, list)):
        _count("to_device")
        return np.asarray(key)
    return key


# -- ufuncs ---------------------------------------------------------------------------------


class _Ufunc:
    """A NumPy ufunc with CuPy's argument rules (device arrays and scalars only)."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc
        self._real = getattr(_real_cupy, ufunc.__name__, None) if _real_cupy else None
        if _real_cupy is not None and self._real is None:
            raise AttributeError(f"module 'cupy' has no attribute {ufunc.__name__!r}")
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply("__call__", args, kwargs)

    def _apply(self, method: str, args: Any, kwargs: Any) -> Any:
        if method != "__call__" and not _has(self._real, method):
            raise AttributeError(f"cupy.{self.__name__} has no method {method!r}")
        _count("kernels")
        raw = []
        for a in args:
            if isinstance(a, (list, tuple)) and method == "__call__":
                raise TypeError(_UNSUPPORTED.format(type(a)))
            raw.append(_unwrap(a))
        out = kwargs.get("out")
        if out is not None:
            outs = out if isinstance(out, tuple) else (out,)
            if not all(isinstance(o, ndarray) for o in outs):
                raise TypeError(f"out must be a cupy.ndarray, not {[type(o) for o in outs]}")
            kwargs = {**kwargs, "out": tuple(o._a for o in outs)}
        result = getattr(self._ufunc, method)(*raw, **kwargs)
        if out is not None:
            return out[0] if isinstance(out, tuple) and len(out) == 1 else out
        return _wrap(result)

    def __getattr__(self, name: str) -> Any:
        if name in ("at", "reduce", "reduceat", "accumulate", "outer"):
            if not _has(self._real, name):
                raise AttributeError(f"cupy.{self.__name__} has no method {name!r}")
            return lambda *args, **kwargs: self._apply(name, args, kwargs)
        raise AttributeError(name)


_UFUNCS: dict[str, _Ufunc] = {}


def _ufunc(u: np.ufunc) -> _Ufunc:
    w = _UFUNCS.get(u.__name__)
    if w is None:
        w = _UFUNCS[u.__name__] = _Ufunc(u)
    return w


# -- module functions -----------------------------------------------------------------------


def asarray(a: Any, dtype: Any = None, order: Any = None, **kwargs: Any) -> ndarray:
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else _wrap(a._a.astype(dtype))
    _count("to_device")
    return _wrap(np.array(a, dtype=dtype, order=order or "K"))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", **kw: Any) -> ndarray:
    if isinstance(obj, ndarray):
        return _wrap(np.array(obj._a, dtype=dtype, copy=copy, order=order))
    _count("to_device")
    return _wrap(np.array(obj, dtype=dtype, order=order))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
    return a.get(order=order) if isinstance(a, ndarray) else np.asarray(a, order=order)


def get_array_module(*args: Any) -> Any:
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


def is_available() -> bool:
    return True


_SIGNATURES: dict[int, Any] = {}


def _check_call(real: Any, name: str, args: Any, kwargs: Any) -> None:
    """Raise the TypeError CuPy would for arguments its function does not take (when CuPy's
    function has a signature to check against: most Python-level ones do)."""
    if real is None:
        return
    sig = _SIGNATURES.get(id(real), False)
    if sig is False:
        try:
            sig = inspect.signature(real)
        except (TypeError, ValueError):
            sig = None
        _SIGNATURES[id(real)] = sig
    if sig is not None:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"cupy.{name}{sig} does not take these arguments: {e}") from None


def _function(name: str, fn: Callable) -> Callable:
    real = getattr(_real_cupy, name, None)

    def device_function(*args: Any, **kwargs: Any) -> Any:
        _check_call(real, name, args, kwargs)
        if name not in _VIEWS:
            _count("kernels")
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))

    device_function.__name__ = name
    return device_function


def _module_getattr(module: types.ModuleType, real: Any, numpy_ns: Any, prefix: str):
    def getattr_(name: str) -> Any:
        if name.startswith("__") or (real is not None and not hasattr(real, name)):
            raise AttributeError(f"module {prefix!r} has no attribute {name!r}")
        value = getattr(numpy_ns, name)
        if isinstance(value, np.ufunc):
            return _ufunc(value)
        if isinstance(value, type) or not callable(value):
            return value  # dtypes, scalar types, constants are NumPy's in CuPy too
        wrapped = _function(name, value)
        setattr(module, name, wrapped)
        return wrapped

    return getattr_


# -- random ---------------------------------------------------------------------------------


class Generator:
    """``cupy.random.Generator``: NumPy's bit stream (not CuPy's), CuPy's method list."""

    def __init__(self, seed: Any = None) -> None:
        self._gen = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        if not _has(_REAL_GENERATOR, name):
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        method = getattr(self._gen, name)
        return lambda *args, **kwargs: _wrap(np.asarray(method(*_unwrap(args), **kwargs)))


def _default_rng(seed: Any = None) -> Generator:
    return Generator(seed)


# -- assembling the modules -----------------------------------------------------------------


def _build() -> dict[str, types.ModuleType]:
    import emulated_cuda

    this = sys.modules[__name__]
    cupy = types.ModuleType("cupy", "CuPy emulated on the CPU (tests/gpu/emulated_cupy.py)")
    for name in ("ndarray", "asarray", "array", "asnumpy", "get_array_module", "is_available"):
        setattr(cupy, name, getattr(this, name))
    cupy.RawKernel = emulated_cuda.RawKernel
    # CuPy's NVRTC binding (used as is: it needs no device) loads its library through this
    cupy._environment = getattr(_real_cupy, "_environment", None)
    cupy.__version__ = "emulated-" + getattr(_real_cupy, "__version__", "none")
    cupy.__getattr__ = _module_getattr(cupy, _real_cupy, np, "cupy")

    random = types.ModuleType("cupy.random")
    random.default_rng = _default_rng
    random.Generator = Generator
    cupy.random = random

    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = emulated_cuda.Device
    cuda.runtime = emulated_cuda.Runtime()
    cuda.nvrtc = _real_nvrtc if _real_nvrtc is not None else emulated_cuda.NvrtcVersion()
    cuda.CUDARuntimeError = emulated_cuda.CUDARuntimeError
    cuda.cublas = emulated_cuda.Cublas()
    cuda.device = types.ModuleType("cupy.cuda.device")
    cuda.device.get_cublas_handle = emulated_cuda.get_cublas_handle
    cupy.cuda = cuda

    cupyx = types.ModuleType("cupyx", "cupyx emulated on the CPU")

    def scatter_add(a: ndarray, slices: Any, value: Any) -> None:
        if not isinstance(a, ndarray):
            raise TypeError(_UNSUPPORTED.format(type(a)))
        _count("kernels")
        np.add.at(a._a, _index(slices), _unwrap(value))

    cupyx.scatter_add = scatter_add
    mods = {"cupy": cupy, "cupy.random": random, "cupy.cuda": cuda, "cupyx": cupyx}
    if _real_nvrtc is not None:
        mods["cupy.cuda.nvrtc"] = _real_nvrtc
    return mods


_MODULES: dict[str, types.ModuleType] | None = None
_SAVED: dict[str, Any] = {}


def installed() -> bool:
    """Whether ``import cupy`` gives the emulation now."""
    return _MODULES is not None and sys.modules.get("cupy") is _MODULES["cupy"]


def install() -> types.ModuleType:
    """Make ``import cupy``/``import cupyx`` give the emulation and forget any earlier device
    probe. Returns the emulated ``cupy``; :func:`uninstall` restores what was there."""
    global _MODULES
    if _MODULES is None:
        _MODULES = _build()
    for name in _MODULES:
        if name not in _SAVED:
            _SAVED[name] = sys.modules.get(name)
    sys.modules.update(_MODULES)
    _forget_backend()
    return _MODULES["cupy"]


def uninstall() -> None:
    for name, module in _SAVED.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    _SAVED.clear()
    _forget_backend()


def _forget_backend() -> None:
    import symgraph.backends.cupy as backend

    backend._probe_result = None
    backend._backend = None
