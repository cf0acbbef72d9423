"""``shared()``: copy semantics of get_value/set_value, borrow=True aliasing, type checks."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T


@pytest.mark.host_memory
def test_shared_copies_its_initial_value_unless_borrowed():
    data = np.arange(4, dtype="float32")
    s = sg.shared(data, name="s")
    data[0] = 100
    assert s.get_value()[0] == 0
    b = sg.shared(data, name="b", borrow=True)
    data[1] = 200
    assert b.get_value(borrow=True) is data and b.get_value()[1] == 200


@pytest.mark.host_memory
def test_get_value_copies_by_default_and_borrow_aliases():
    s = sg.shared(np.zeros(3, "float64"), name="s")
    v = s.get_value()
    v[0] = 5
    assert s.get_value()[0] == 0
    alias = s.get_value(borrow=True)
    alias[0] = 7
    assert s.get_value()[0] == 7


@pytest.mark.host_memory
def test_set_value_copies_by_default_and_borrow_aliases():
    s = sg.shared(np.zeros(3, "float32"), name="s")
    new = np.ones(3, "float32")
    s.set_value(new)
    new[0] = 9
    assert s.get_value()[0] == 1
    s.set_value(new, borrow=True)
    new[1] = 42
    assert s.get_value()[1] == 42
    s.set_value(np.arange(5, dtype="float32"))  # any length: the static shape is open
    assert s.get_value().shape == (5,)


def test_set_value_checks_dtype_and_ndim_naming_the_variable():
    s = sg.shared(np.zeros((2, 2), "float32"), name="weights")
    with pytest.raises(TypeError, match=r"'weights'.*2 dimension.*shape \(4,\)"):
        s.set_value(np.zeros(4, "float32"))
    with pytest.raises(TypeError, match=r"'weights'.*dtype float32, got float64"):
        s.set_value(np.zeros((2, 2)))
    s.set_value([[1.0, 2.0], [3.0, 4.0]])  # Python floats are accepted for a float variable
    assert s.get_value().dtype == np.float32
    i = sg.shared(np.zeros(2, "int32"), name="ids")
    with pytest.raises(TypeError, match="'ids'"):
        i.set_value(np.array([1.5, 2.0]))


def test_shared_dtypes_and_scalars():
    assert sg.shared(1.5).dtype == sg.config.floatX
    assert sg.shared(np.float64(1.5)).dtype == "float64"
    assert sg.shared(3).dtype == "int64"
    assert sg.shared(np.int32(3)).dtype == "int32"
    assert sg.shared(np.zeros((2, 3), "int8")).type.shape == (None, None)
    assert sg.shared(np.zeros((1, 3)), broadcastable=(True, False)).type.shape == (1, None)
    s = sg.shared(np.float32(2.0), name="scalar")
    assert s.ndim == 0 and s.get_value().shape == () and isinstance(s.get_value(), np.ndarray)
    with pytest.raises(TypeError, match="object array"):
        sg.shared(np.array([object()]), name="bad")


@pytest.mark.host_memory
def test_functions_see_new_values_and_updates():
    s = sg.shared(np.ones(3, "float32"), name="s")
    f = sg.function([], s * 2)
    np.testing.assert_array_equal(f(), [2, 2, 2])
    s.set_value(np.full(3, 5, "float32"))
    np.testing.assert_array_equal(f(), [10, 10, 10])
    copied = s.get_value()
    borrowed = s.get_value(borrow=True)
    step = sg.function([], [], updates=[(s, s + 1)])
    step()
    np.testing.assert_array_equal(copied, [5, 5, 5])  # a copy never changes
    np.testing.assert_array_equal(s.get_value(), [6, 6, 6])
    # as in Theano, a borrowed array may be updated in place (here it is: no new allocation)
    assert borrowed is s.get_value(borrow=True)
    np.testing.assert_array_equal(borrowed, [6, 6, 6])


def test_outputs_never_alias_shared_state():
    s = sg.shared(np.arange(4, dtype="float64"), name="s")
    outs = sg.function([], [s, s[1:], s.T, s.reshape((2, 2))])()
    for o in outs:
        o[...] = -1
    np.testing.assert_array_equal(s.get_value(), [0, 1, 2, 3])


def test_outputs_never_alias_inputs():
    x = T.dvector("x")
    xv = np.arange(3.0)
    outs = sg.function([x], [x, x[::-1], x.dimshuffle("x", 0)])(xv)
    for o in outs:
        o[...] = -1
    np.testing.assert_array_equal(xv, [0, 1, 2])


def test_shared_variable_in_graph_with_givens_replacement():
    s = sg.shared(np.ones(2, "float32"), name="s")
    x = T.vector("x")
    f = sg.function([x], s * 3, givens={s: x})
    np.testing.assert_array_equal(f(np.array([1, 2], "float32")), [3, 6])
    with pytest.raises(TypeError, match="cannot be replaced"):
        sg.function([], s, givens={s: T.matrix()})


@pytest.mark.host_memory
def test_update_to_another_shared_value_or_input_does_not_alias():
    a = sg.shared(np.zeros(2, "float64"), name="a")
    b = sg.shared(np.ones(2, "float64"), name="b")
    x = T.dvector("x")
    sg.function([x], [], updates=[(a, b), (b, x[::-1])])(xv := np.array([3.0, 4.0]))
    a.get_value(borrow=True)[0] = 10
    b.get_value(borrow=True)[0] = 20
    np.testing.assert_array_equal(xv, [3, 4])
    np.testing.assert_array_equal(a.get_value(), [10, 1])
    np.testing.assert_array_equal(b.get_value(), [20, 3])
