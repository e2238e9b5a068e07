"""Sequential.backward(dscores, input_grad=True): dL/dX, checked by finite differences."""
import numpy as np
import pytest

import fastnn as fnn


def numeric_input_gradient(objective, X, coords, h=1e-6):
    grad = np.zeros(len(coords))
    flat = X.reshape(-1)
    for k, i in enumerate(coords):
        old = flat[i]
        flat[i] = old + h
        plus = objective(X)
        flat[i] = old - h
        minus = objective(X)
        flat[i] = old
        grad[k] = (plus - minus) / (2 * h)
    return grad


MODELS = {
    "dense-tanh": lambda: [fnn.Dense(7, 9, activation="tanh"), fnn.Dense(9, 4)],
    "activation-first": lambda: [fnn.Sigmoid(), fnn.Dense(7, 5, activation="elu"),
                                 fnn.Dense(5, 4)],
    "batchnorm-prelu": lambda: [fnn.Dense(7, 6), fnn.BatchNorm(6), fnn.PReLU(6),
                                fnn.Dense(6, 4)],
    "batchnorm-first": lambda: [fnn.BatchNorm(7), fnn.Dense(7, 4, activation="tanh"),
                                fnn.Dense(4, 4)],
    "maxout-dropout": lambda: [fnn.Maxout(7, 6, pieces=3), fnn.Dropout(0.3),
                               fnn.Dense(6, 4)],
    "dropout-first": lambda: [fnn.Dropout(0.25), fnn.Dense(7, 8, activation="tanh"),
                              fnn.Dense(8, 4)],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_input_gradient_matches_finite_differences(name, rng):
    model = fnn.Sequential(*MODELS[name](), dtype="float64", seed=3)
    X = rng.standard_normal((6, 7))
    y = rng.integers(0, 4, 6)
    dropouts = [layer for layer in model.layers if isinstance(layer, fnn.Dropout)]

    def objective(X):
        for layer in dropouts:  # replay the same masks
            layer.step = 0
        loss, _ = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
        return loss

    objective(X)
    for layer in dropouts:
        layer.step = 0
    _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
    model.zero_grad()
    dX = model.backward(dscores, input_grad=True)
    assert dX.shape == X.shape and dX.dtype == np.float64
    assert np.abs(dX).max() > 0
    coords = rng.choice(X.size, size=20, replace=False)
    numeric = numeric_input_gradient(objective, X.copy(), coords)
    np.testing.assert_allclose(dX.reshape(-1)[coords], numeric, rtol=1e-5, atol=1e-9)


def test_input_gradient_of_a_class_score_is_the_first_weights_for_a_linear_model(rng):
    # score_c = X @ W[:, c] + b_c, so d score_c / dX = W[:, c] for every row: a saliency map.
    model = fnn.Sequential(fnn.Dense(5, 3), dtype="float64", seed=0)
    X = rng.standard_normal((4, 5))
    model.forward(X)
    dscores = np.zeros((4, 3))
    dscores[:, 2] = 1.0
    dX = model.backward(dscores, input_grad=True)
    np.testing.assert_allclose(dX, np.tile(model.layers[0].W.data[:, 2], (4, 1)), rtol=1e-12)


def test_backward_returns_none_by_default_and_a_fresh_array_when_asked(rng):
    model = fnn.Sequential(fnn.Dense(5, 6, activation="relu"), fnn.Dense(6, 3), seed=0)
    X = rng.standard_normal((4, 5)).astype(np.float32)
    model.forward(X, training=True)
    assert model.backward(np.ones((4, 3), np.float32)) is None
    model.zero_grad()
    first = model.backward(np.ones((4, 3), np.float32), input_grad=True)
    assert first.dtype == np.float32 and first.shape == (4, 5)
    kept = first.copy()
    model.forward(rng.standard_normal((4, 5)), training=True)
    second = model.backward(2 * np.ones((4, 3), np.float32), input_grad=True)
    np.testing.assert_array_equal(first, kept)  # not overwritten by the next backward
    assert not np.shares_memory(first, second)


def test_input_gradient_leaves_parameter_gradients_as_without_it(rng):
    model = fnn.Sequential(fnn.Dense(5, 6, activation="tanh"), fnn.Dense(6, 3),
                           dtype="float64", seed=0)
    X = rng.standard_normal((4, 5))
    dscores = rng.standard_normal((4, 3))
    model.forward(X, training=True)
    model.zero_grad()
    model.backward(dscores)
    plain = [p.grad.copy() for p in model.parameters()]
    model.forward(X, training=True)
    model.zero_grad()
    model.backward(dscores, input_grad=True)
    for p, g in zip(model.parameters(), plain):
        np.testing.assert_array_equal(p.grad, g)


def test_input_grad_must_be_a_boolean(rng):
    model = fnn.Sequential(fnn.Dense(5, 3), seed=0)
    model.forward(rng.standard_normal((2, 5)), training=True)
    with pytest.raises(TypeError, match="input_grad must be True or False"):
        model.backward(np.ones((2, 3), np.float32), input_grad="yes")
