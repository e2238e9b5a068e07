"""Standalone activation layers (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Identity) and their fusion
into a preceding identity Dense by Sequential. Every test runs once per backend."""
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn.gradient_check import numerical_gradient, relative_error
from fastnn.layers import fused_activations


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# (layer factory, Dense activation name, alpha, float64 formula)
LAYERS = {
    "identity": (lambda: fnn.Identity(), "identity", 0.0, lambda x: x),
    "relu": (lambda: fnn.ReLU(), "relu", 0.0, lambda x: np.maximum(x, 0.0)),
    "leaky_relu": (lambda: fnn.LeakyReLU(), "leaky_relu", 0.01,
                   lambda x: np.where(x > 0, x, 0.01 * x)),
    "leaky_relu_0.2": (lambda: fnn.LeakyReLU(0.2), "leaky_relu", 0.2,
                       lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda: fnn.ELU(), "elu", 1.0, lambda x: np.where(x > 0, x, np.expm1(x))),
    "elu_0.5": (lambda: fnn.ELU(alpha=0.5), "elu", 0.5,
                lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "sigmoid": (lambda: fnn.Sigmoid(), "sigmoid", 0.0, _sigmoid),
    "tanh": (lambda: fnn.Tanh(), "tanh", 0.0, np.tanh),
}
NAMES = sorted(LAYERS)
KINKED = {"relu", "leaky_relu", "leaky_relu_0.2"}
SMOOTH = {"identity", "sigmoid", "tanh"}  # (elu is C1 only for alpha = 1; not asserted either way)


def away_from_zero(rng, shape, low=0.1, high=3.0):
    """Inputs of both signs with |x| in [low, high]: no kink within a finite-difference step."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


# ------------------------------------------------------------------------------------------------
# Standalone layers


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_the_formula(rng, name):
    make, _, _, formula = LAYERS[name]
    X = 3 * rng.standard_normal((7, 33))
    X[0, :5] = [0.0, -0.0, 1e-8, -1e-8, -30.0]
    layer = make()
    layer.reset_parameters("float64")
    got = layer(X)
    assert got.shape == X.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, formula(X), rtol=1e-12, atol=1e-15)
    # float32 (the default dtype): the formula rounded to float32
    layer32 = make()
    assert layer32.dtype == np.float32
    got32 = layer32(X)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, formula(X.astype(np.float32).astype(np.float64)),
                               rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_centered_differences(rng, name):
    make, _, _, _ = LAYERS[name]
    layer = make()
    layer.reset_parameters("float64")
    X = away_from_zero(rng, (6, 5))
    df = rng.standard_normal((6, 5))
    layer(X)
    dX = layer.backward(df)
    numeric = numerical_gradient(lambda x: layer(x), X, df)
    assert relative_error(dX, numeric) < 1e-7
    assert dX.shape == X.shape and dX.dtype == np.float64
    assert layer.backward(df, need_dX=False) is None


@pytest.mark.parametrize("name", ["relu", "leaky_relu_0.2"])
def test_backward_at_zero_takes_the_left_slope(name):
    # the kernels' convention at the kink: x > 0 is the positive side
    make, _, alpha, _ = LAYERS[name]
    layer = make()
    layer.reset_parameters("float64")
    layer(np.array([[0.0, 2.0, -2.0]]))
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 5.0, 5.0]])),
                                  [[5.0 * alpha, 5.0, 5.0 * alpha]])


def test_activation_layers_accept_any_width_and_keep_shapes(rng):
    layer = fnn.Tanh()
    for d in (1, 7, 1000, 3):
        X = rng.standard_normal((4, d))
        np.testing.assert_allclose(layer(X), np.tanh(X), rtol=2e-6, atol=1e-7)
        assert layer.backward(np.ones((4, d))).shape == (4, d)
    with pytest.raises(ValueError, match="shape"):
        layer.backward(np.ones((4, 2)))  # not the last forward's shape
    with pytest.raises(RuntimeError, match="before forward"):
        fnn.ReLU().backward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        fnn.ReLU()(np.ones(3))


@pytest.mark.parametrize("cls,bad", [(fnn.LeakyReLU, -0.1), (fnn.LeakyReLU, float("nan")),
                                     (fnn.ELU, 0.0), (fnn.ELU, -1.0), (fnn.ELU, float("nan"))])
def test_invalid_alpha_is_rejected(cls, bad):
    with pytest.raises(ValueError, match="alpha"):
        cls(bad)
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha=bad)


def test_valid_alphas_and_defaults():
    assert fnn.LeakyReLU().alpha == 0.01 and fnn.ELU().alpha == 1.0
    assert fnn.LeakyReLU(0).alpha == 0.0 and fnn.LeakyReLU(2.5).alpha == 2.5
    assert fnn.ELU(1e-3).alpha == 1e-3
    layer = fnn.LeakyReLU(0)  # alpha 0 is plain relu
    X = np.array([[-3.0, 2.0]])
    np.testing.assert_array_equal(layer(X), [[0.0, 2.0]])
    with pytest.raises(TypeError, match="alpha"):  # a wrong type: TypeError
        fnn.LeakyReLU("steep")


# ------------------------------------------------------------------------------------------------
# Fusion into a preceding identity Dense


def _pair(name, seed=3, dtype="float64", init="xavier"):
    """(Dense -> activation layer -> Dense, the same with the activation fused by hand)."""
    make, act, alpha, _ = LAYERS[name]
    kw = {} if init is None else {"init": init}
    layered = fnn.Sequential(fnn.Dense(5, 8, **kw), make(), fnn.Dense(8, 3), dtype=dtype,
                             seed=seed)
    fused = fnn.Sequential(fnn.Dense(5, 8, activation=act, alpha=alpha, **kw), fnn.Dense(8, 3),
                           dtype=dtype, seed=seed)
    return layered, fused


def _run(model, X, y):
    scores = model.forward(X, training=True)
    loss, dscores = fnn.losses.softmax_cross_entropy(scores, y)
    model.zero_grad()
    model.backward(dscores)
    return scores, loss, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_fused_layer_gives_bitwise_the_same_model(rng, name, dtype):
    layered, fused = _pair(name, dtype=dtype)
    _, act, alpha, _ = LAYERS[name]
    assert fused_activations(layered.layers) == {0: (act, alpha)}
    assert layered.layers[0].activation == "identity"  # its own setting is unchanged
    for p, q in zip(layered.parameters(), fused.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    X = rng.standard_normal((16, 5))
    y = rng.integers(0, 3, 16)
    s1, l1, g1 = _run(layered, X, y)
    s2, l2, g2 = _run(fused, X, y)
    assert s1.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(s1, s2)
    assert l1 == l2
    assert len(g1) == len(g2) == 4
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    # and it is the activation applied, not skipped
    _, _, _, formula = LAYERS[name]
    Z = X @ layered.layers[0].W.data.astype(np.float64) + layered.layers[0].b.data
    hidden = formula(Z)
    want = hidden @ layered.layers[2].W.data.astype(np.float64) + layered.layers[2].b.data
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(s1, want, rtol=tol, atol=tol)
    # predictions and inference agree too
    np.testing.assert_array_equal(layered.predict(X), fused.predict(X))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh"])
def test_fused_kinks_are_reported_by_the_dense(rng, name):
    layered, fused = _pair(name)
    X = rng.standard_normal((4, 5))
    layered(X)
    fused(X)
    assert layered.layers[1].kink_pattern() is None  # passes through: no kink of its own
    a, b = layered.layers[0].kink_pattern(), fused.layers[0].kink_pattern()
    if name == "tanh":
        assert a is None and b is None
    else:
        np.testing.assert_array_equal(a, b)
        assert a.shape == (4, 8)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_fused_layer_with_default_init_gives_the_same_model(rng, name):
    layered, fused = _pair(name, init=None)
    X = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(layered.layers[0].W.data, fused.layers[0].W.data)
    np.testing.assert_array_equal(layered(X), fused(X))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "identity"])
def test_default_init_agrees_where_the_default_is_the_same(rng, name):
    layered, fused = _pair(name, init=None)
    X = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(layered(X), fused(X))


def _quiet_gradcheck(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fnn.gradcheck(model, X, y, num_checks=10)


@pytest.mark.parametrize("name", ["relu", "leaky_relu_0.2", "elu", "sigmoid", "tanh"])
def test_activation_after_batchnorm_is_not_fused(rng, name):
    make, _, _, formula = LAYERS[name]
    net = fnn.Sequential(fnn.Dense(5, 8), fnn.BatchNorm(8), make(), fnn.Dense(8, 3),
                         dtype="float64", seed=0)
    assert fused_activations(net.layers) == {}
    assert net.layers[0].epilogue == ("identity", 0.0)
    X = rng.standard_normal((12, 5))
    y = rng.integers(0, 3, 12)
    scores = net.forward(X, training=False)
    dense0, bn, dense1 = net.layers[0], net.layers[1], net.layers[3]
    Z = X @ dense0.W.data + dense0.b.data
    normalized = (Z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.gamma.data \
        + bn.beta.data
    want = formula(normalized) @ dense1.W.data + dense1.b.data
    np.testing.assert_allclose(scores, want, rtol=1e-10, atol=1e-12)
    result = _quiet_gradcheck(net, X, y)
    assert result.verdict in ("good", "acceptable"), str(result)
    if name in KINKED or name in SMOOTH:
        assert result.has_kinks == (name in KINKED)


@pytest.mark.parametrize("name", ["relu", "elu", "sigmoid", "tanh"])
def test_activation_first_in_the_model_is_not_fused(rng, name):
    make, _, _, formula = LAYERS[name]
    net = fnn.Sequential(make(), fnn.Dense(5, 3), dtype="float64", seed=0)
    assert fused_activations(net.layers) == {}
    assert net.in_features == 5
    X = away_from_zero(rng, (10, 5))
    y = rng.integers(0, 3, 10)
    dense = net.layers[1]
    np.testing.assert_allclose(net(X), formula(X) @ dense.W.data + dense.b.data, rtol=1e-12,
                               atol=1e-14)
    result = _quiet_gradcheck(net, X, y)
    assert result.verdict in ("good", "acceptable"), str(result)


@pytest.mark.parametrize("first,second", [("relu", "tanh"), ("tanh", "sigmoid"),
                                          ("elu", "leaky_relu_0.2"), ("relu", "relu")])
def test_activation_after_another_activation_is_not_fused(rng, first, second):
    make1, act1, alpha1, f1 = LAYERS[first]
    make2, _, _, f2 = LAYERS[second]
    net = fnn.Sequential(fnn.Dense(5, 8), make1(), make2(), fnn.Dense(8, 3), dtype="float64",
                         seed=1)
    assert fused_activations(net.layers) == {0: (act1, alpha1)}
    X = rng.standard_normal((10, 5))
    y = rng.integers(0, 3, 10)
    d0, d1 = net.layers[0], net.layers[3]
    want = f2(f1(X @ d0.W.data + d0.b.data)) @ d1.W.data + d1.b.data
    np.testing.assert_allclose(net(X), want, rtol=1e-12, atol=1e-14)
    result = _quiet_gradcheck(net, X, y)
    assert result.verdict in ("good", "acceptable"), str(result)


@pytest.mark.parametrize("own,layer_name", [("tanh", "sigmoid"), ("relu", "elu"),
                                            ("sigmoid", "relu"), ("leaky_relu", "tanh")])
def test_dense_with_its_own_activation_is_not_fused(rng, own, layer_name):
    make, _, _, f_layer = LAYERS[layer_name]
    f_own = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0), "sigmoid": _sigmoid,
             "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x)}[own]
    net = fnn.Sequential(fnn.Dense(5, 8, activation=own), make(), fnn.Dense(8, 3),
                         dtype="float64", seed=2)
    assert fused_activations(net.layers) == {}
    assert net.layers[0].epilogue == (own, net.layers[0].alpha)
    X = rng.standard_normal((10, 5))
    y = rng.integers(0, 3, 10)
    d0, d1 = net.layers[0], net.layers[2]
    want = f_layer(f_own(X @ d0.W.data + d0.b.data)) @ d1.W.data + d1.b.data  # both apply
    np.testing.assert_allclose(net(X), want, rtol=1e-12, atol=1e-14)
    result = _quiet_gradcheck(net, X, y)
    assert result.verdict in ("good", "acceptable"), str(result)


def test_fused_models_pass_gradcheck(rng):
    X = rng.standard_normal((10, 5))
    y = rng.integers(0, 3, 10)
    for name in ("relu", "leaky_relu_0.2", "elu", "sigmoid", "tanh"):
        layered, _ = _pair(name)
        result = _quiet_gradcheck(layered, X, y)
        assert result.verdict in ("good", "acceptable"), f"{name}: {result}"
        if name in KINKED or name in SMOOTH:
            assert result.has_kinks == (name in KINKED)


def test_fused_model_trains_like_the_fused_dense(rng):
    layered, fused = _pair("relu", dtype="float32", seed=4)
    X = rng.standard_normal((32, 5))
    y = rng.integers(0, 3, 32)
    optimizers = [fnn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (layered, fused)]
    for _ in range(5):
        for model, opt in zip((layered, fused), optimizers):
            _run(model, X, y)
            opt.step()
    for p, q in zip(layered.parameters(), fused.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(layered.parameters()[0].data,
                              _pair("relu", dtype="float32", seed=4)[0].parameters()[0].data)


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_fusion_leaves_the_layers_as_they_are(rng, name):
    # The model decides to run the activation inside the Dense; the layer objects keep what they
    # are: the activation layer used alone still applies its activation, the Dense moved into
    # another model computes its own (identity) activation.
    make, act, _, formula = LAYERS[name]
    dense, layer = fnn.Dense(5, 4), make()
    net = fnn.Sequential(dense, layer, dtype="float64", seed=0)
    X = rng.standard_normal((6, 5))
    net(X)
    Z = rng.standard_normal((3, 4))
    np.testing.assert_allclose(layer.forward(Z), formula(Z), rtol=1e-12, atol=1e-14)
    assert dense.activation == "identity"
    other = fnn.Sequential(dense, fnn.Dense(4, 2), dtype="float64", seed=1)
    d0, d1 = other.layers
    np.testing.assert_allclose(other(X), (X @ d0.W.data + d0.b.data) @ d1.W.data + d1.b.data,
                               rtol=1e-12, atol=1e-14)
