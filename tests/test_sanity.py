"""The notes' sanity checks (fastnn.sanity): chance-level initial loss per loss function,
regularization raises the loss, overfitting a tiny subset; none of them changes the model."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import sanity


def blobs(n=100, d=10, classes=5, seed=0):
    r = np.random.default_rng(seed)
    centers = np.random.default_rng(42).standard_normal((classes, d)) * 3
    y = r.integers(0, classes, n)
    return (centers[y] + r.standard_normal((n, d))).astype(np.float32), y


def model_with(init, d=10, classes=5, hidden=32, seed=0):
    return fnn.Sequential(fnn.Dense(d, hidden, activation="relu", init=init),
                          fnn.Dense(hidden, classes, init=init), seed=seed)


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


@pytest.mark.backend_independent
@pytest.mark.parametrize("loss, classes, expected", [
    ("softmax_cross_entropy", 10, math.log(10)), ("softmax_cross_entropy", 2, math.log(2)),
    ("svm", 10, 9.0), ("multiclass_hinge", 3, 2.0), (fnn.losses.svm, 4, 3.0),
    (fnn.losses.softmax_cross_entropy, 5, math.log(5)),
    ("binary_logistic", 2, math.log(2)), ("binary_hinge", 2, 1.0), ("mse", 3, None),
])
def test_expected_initial_loss(loss, classes, expected):
    assert sanity.expected_initial_loss(loss, classes) == expected


def test_initial_loss_of_a_small_init_softmax_model_is_ln_c():
    X, y = blobs()
    result = sanity.check_initial_loss(model_with("small"), X, y)
    assert result.passed and result.name == "initial loss"
    assert result.expected == math.log(5)
    assert result.value == pytest.approx(math.log(5), abs=0.01)
    assert repr(result).startswith("[ok] initial loss:")


def test_initial_loss_of_a_large_init_model_fails():
    X, y = blobs()
    result = sanity.check_initial_loss(model_with(5.0), X, y)
    assert not result.passed
    assert result.value > 2 * math.log(5)
    assert "large initial weights" in result.message
    assert repr(result).startswith("[FAIL] initial loss:")


@pytest.mark.parametrize("loss", ["svm", "multiclass_hinge", fnn.losses.svm])
def test_initial_loss_of_the_svm_is_c_minus_1(loss):
    X, y = blobs()
    result = sanity.check_initial_loss(model_with(1e-4), X, y, loss=loss)
    assert result.passed and result.expected == 4.0
    assert result.value == pytest.approx(4.0, abs=0.01)
    assert not sanity.check_initial_loss(model_with(5.0), X, y, loss=loss).passed


@pytest.mark.parametrize("loss, expected", [("binary_logistic", math.log(2)),
                                            ("binary_hinge", 1.0)])
def test_initial_loss_of_binary_losses(loss, expected):
    X, y = blobs(classes=2)
    result = sanity.check_initial_loss(model_with(1e-4, classes=1), X, y, loss=loss)
    assert result.passed and result.expected == expected
    assert result.value == pytest.approx(expected, abs=0.01)
    assert not sanity.check_initial_loss(model_with(5.0, classes=1), X, y, loss=loss).passed


def test_initial_loss_of_a_regression_has_no_chance_level():
    r = np.random.default_rng(0)
    X = r.standard_normal((30, 10)).astype(np.float32)
    Y = r.standard_normal((30, 2)).astype(np.float32)
    result = sanity.check_initial_loss(model_with("small", classes=2), X, Y, loss="mse")
    assert result.passed and result.expected is None
    assert result.value == pytest.approx(float(np.mean(Y ** 2)), rel=0.05)


def test_the_tolerance_is_relative():
    X, y = blobs()
    model = model_with("small")
    model.layers[1].b.data[0] = 1.0  # one class favoured: the loss moves off ln 5
    value = sanity.check_initial_loss(model, X, y).value
    off = abs(value - math.log(5)) / math.log(5)
    assert 0.01 < off
    assert sanity.check_initial_loss(model, X, y, tolerance=off * 1.01).passed
    assert not sanity.check_initial_loss(model, X, y, tolerance=off * 0.99).passed


def test_regularization_raises_the_loss():
    X, y = blobs()
    model = model_with("he")
    before = model.state_dict()
    penalty = fnn.regularization.L2(1e-2)
    result = sanity.check_regularization_raises_loss(model, X, y, penalty)
    data_loss, _ = fnn.losses.softmax_cross_entropy(model.forward(X, training=False), y)
    assert result.passed
    assert result.expected == pytest.approx(float(data_loss), rel=1e-6)
    assert result.value == pytest.approx(float(data_loss) + penalty.value(model), rel=1e-6)
    assert result.value > result.expected
    assert "L2(0.01)" in result.message
    assert_same_state(model.state_dict(), before)
    assert all(np.all(p.grad == 0) for p in model.parameters())  # value() only: no gradients


def test_a_zero_penalty_fails_the_regularization_check():
    X, y = blobs()
    result = sanity.check_regularization_raises_loss(model_with("he"), X, y,
                                                     fnn.regularization.L2(0.0))
    assert not result.passed and result.value == result.expected


def test_overfit_small_subset_reaches_full_accuracy_and_leaves_the_model():
    X, y = blobs()
    y = np.random.default_rng(7).integers(0, 5, len(y))  # even random labels can be memorized
    model = fnn.Sequential(fnn.Dense(10, 64, activation="relu"), fnn.BatchNorm(64),
                           fnn.Dropout(0.2), fnn.Dense(64, 5), seed=0)
    before = model.state_dict()
    scores = model.forward(X, training=False)
    result = sanity.check_overfit_small_subset(model, X, y)
    assert result.passed and result.value == 1.0 and result.expected == 1.0
    assert "on 20 samples" in result.message
    assert_same_state(model.state_dict(), before)  # BatchNorm statistics included
    assert all(np.all(p.grad == 0) for p in model.parameters())
    np.testing.assert_array_equal(model.forward(X, training=False), scores)


def test_overfit_fails_for_a_model_that_cannot_learn():
    """Inputs that are all zero: every sample gets the same scores, so a subset with several
    labels can never be fitted."""
    X, y = blobs()
    X = np.zeros_like(X)
    result = sanity.check_overfit_small_subset(model_with("he"), X, y)
    assert not result.passed and result.value < 1.0
    assert repr(result).startswith("[FAIL] overfit a small subset")


def test_overfit_a_regression_subset():
    r = np.random.default_rng(0)
    X = r.standard_normal((50, 10)).astype(np.float32)
    Y = r.standard_normal((50, 2)).astype(np.float32)
    model = model_with("he", classes=2, hidden=64)
    before = model.state_dict()
    result = sanity.check_overfit_small_subset(model, X, Y, loss="mse", iterations=500)
    assert result.passed and result.expected is None
    assert_same_state(model.state_dict(), before)


def test_overfit_uses_fewer_samples_when_there_are_fewer():
    X, y = blobs(n=8)
    result = sanity.check_overfit_small_subset(model_with("he"), X, y)
    assert result.passed and "on 8 samples" in result.message


def test_sanity_checks_returns_the_three_results():
    X, y = blobs()
    model = model_with("small")
    before = model.state_dict()
    results = sanity.sanity_checks(model, X, y, regularization=fnn.regularization.L2(1e-3))
    assert [r.name for r in results] == ["initial loss", "regularization raises the loss",
                                         "overfit a small subset"]
    assert all(isinstance(r, sanity.SanityResult) and r.passed for r in results)
    assert_same_state(model.state_dict(), before)
    without = sanity.sanity_checks(model, X, y)
    assert [r.name for r in without] == ["initial loss", "overfit a small subset"]
    large = sanity.sanity_checks(model_with(5.0), X, y)
    assert not large[0].passed
