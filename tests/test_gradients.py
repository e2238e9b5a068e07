"""Backward passes against centered-difference gradients, in float64, on the active backend.

Not backend_independent: conftest's autouse `backend` fixture runs each test once per backend, and
every kernel is called through fastnn._backend.kernels so that it is the active one's.
Inputs stay away from the activations' kinks (|pre-activation| > 1e-3, much larger than the
finite-difference step), where the derivative is not defined.
"""
import numpy as np
import pytest

import fastnn
from fastnn import _activations, _backend
from fastnn.gradient_check import numerical_gradient, relative_error

# Every row of the activation table, with alphas other than the defaults.
TEST_ALPHA = {"leaky_relu": 0.1, "elu": 1.3}
ACTIVATIONS = [(spec.name, TEST_ALPHA.get(spec.name, spec.alpha or 0.0))
               for spec in _activations.TABLE]
ACT_IDS = [a for a, _ in ACTIVATIONS]
TOLERANCE = 1e-7
KINK_MARGIN = 1e-3


def away_from_kinks(pre):
    """Push entries with |pre| <= 0.05 out to +-0.05 (well beyond KINK_MARGIN), keeping signs."""
    sign = np.where(pre < 0, -1.0, 1.0)
    return np.where(np.abs(pre) > 0.05, pre, sign * 0.05)


def check(analytic, numeric, nonzero=True):
    assert analytic.shape == numeric.shape
    assert np.all(np.isfinite(numeric))
    error = relative_error(analytic, numeric)
    assert error < TOLERANCE, f"relative error {error:.2e}"
    if nonzero:  # guard against a vacuous pass (relu may legitimately kill every unit)
        assert np.abs(numeric).max() > 1e-6


def test_active_backend_is_the_one_under_test(backend):
    assert fastnn.get_backend() == backend
    assert _backend.kernels.name == backend


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 33)], ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_bias_act_gradients(rng, act, alpha, shape):
    n, m = shape
    b = rng.standard_normal(m)
    pre = away_from_kinks(2 * rng.standard_normal((n, m)))
    Z = pre - b
    assert np.abs(Z + b).min() > KINK_MARGIN
    dA = rng.standard_normal((n, m))
    kernels = _backend.kernels

    def forward(_):
        return kernels.bias_act_forward(Z, b, activation=act, alpha=alpha)

    A = forward(None)
    dZ, db = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha, db=np.empty(m))
    check(dZ, numerical_gradient(forward, Z, dA), nonzero=act != "relu")
    check(db, numerical_gradient(forward, b, dA), nonzero=act != "relu")


def _dense_case(rng, n, k, m, act):
    """X, W, b with every pre-activation X @ W + b at least KINK_MARGIN from 0 (for relu & co)."""
    for _ in range(100):
        X = rng.standard_normal((n, k))
        W = rng.standard_normal((k, m)) / np.sqrt(k)
        b = 0.5 * rng.standard_normal(m)
        if act in ("identity", "sigmoid", "tanh") or np.abs(X @ W + b).min() > 10 * KINK_MARGIN:
            return X, W, b
    raise AssertionError("could not draw pre-activations away from 0")


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 5), (5, 4, 33), (2, 33, 3)], ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_gradients(rng, act, alpha, shape):
    n, k, m = shape
    X, W, b = _dense_case(rng, n, k, m, act)
    dA = rng.standard_normal((n, m))
    kernels = _backend.kernels

    def forward(_):
        return kernels.dense_forward(X, W, b, activation=act, alpha=alpha)

    A = forward(None).copy()
    dX, dW, db = kernels.dense_backward(dA, X, W, A, activation=act, alpha=alpha)
    check(dX, numerical_gradient(forward, X, dA), nonzero=act != "relu")
    check(dW, numerical_gradient(forward, W, dA), nonzero=act != "relu")
    check(db, numerical_gradient(forward, b, dA), nonzero=act != "relu")


