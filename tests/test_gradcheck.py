"""fastnn.gradcheck: verdicts on correct models and layers, on deliberately broken backward passes,
kink detection and warnings, argument errors, and its helpers (numerical_gradient,
relative_error). Runs once per backend: the models under check use the active backend's kernels."""
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn.gradient_check import GradcheckResult, gradcheck, numerical_gradient, relative_error

N, D, H, K = 8, 5, 7, 3


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D)), rng.integers(0, K, N)


def model(hidden="tanh", seed=0, **dense):
    return fnn.Sequential(fnn.Dense(D, H, activation=hidden, **dense), fnn.Dense(H, K),
                          dtype="float64", seed=seed)



def run_quietly(*args, **kwargs):
    """gradcheck with every warning turned into an error (no kink may be crossed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return gradcheck(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# Correct models and layers


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "identity"])
def test_smooth_models_are_good(data, hidden):
    X, y = data
    net = model(hidden)
    result = run_quietly(net, X, y, num_checks=20)
    assert result.verdict == "good" and result.ok
    assert result.has_kinks is False and result.kinks_crossed == []
    assert set(result.errors) == {"layer 0 Dense.W", "layer 0 Dense.b", "layer 1 Dense.W",
                                  "layer 1 Dense.b"}
    assert max(result.errors.values()) == result.max_error < 1e-7
    assert "verdict: good" in str(result)


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
def test_relu_models_have_kinks_and_pass(data, hidden):
    X, y = data
    result = run_quietly(model(hidden), X, y, num_checks=20)
    assert result.has_kinks is True
    assert result.verdict in ("good", "acceptable") and result.ok
    assert result.max_error < 1e-4


@pytest.mark.parametrize("loss", ["svm", "multiclass_hinge"])
def test_svm_loss_has_kinks_and_passes(data, loss):
    X, y = data
    result = run_quietly(model("tanh"), X, y, loss=loss, num_checks=20)
    assert result.has_kinks is True
    assert result.verdict in ("good", "acceptable") and result.ok


@pytest.mark.parametrize("loss,kinks", [("binary_logistic", False), ("binary_hinge", True)])
def test_binary_losses(data, loss, kinks):
    X, y = data
    net = fnn.Sequential(fnn.Dense(D, 4, activation="tanh"), fnn.Dense(4, 1), dtype="float64",
                         seed=1)
    result = run_quietly(net, X, y % 2, loss=loss, num_checks=20)
    assert result.has_kinks is kinks
    # (the verdict here: test_tiny_gradient_entries_do_not_make_a_correct_model_suspicious)
    assert result.max_error < 1e-6


def test_tiny_gradient_entries_do_not_make_a_correct_model_suspicious(data):
    X, y = data
    net = fnn.Sequential(fnn.Dense(D, 4, activation="tanh"), fnn.Dense(4, 1), dtype="float64",
                         seed=1)
    result = run_quietly(net, X, y % 2, loss="binary_logistic", num_checks=20)
    assert result.verdict == "good"


def test_mse_regression_model(data):
    X, _ = data
    targets = np.random.default_rng(1).standard_normal((N, K))
    result = run_quietly(model("tanh"), X, targets, loss="mse", num_checks=20)
    assert result.verdict == "good"


@pytest.mark.parametrize("act_layer", [fnn.ReLU, fnn.LeakyReLU, fnn.Tanh])
def test_models_with_standalone_activation_layers(data, act_layer):
    """Dense -> activation layer (fused by Sequential) and BatchNorm -> activation layer (not
    fused): kinks are tracked either way."""
    X, y = data
    kinks = act_layer is not fnn.Tanh
    for net in (fnn.Sequential(fnn.Dense(D, H), act_layer(), fnn.Dense(H, K), dtype="float64",
                               seed=0),
                fnn.Sequential(fnn.Dense(D, H), fnn.BatchNorm(H), act_layer(), fnn.Dense(H, K),
                               dtype="float64", seed=0)):
        result = run_quietly(net, X, y, num_checks=15)
        assert result.has_kinks is kinks
        assert result.ok and result.max_error < 1e-6
        assert not any(type(layer).__name__ in label for label in result.errors
                       for layer in net.layers if not layer.parameters())


def test_fnn_gradcheck_is_the_function():
    assert fnn.gradcheck is gradcheck


def test_batchnorm_model(data):
    X, y = data
    net = fnn.Sequential(fnn.Dense(D, H), fnn.BatchNorm(H), fnn.Dense(H, K, activation="tanh"),
                         dtype="float64", seed=0)
    result = run_quietly(net, X, y, num_checks=10)
    assert "layer 1 BatchNorm.gamma" in result.errors
    assert result.ok


@pytest.mark.parametrize("activation,kinks", [("tanh", False), ("sigmoid", False),
                                              ("relu", True)])
def test_single_dense_layer(data, activation, kinks):
    X, _ = data
    layer = fnn.Dense(D, 4, activation=activation, dtype="float64", seed=3)
    result = run_quietly(layer, X, num_checks=20)
    assert set(result.errors) == {"Dense.W", "Dense.b"}
    assert result.has_kinks is kinks
    assert result.ok
    if not kinks:
        assert result.verdict == "good"


def test_gradcheck_restores_the_parameters_and_is_reproducible(data):
    X, y = data
    net = model("relu")
    before = net.state_dict()
    scores = net.forward(X, training=False)
    first = run_quietly(net, X, y, num_checks=15, seed=7)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    np.testing.assert_array_equal(net.forward(X, training=False), scores)
    assert run_quietly(net, X, y, num_checks=15, seed=7).errors == first.errors


# ------------------------------------------------------------------------------------------------
# Broken backward passes


def break_backward(monkeypatch, layer, factor, which="W"):
    """Make `layer`'s backward scale its `which` gradient by `factor`."""
    original = layer.backward

    def broken(dA, need_dX=True):
        out = original(dA, need_dX)
        getattr(layer, which).grad *= factor
        return out

    monkeypatch.setattr(layer, "backward", broken)


