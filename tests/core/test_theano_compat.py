"""Theano programs run unchanged with ``import symgraph as theano; import symgraph.tensor as T``
(examples in the style of the Theano 1.0 tutorial and the deeplearning.net code)."""

from __future__ import annotations

import numpy as np

import symgraph as theano
import symgraph.tensor as T


def test_tutorial_basics():
    x = T.dmatrix("x")
    s = 1 / (1 + T.exp(-x))
    logistic = theano.function([x], s)
    xv = np.array([[0, 1], [-1, -2]], dtype="float64")
    np.testing.assert_allclose(logistic(xv), 1 / (1 + np.exp(-xv)), rtol=1e-12)

    a, b = T.dmatrices("a", "b")
    diff = a - b
    abs_diff = abs(diff)
    diff_squared = diff**2
    f = theano.function([a, b], [diff, abs_diff, diff_squared])
    av, bv = np.array([[1, 1], [1, 1]], "float64"), np.array([[0, 1], [2, 3]], "float64")
    got = f(av, bv)
    for g, w in zip(got, [av - bv, np.abs(av - bv), (av - bv) ** 2]):
        np.testing.assert_array_equal(g, w)

    y = T.dscalar("y")
    z = T.dscalar("z")
    g = theano.function([y, theano.In(z, value=1.0)], y + z)
    assert float(g(33)) == 34.0 and float(g(33, 2)) == 35.0
    assert float((y + z).eval({y: 1.0, z: 2.5})) == 3.5


def test_tutorial_shared_state_and_givens():
    state = theano.shared(0)
    inc = T.iscalar("inc")
    accumulator = theano.function([inc], state, updates=[(state, state + inc)])
    assert int(accumulator(1)) == 0 and int(state.get_value()) == 1
    accumulator(300)
    assert int(state.get_value()) == 301
    state.set_value(-1)
    accumulator(3)
    assert int(state.get_value()) == 2

    fn_of_state = state * 2 + inc
    foo = T.scalar(dtype=state.dtype)
    skip_shared = theano.function([inc, foo], fn_of_state, givens=[(state, foo)])
    assert int(skip_shared(1, 3)) == 7
    assert int(state.get_value()) == 2  # unchanged


def test_tutorial_gradients():
    x = T.dscalar("x")
    y = x**2
    gy = T.grad(y, x)
    f = theano.function([x], gy)
    assert float(f(4)) == 8.0

    m = T.dmatrix("m")
    s = T.sum(1 / (1 + T.exp(-m)))
    gs = T.grad(s, m)
    dlogistic = theano.function([m], gs)
    mv = np.array([[0, 1], [-1, -2]], "float64")
    sig = 1 / (1 + np.exp(-mv))
    np.testing.assert_allclose(dlogistic(mv), sig * (1 - sig), rtol=1e-12)
    T.verify_grad(lambda v: T.tanh(v).sum(), [mv], rng=np.random.RandomState(0))


class LogisticRegression:
    """deeplearning.net's class, verbatim but for the data."""

    def __init__(self, input, n_in, n_out):
        self.W = theano.shared(
            value=np.zeros((n_in, n_out), dtype=theano.config.floatX), name="W", borrow=True
        )
        self.b = theano.shared(
            value=np.zeros((n_out,), dtype=theano.config.floatX), name="b", borrow=True
        )
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=1)
        self.params = [self.W, self.b]
        self.input = input

    def negative_log_likelihood(self, y):
        return -T.mean(T.log(self.p_y_given_x)[T.arange(y.shape[0]), y])

    def errors(self, y):
        if y.ndim != self.y_pred.ndim:
            raise TypeError("y should have the same shape as self.y_pred")
        if y.dtype.startswith("int"):
            return T.mean(T.neq(self.y_pred, y))
        raise NotImplementedError()