@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_gradients_with_accumulate_and_aliased_dZ(rng, act, alpha):
    """The in-place variants compute the same gradients: accumulate onto zeros, dZ written into
    dA's own memory."""
    n, k, m = 4, 6, 5
    X, W, b = _dense_case(rng, n, k, m, act)
    dA = rng.standard_normal((n, m))
    kernels = _backend.kernels

    def forward(_):
        return kernels.dense_forward(X, W, b, activation=act, alpha=alpha)

    A = forward(None).copy()
    dW, db, dX = np.zeros((k, m)), np.zeros(m), np.empty((n, k))
    kernels.dense_backward(dA.copy(), X, W, A, activation=act, alpha=alpha, dW=dW, db=db,
                           dX=dX, accumulate=True)
    scratch = dA.copy()
    kernels.dense_backward(scratch, X, W, A, activation=act, alpha=alpha, dZ=scratch)
    check(dW, numerical_gradient(forward, W, dA))
    check(db, numerical_gradient(forward, b, dA))
    check(dX, numerical_gradient(forward, X, dA))


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("shape", [(1, 2), (4, 5), (3, 33)], ids=str)
def test_softmax_cross_entropy_gradient(rng, shape, scale):
    n, c = shape
    scores = scale * rng.standard_normal(shape)
    y = rng.integers(0, c, size=n)
    kernels = _backend.kernels
    loss, dscores = kernels.softmax_cross_entropy(scores, y)
    assert np.isfinite(loss)
    numeric = numerical_gradient(lambda s: kernels.softmax_cross_entropy(s, y)[0], scores)
    check(dscores, numeric)


def _loss(scores, y):
    return fastnn.losses.softmax_cross_entropy(scores, y)[0]


@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_layer_gradients(rng, act, alpha):
    n, k, m = 5, 6, 4
    layer = fastnn.Dense(k, m, activation=act, alpha=alpha if alpha else None, dtype="float64",
                         seed=3)
    assert layer.W.data.dtype == np.float64
    layer.b.data[...] = 0.3 * rng.standard_normal(m)
    for _ in range(100):
        X = rng.standard_normal((n, k))
        if np.abs(X @ layer.W.data + layer.b.data).min() > 10 * KINK_MARGIN:
            break
    else:
        raise AssertionError("could not draw pre-activations away from 0")
    y = rng.integers(0, m, size=n)

    scores = layer.forward(X, training=True)
    loss, dscores = fastnn.losses.softmax_cross_entropy(scores, y)
    layer.zero_grad()
    dX = layer.backward(dscores).copy()  # the layer reuses its dX buffer
    grads = {p.name: p.grad.copy() for p in layer.parameters()}

    f = lambda _: _loss(layer.forward(X, training=True), y)  # noqa: E731
    for p in layer.parameters():
        check(grads[p.name], numerical_gradient(f, p.data))
    check(dX, numerical_gradient(f, X))


MODELS = {
    "tanh-relu": [(5, 8, "tanh", None), (8, 7, "relu", None), (7, 3, "identity", None)],
    "elu-sigmoid": [(5, 6, "elu", 0.8), (6, 6, "sigmoid", None), (6, 4, "identity", None)],
    "leaky_relu": [(5, 9, "leaky_relu", 0.05), (9, 3, "tanh", None)],
    "single": [(5, 3, "relu", None)],
}


def _sequential(spec, rng, n):
    """A float64 model and a batch whose relu-family pre-activations stay away from 0."""
    for seed in range(200):
        model = fastnn.Sequential(
            [fastnn.Dense(i, o, activation=a, alpha=al, dtype="float64") for i, o, a, al in spec],
            dtype="float64", seed=seed)
        for layer in model.layers:
            layer.b.data[...] = 0.2 * rng.standard_normal(layer.out_features)
        X = rng.standard_normal((n, spec[0][0]))
        h, ok = X, True
        for layer in model.layers:
            pre = h @ layer.W.data + layer.b.data
            if layer.activation in ("relu", "leaky_relu", "elu"):
                ok = ok and np.abs(pre).min() > 10 * KINK_MARGIN
            h = layer.forward(h)
        if ok:
            return model, X
    raise AssertionError("could not draw a model away from the kinks")


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=list(MODELS))
def test_sequential_parameter_gradients(rng, spec):
    n = 6
    model, X = _sequential(spec, rng, n)
    assert all(p.dtype == np.float64 for p in model.parameters())
    y = rng.integers(0, model.out_features, size=n)

    scores = model.forward(X, training=True)
    loss, dscores = fastnn.losses.softmax_cross_entropy(scores, y)
    model.zero_grad()
    model.backward(dscores)
    grads = [p.grad.copy() for p in model.parameters()]

    f = lambda _: _loss(model.forward(X, training=True), y)  # noqa: E731
    assert f(None) == pytest.approx(loss, rel=1e-12)
    for p, analytic in zip(model.parameters(), grads):
        check(analytic, numerical_gradient(f, p.data))

    # Without zero_grad, a second backward accumulates: every gradient doubles.
    model.forward(X, training=True)
    model.backward(dscores)
    for p, analytic in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, 2 * analytic, rtol=1e-12, atol=1e-15)
    # zero_grad then backward gives the single gradient again.
    model.zero_grad()
    model.forward(X, training=True)
    model.backward(dscores)
    for p, analytic in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, analytic, rtol=1e-12, atol=1e-15)