@pytest.mark.parametrize("which", ["W", "b"])
def test_a_scaled_gradient_is_wrong(data, monkeypatch, which):
    X, y = data
    net = model("tanh")
    break_backward(monkeypatch, net.layers[0], 1.5, which)
    result = run_quietly(net, X, y, num_checks=20)
    assert result.verdict == "wrong" and not result.ok
    broken_label = f"layer 0 Dense.{which}"
    assert result.errors[broken_label] == pytest.approx(1 / 3, rel=1e-3)  # |1.5a - a| / 1.5|a|
    for label, error in result.errors.items():
        if label != broken_label:
            assert error < 1e-7, label


def test_a_broken_single_layer_is_wrong(data, monkeypatch):
    X, _ = data
    layer = fnn.Dense(D, 4, activation="sigmoid", dtype="float64", seed=3)
    break_backward(monkeypatch, layer, -1.0, "W")
    result = run_quietly(layer, X, num_checks=10)
    assert result.verdict == "wrong" and not result.ok
    assert result.errors["Dense.W"] == pytest.approx(2.0, rel=1e-4)
    assert result.errors["Dense.b"] < 1e-7


@pytest.mark.parametrize("hidden,factor,verdict", [
    ("tanh", 1 + 1e-3, "suspicious"),   # error ~1e-3
    ("tanh", 1 + 1e-5, "suspicious"),   # 1e-5 without kinks
    ("relu", 1 + 1e-5, "acceptable"),   # 1e-5 with kinks
    ("relu", 1 + 1e-3, "suspicious"),
    ("relu", 1.05, "wrong"),
])
def test_verdict_thresholds_on_slightly_wrong_gradients(data, monkeypatch, hidden, factor,
                                                        verdict):
    X, y = data
    net = model(hidden)
    break_backward(monkeypatch, net.layers[1], factor, "W")
    result = run_quietly(net, X, y, num_checks=20)
    assert result.errors["layer 1 Dense.W"] == pytest.approx((factor - 1) / factor, rel=1e-2)
    assert result.verdict == verdict
    assert result.ok is (verdict in ("good", "acceptable"))


@pytest.mark.parametrize("error,kinks,verdict", [
    (0.0, False, "good"), (9.9e-8, False, "good"), (1e-7, False, "suspicious"),
    (1e-7, True, "acceptable"), (9.9e-5, True, "acceptable"), (1e-4, True, "suspicious"),
    (5e-5, False, "suspicious"), (9.9e-3, True, "suspicious"), (1e-2, False, "wrong"),
    (1e-2, True, "wrong"), (0.5, True, "wrong"),
])
def test_judge_uses_the_notes_thresholds(error, kinks, verdict):
    assert GradcheckResult.judge(error, kinks) == verdict
    result = GradcheckResult({"a": error / 10, "b": error}, kinks, [])
    assert result.max_error == error and result.verdict == verdict


# ------------------------------------------------------------------------------------------------
# Kinks crossed


def kinked_model(X, activation="relu", alpha=None, standalone=False):
    """A relu-family model where sample 0's pre-activation of hidden unit 0 is h/2 = 5e-6: a
    perturbation of +-h of that unit's bias crosses the kink. standalone: the activation as a
    layer of its own after an identity Dense (which Sequential fuses into the Dense)."""
    if standalone:
        act_layer = {"relu": fnn.ReLU, "leaky_relu": fnn.LeakyReLU}[activation]()
        layers = [fnn.Dense(D, 4), act_layer, fnn.Dense(4, K)]
    else:
        layers = [fnn.Dense(D, 4, activation=activation, alpha=alpha), fnn.Dense(4, K)]
    net = fnn.Sequential(*layers, dtype="float64", seed=0)
    layer = net.layers[0]
    layer.b.data[0] = -(X[0] @ layer.W.data[:, 0]) + 5e-6
    pre = X @ layer.W.data + layer.b.data
    assert abs(pre[0, 0]) < 1e-5
    assert np.abs(pre.reshape(-1)[1:]).min() > 1e-3  # the only near-kink pre-activation
    return net