def test_deeplearning_net_logistic_regression():
    rng = np.random.RandomState(1234)
    n, n_in, n_out, batch_size = 400, 6, 3, 20
    centers = rng.normal(0, 3, (n_out, n_in))
    labels = rng.randint(0, n_out, n)
    data = centers[labels] + rng.normal(0, 1, (n, n_in))
    train_set_x = theano.shared(np.asarray(data, dtype=theano.config.floatX), borrow=True)
    train_set_y = T.cast(theano.shared(np.asarray(labels, dtype=theano.config.floatX)), "int32")

    index = T.lscalar()
    x = T.matrix("x")
    y = T.ivector("y")
    classifier = LogisticRegression(input=x, n_in=n_in, n_out=n_out)
    cost = classifier.negative_log_likelihood(y)
    g_W = T.grad(cost=cost, wrt=classifier.W)
    g_b = T.grad(cost=cost, wrt=classifier.b)
    learning_rate = 0.13
    updates = [
        (classifier.W, classifier.W - learning_rate * g_W),
        (classifier.b, classifier.b - learning_rate * g_b),
    ]
    train_model = theano.function(
        inputs=[index],
        outputs=cost,
        updates=updates,
        givens={
            x: train_set_x[index * batch_size : (index + 1) * batch_size],
            y: train_set_y[index * batch_size : (index + 1) * batch_size],
        },
    )
    validate_model = theano.function(
        inputs=[],
        outputs=classifier.errors(y),
        givens={x: train_set_x, y: train_set_y},
    )
    for _epoch in range(5):
        for minibatch_index in range(n // batch_size):
            train_model(minibatch_index)
    assert float(validate_model()) < 0.05
    assert classifier.W.get_value().dtype == theano.config.floatX


def test_methods_and_properties_theano_code_reaches_for():
    x = T.matrix("x")
    v = T.ivector("v")
    xv = np.arange(6, dtype="float32").reshape(2, 3)
    vv = np.array([2, 1], "int32")
    outs = [
        x.sum(),
        x.sum(axis=1),
        x.T,
        x.shape[0],
        x.dimshuffle(1, "x", 0),
        T.cast(x, "int32"),
        T.argmax(x, axis=1),
        x.argmax(axis=-1),
        T.eq(T.argmax(x, axis=1), v),
        T.mean(T.neq(T.argmax(x, axis=1), v)),
        x.mean(axis=0),
        x.max(),
        x.reshape((3, 2)),
        x.flatten(),
        x[:, v],
        x.norm(2),
        x.astype("float64"),
    ]
    got = theano.function([x, v], outs)(xv, vv)
    want = [
        xv.sum(),
        xv.sum(axis=1),
        xv.T,
        2,
        xv.T[:, None, :],
        xv.astype("int32"),
        xv.argmax(axis=1),
        xv.argmax(axis=-1),
        xv.argmax(axis=1) == vv,
        np.mean(xv.argmax(axis=1) != vv),
        xv.mean(axis=0),
        xv.max(),
        xv.reshape(3, 2),
        xv.flatten(),
        xv[:, vv],
        np.sqrt((xv**2).sum()),
        xv.astype("float64"),
    ]
    for o, g, w in zip(outs, got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
        assert g.shape == np.shape(w) and o.dtype == g.dtype
    assert x.ndim == 2 and x.dtype == "float32" and x.broadcastable == (False, False)
    assert T.row().broadcastable == (True, False)


def test_theano_names_that_are_aliases():
    assert theano.config.floatX in ("float32", "float64")
    assert T.nnet.nnet.sigmoid is T.nnet.sigmoid
    x = T.fvector("x")
    y = T.addbroadcast(x.dimshuffle("x", 0), 0)
    f = theano.function([x], [T.patternbroadcast(y, (True, False)), T.fill(x, 3.0), T.inv(x)])
    got = f(np.array([1, 2], "float32"))
    np.testing.assert_array_equal(got[0], [[1, 2]])
    np.testing.assert_array_equal(got[1], [3, 3])
    np.testing.assert_array_equal(got[2], [1, 0.5])
    text = theano.printing.debugprint(y * 2, file="str")
    assert "DimShuffle" in text or "mul" in text


def test_tensor_with_theano_broadcastable_flags():
    x = T.tensor("float32", (False, True), name="x")
    assert x.type.shape == (None, 1) and x.broadcastable == (False, True)
    y = T.tensor(dtype="int32", broadcastable=(False,))
    assert y.type.shape == (None,) and y.dtype == "int32"
    f = theano.function([x], x * 2)
    np.testing.assert_array_equal(f(np.ones((3, 1), "float32")), np.full((3, 1), 2))
