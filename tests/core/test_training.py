"""Classic Theano programs: logistic regression and a 2-layer MLP trained by SGD through
``function(..., updates=...)``, minibatches sliced from shared data with ``givens``."""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T


def blobs(n=600, dim=5, classes=3, seed=0):
    """Gaussian clusters, separable enough for a linear model (float32 features, int32 labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, dim))
    y = rng.integers(0, classes, n).astype("int32")
    x = (centers[y] + rng.normal(0, 1, (n, dim))).astype("float32")
    return x, y


def rings(n=600, seed=1):
    """Two concentric rings: not linearly separable, a hidden layer is needed."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype("int32")
    radius = np.where(y == 1, 2.0, 0.7) + rng.normal(0, 0.15, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype("float32")
    return x, y


def test_logistic_regression_with_givens_minibatches():
    data_x, data_y = blobs()
    n, dim = data_x.shape
    classes, bs = 3, 50
    shared_x = sg.shared(data_x, name="data_x")
    shared_y = sg.shared(data_y, name="data_y")
    W = sg.shared(np.zeros((dim, classes), "float32"), name="W")
    b = sg.shared(np.zeros(classes, "float32"), name="b")

    x, y = T.matrix("x"), T.ivector("y")
    p_y = T.nnet.softmax(T.dot(x, W) + b)
    cost = -T.mean(T.log(p_y)[T.arange(y.shape[0]), y])
    errors = T.mean(T.neq(T.argmax(p_y, axis=1), y))
    gW, gb = T.grad(cost, [W, b])
    lr = np.float32(0.1)

    index = T.iscalar("index")
    batch = slice(index * bs, (index + 1) * bs)
    train = sg.function(
        [index],
        cost,
        updates=[(W, W - lr * gW), (b, b - lr * gb)],
        givens={x: shared_x[batch], y: shared_y[batch]},
    )
    evaluate = sg.function([], errors, givens={x: shared_x, y: shared_y})

    first = float(evaluate())
    for _epoch in range(10):
        for i in range(n // bs):
            c = train(i)
    assert c.dtype == np.float32 and W.get_value().dtype == np.float32
    assert np.isfinite(c)
    err = float(evaluate())
    assert err < 0.05 < first, (first, err)

    # the model's own prediction agrees with a NumPy forward pass using the learnt weights
    logits = data_x @ W.get_value() + b.get_value()
    np.testing.assert_allclose(err, np.mean(logits.argmax(1) != data_y), atol=1e-7)


def test_two_layer_mlp_learns_rings():
    data_x, data_y = rings()
    rng = np.random.default_rng(2)
    hidden = 16
    W1 = sg.shared((rng.standard_normal((2, hidden)) * 0.5).astype("float32"), name="W1")
    b1 = sg.shared(np.zeros(hidden, "float32"), name="b1")
    W2 = sg.shared((rng.standard_normal((hidden, 2)) * 0.5).astype("float32"), name="W2")
    b2 = sg.shared(np.zeros(2, "float32"), name="b2")
    params = [W1, b1, W2, b2]

    x, y = T.matrix("x"), T.ivector("y")
    lr = T.scalar("lr")
    h = T.tanh(x.dot(W1) + b1)
    p = T.nnet.softmax(h.dot(W2) + b2)
    cost = T.mean(T.nnet.categorical_crossentropy(p, y))
    grads = T.grad(cost, params)
    train = sg.function([x, y, lr], cost, updates=[(w, w - lr * g) for w, g in zip(params, grads)])
    predict = sg.function([x], T.argmax(p, axis=1))

    costs = []
    for _epoch in range(150):
        for i in range(0, len(data_x), 100):
            costs.append(float(train(data_x[i : i + 100], data_y[i : i + 100], 0.5)))
    accuracy = np.mean(predict(data_x) == data_y)
    assert accuracy > 0.95, accuracy
    assert costs[-1] < costs[0] / 5


def test_updates_use_old_values_and_apply_together():
    # Theano semantics: every update expression sees the values from before the call
    a = sg.shared(np.float64(1.0), name="a")
    b = sg.shared(np.float64(10.0), name="b")
    step = sg.function([], [a, b], updates=[(a, b), (b, a + b)])
    out_a, out_b = step()
    assert (float(out_a), float(out_b)) == (1.0, 10.0)
    assert (float(a.get_value()), float(b.get_value())) == (10.0, 11.0)
    step()
    assert (float(a.get_value()), float(b.get_value())) == (11.0, 21.0)


def test_updates_as_dict_and_counter():
    count = sg.shared(np.int32(0), name="count")
    inc = sg.function([], [], updates={count: count + 1})
    for _ in range(5):
        inc()
    assert int(count.get_value()) == 5 and count.get_value().dtype == np.int32