@pytest.mark.parametrize("standalone", [False, True], ids=["fused", "layer"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_crossing_a_kink_warns_and_lists_the_coordinate(data, activation, standalone):
    X, y = data
    net = kinked_model(X, activation, standalone=standalone)
    with pytest.warns(UserWarning, match="kink"):
        result = gradcheck(net, X, y, num_checks=100, h=1e-5)
    assert ("layer 0 Dense.b", 0) in result.kinks_crossed
    assert result.has_kinks
    # only coordinates that move sample 0's unit-0 pre-activation by more than 5e-6 can cross
    assert {label for label, _ in result.kinks_crossed} <= {"layer 0 Dense.W", "layer 0 Dense.b"}
    for label, index in result.kinks_crossed:
        if label == "layer 0 Dense.W":
            row, col = divmod(index, 4)
            assert col == 0 and abs(X[0, row]) * 1e-5 > 5e-6
    assert result.kinks_crossed == sorted(set(result.kinks_crossed))
    assert "kink crossings" in str(result)


def test_a_smaller_step_avoids_the_kink(data):
    X, y = data
    result = run_quietly(kinked_model(X), X, y, num_checks=100, h=1e-6)
    assert result.kinks_crossed == []
    assert result.ok


def test_warn_false_still_lists_the_crossing(data):
    X, y = data
    result = run_quietly(kinked_model(X), X, y, num_checks=100, warn=False)
    assert ("layer 0 Dense.b", 0) in result.kinks_crossed


def test_crossing_a_hinge_kink_of_the_svm_loss(data):
    X, y = data
    net = model("tanh")
    scores = net.forward(X, training=True)
    wrong = (y[0] + 1) % K
    # put sample 0's margin s_wrong - s_y + 1 at h/2 via the last layer's bias
    net.layers[1].b.data[wrong] -= scores[0, wrong] - scores[0, y[0]] + 1 - 5e-6
    with pytest.warns(UserWarning, match="kink"):
        result = gradcheck(net, X, y, loss="svm", num_checks=100)
    assert ("layer 1 Dense.b", int(wrong)) in result.kinks_crossed


def test_elu_with_alpha_other_than_one_is_a_kink(data):
    X, y = data
    net = kinked_model(X, "elu", alpha=0.3)
    with pytest.warns(UserWarning, match="kink"):
        result = gradcheck(net, X, y, num_checks=100)
    assert result.has_kinks
    assert ("layer 0 Dense.b", 0) in result.kinks_crossed


def test_models_with_dropout_are_checked_with_fixed_masks(data):
    X, y = data
    net = fnn.Sequential(fnn.Dense(D, H, activation="tanh"), fnn.Dropout(0.5), fnn.Dense(H, K),
                         dtype="float64", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = gradcheck(net, X, y, num_checks=10)
    assert result.verdict == "good", str(result)
    assert not caught


# ------------------------------------------------------------------------------------------------
# Errors


def test_float32_models_and_layers_are_rejected(data):
    X, y = data
    with pytest.raises(TypeError, match="float64"):
        gradcheck(fnn.Sequential(fnn.Dense(D, K), seed=0), X, y)  # float32 by default
    with pytest.raises(TypeError, match="float64"):
        gradcheck(fnn.Dense(D, K), X)


def test_a_model_without_parameters_is_rejected(data):
    X, _ = data
    with pytest.raises(ValueError, match="no parameters"):
        gradcheck(fnn.Dropout(0.5, dtype="float64"), X)


# ------------------------------------------------------------------------------------------------
# Helpers


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    df = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda z: z ** 3, x, df=df, h=1e-5)
    np.testing.assert_allclose(grad, 3 * x0 ** 2 * df, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(x, x0)  # restored
    partial = numerical_gradient(lambda z: np.sum(np.sin(z)), x, coords=[0, 5])
    assert np.isnan(partial).sum() == 10
    np.testing.assert_allclose(partial.reshape(-1)[[0, 5]], np.cos(x0.reshape(-1)[[0, 5]]),
                               rtol=1e-8)


def test_numerical_gradient_rejects_float32_and_non_contiguous_arrays():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(np.sum, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(np.sum, np.ones((3, 4))[:, :3])  # no flat view of it exists


def test_relative_error():
    a = np.array([1.0, -2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, -a) == 1.0
    assert relative_error(a, 1.1 * a) == pytest.approx(0.1 / 2.1, rel=1e-12)
    # entries where the numeric gradient is NaN (not checked) are ignored
    assert relative_error(np.array([1.0, 50.0]), np.array([1.0, np.nan])) == 0.0


def test_gradcheck_leaves_the_model_as_it_found_it(data):
    X, y = data
    net = fnn.Sequential(fnn.Dense(D, H), fnn.BatchNorm(H), fnn.ReLU(), fnn.Dropout(0.3),
                         fnn.Dense(H, K), dtype="float64", seed=0)
    before = net.state_dict()
    step = net.layers[3].step
    gradcheck(net, X, y, num_checks=5, warn=False)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert net.layers[3].step == step
