"""The registries: the layer types (fastnn.layers.LAYERS), the activation table
(fastnn._activations) and the loss table (fastnn.losses.SPECS) agree with what they describe."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _activations, losses
from fastnn.layers import LAYERS, Activation, activation_layers, register


def test_every_public_layer_is_registered():
    public = {name for name in fnn.__all__ if isinstance(getattr(fnn, name), type)
              and issubclass(getattr(fnn, name), fnn.Layer) and name != "Layer"}
    assert public == set(LAYERS)
    assert all(LAYERS[name] is getattr(fnn, name) for name in public)


def test_a_subclass_is_not_registered_and_a_second_name_is_refused():
    class MyReLU(fnn.ReLU):
        pass
    assert "MyReLU" not in LAYERS
    with pytest.raises(ValueError, match="registered already"):
        register(type("Dense", (fnn.Layer,), {}))
    assert LAYERS["Dense"] is fnn.Dense


def test_the_activation_layers_are_in_the_table():
    # (a table row needs no layer class of its own: Dense(activation=name) runs it)
    assert set(activation_layers()) <= set(_activations.SPECS)
    assert {"relu", "tanh", "sigmoid", "elu", "leaky_relu", "identity"} <= set(activation_layers())
    for name, cls in activation_layers().items():
        assert issubclass(cls, Activation) and cls.activation == name


def test_codes_are_distinct_and_what_the_kernels_take():
    codes = [spec.code for spec in _activations.TABLE]
    assert sorted(codes) == list(range(len(codes)))
    from fastnn._kernels._checks import activation_code
    for spec in _activations.TABLE:
        assert activation_code("k", spec.name, spec.alpha or 0.0)[0] == spec.code


@pytest.mark.parametrize("spec", _activations.TABLE, ids=lambda s: s.name)
def test_each_activation_row(spec, rng):
    layer = fnn.Dense(3, 4, activation=spec.name, seed=0)
    assert layer.init == spec.init
    assert layer.alpha == (spec.alpha if spec.alpha is not None else 0.0)
    X = rng.standard_normal((5, 3)).astype(np.float32)
    A = layer.forward(X, training=True)
    assert (layer.kink_pattern() is not None) == spec.kinks
    if spec.saturated is not None:
        low, high = spec.saturated
        big = fnn.Dense(3, 4, activation=spec.name, init=100.0, seed=0).forward(X)
        assert ((big < low) | (big > high)).mean() > 0.5 and ((A >= low) & (A <= high)).any()
    if spec.alpha_min is not None:
        bound, open_ = spec.alpha_min
        with pytest.raises(ValueError, match="alpha"):
            fnn.Dense(3, 4, activation=spec.name, alpha=bound - 1.0)
        if open_:
            with pytest.raises(ValueError, match="alpha"):
                fnn.Dense(3, 4, activation=spec.name, alpha=bound)
    else:
        with pytest.raises(ValueError, match="takes no alpha"):
            fnn.Dense(3, 4, activation=spec.name, alpha=0.5)


@pytest.mark.parametrize("name", sorted(losses.SPECS))
def test_each_loss_row(name, rng):
    spec = losses.SPECS[name]
    assert losses.get(name) is spec.function and losses.spec(name) is spec
    n, c = 7, 5
    if spec.kind == "multiclass":
        scores, y = np.zeros((n, c)), rng.integers(0, c, n)
    elif spec.kind == "binary":
        c = 2
        scores, y = np.zeros((n, 1)), np.where(rng.random(n) < 0.5, spec.negative_label, 1)
    else:
        scores, y = np.zeros((n, 1)), rng.standard_normal((n, 1))
        assert spec.initial_loss is None and spec.margins is None
        return
    value, _ = spec.function(scores, y)  # also: the negative label is one this loss takes
    assert value == pytest.approx(spec.initial_loss(c), rel=1e-12)
    assert fnn.sanity.expected_initial_loss(name, c) == spec.initial_loss(c)
    if spec.margins is not None:
        assert spec.margins(scores, y).all()  # all-zero scores sit inside every margin


def test_a_users_loss_has_no_spec():
    assert losses.spec(lambda s, y: (0.0, s)) is None
    with pytest.raises(ValueError, match="unknown loss"):
        losses.spec("nope")
