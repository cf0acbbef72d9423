"""The emulated CuPy refuses what CuPy refuses (otherwise the emulated suite would pass code that
fails on a GPU) and counts what crosses between host and device."""

from __future__ import annotations

import emulated_cupy
import numpy as np
import pytest

from symgraph import codegen as cg


@pytest.fixture
def cp(device):
    import cupy

    return cupy


def test_host_arrays_are_refused_as_operands_and_device_arrays_never_convert_implicitly(cp):
    a = cp.asarray(np.arange(3.0))
    bad_uses = [
        lambda: a + np.ones(3),
        lambda: cp.add(a, np.zeros(())),
        lambda: cp.concatenate([a, np.ones(3)]),
        lambda: a.__setitem__(0, np.ones(())),
    ]
    for bad in bad_uses:
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            bad()
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    assert float(a.sum()) == 3.0 and type(a.sum()) is cp.ndarray  # 0-d device arrays, as CuPy
    assert type(a + np.float64(1)) is cp.ndarray  # NumPy scalars are fine


def test_only_what_the_installed_cupy_has_exists(cp):
    with pytest.raises(AttributeError):
        cp.nanquantile  # noqa: B018 - NumPy has it, CuPy does not
    with pytest.raises(AttributeError):
        cp.random.default_rng(0).normal  # noqa: B018 - CuPy's Generator has no normal()
    with pytest.raises(TypeError, match="does not take these arguments"):
        cp.take_along_axis(cp.zeros((2, 2)), cp.zeros((2, 1), "int64"))  # axis is required


def test_kernel_arguments_must_have_the_parameter_types(cp):
    plan = cg.plan_launch((4,), [(4,), ()], [(1,), "value"])
    ks = cg.render_kernel(cg.single(cg.S.SCALAR_OPS["mul"], ["float32", "float32"]),
                          plan.layouts, 0, {}, plan.index_type, "scale")  # fmt: skip
    kernel = cp.RawKernel(ks.source, ks.name)
    x, out = cp.asarray(np.arange(4, dtype="float32")), cp.empty(4, "float32")
    kernel((1,), (32,), (x, np.float32(2), out, np.int64(4)))
    np.testing.assert_array_equal(out.get(), [0, 2, 4, 6])
    with pytest.raises(TypeError, match="float64 scalar"):  # garbage on a GPU
        kernel((1,), (32,), (x, 2.0, out, np.int64(4)))
    with pytest.raises(TypeError, match="float64 array"):
        kernel((1,), (32,), (cp.asarray(np.arange(4.0)), np.float32(2), out, np.int64(4)))
    with pytest.raises(TypeError, match="expects a device array"):
        kernel((1,), (32,), (np.arange(4, dtype="float32"), np.float32(2), out, np.int64(4)))


def test_copies_and_synchronisations_are_counted(cp):
    emulated_cupy.reset_stats()
    a = cp.asarray(np.ones(3))
    b = (a * 2).sum()
    assert emulated_cupy.STATS["to_device"] == 1 and emulated_cupy.STATS["syncs"] == 0
    a.get(), float(b), bool(b > 0)
    assert emulated_cupy.STATS["to_host"] == 1 and emulated_cupy.STATS["syncs"] == 3


def test_integer_indexing_gives_a_writable_zero_d_view_as_in_cupy(cp):
    a = cp.zeros(3)
    row = a[1]
    assert type(row) is cp.ndarray and row.shape == ()
    cp.add(row, 5.0, out=row)  # a loop writes a scalar state into its buffer row like this
    np.testing.assert_array_equal(a.get(), [0, 5, 0])
