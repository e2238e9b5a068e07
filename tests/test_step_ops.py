"""Which layers the compiled step compiles: a layer joins the plan through its own _step_op
(fastnn._step), so a subclass that changes forward or backward, or a layer type without an op,
sends the model layer by layer, and a new layer type with an op joins the plan without any
change to fastnn._step."""
import numpy as np
import pytest

import fastnn as fnn

from test_compiled_step import assert_same_models, compiled_step_expected, reference_step


class DoubledReLU(fnn.ReLU):
    """Overrides forward: its outputs are not ReLU's, so ReLU's op must not stand for it."""

    def forward(self, X, training=False):
        return super().forward(X, training=training) * 2.0

    def backward(self, dA, need_dX=True):
        return super().backward(dA * 2.0, need_dX=need_dX)


class CountingDropout(fnn.Dropout):
    """Overrides backward only: the compiled step would skip it."""

    calls = 0

    def backward(self, dA, need_dX=True):
        CountingDropout.calls += 1
        return super().backward(dA, need_dX=need_dX)


class PlainReLU(fnn.ReLU):
    """Changes neither forward nor backward: ReLU's op is its op."""


class Scale(fnn.Layer):
    """A new layer type without a step op: A = 0.5 X."""

    def __init__(self, dtype="float32"):
        self.dtype = np.dtype(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        self.dtype = np.dtype(dtype)

    def config(self):
        return {}

    def forward(self, X, training=False):
        return self._check_input(X, self.dtype) * 0.5

    def backward(self, dA, need_dX=True):
        return dA * 0.5 if need_dX else None


class Tag(fnn.Layer):
    """A new layer type whose op is none at all: it passes its input through, and says so."""

    def reset_parameters(self, dtype="float32", rng=None):
        self.dtype = np.dtype(dtype)
        self.seen = None

    def config(self):
        return {}

    def forward(self, X, training=False):
        self.seen = X.shape
        return X

    def backward(self, dA, need_dX=True):
        return dA if need_dX else None

    def _step_held(self):
        return ()

    def _step_op(self, step, n, features, previous, need_dX):
        return None, previous, self._leave(seen=(n, features))


def pair(layers):
    fast = fnn.Sequential(*layers(), dtype="float64", seed=3)
    slow = fnn.Sequential(*layers(), dtype="float64", seed=3)
    return (fast, fnn.optim.SGD(fast.parameters(), lr=0.05, momentum=0.9), slow,
            fnn.optim.SGD(slow.parameters(), lr=0.05, momentum=0.9))


def train_both(layers, rng, steps=3):
    fast, fast_opt, slow, slow_opt = pair(layers)
    for _ in range(steps):
        X, y = rng.standard_normal((8, 7)), rng.integers(0, 5, 8)
        assert fast.train_step(X, y, "softmax_cross_entropy", fast_opt) == pytest.approx(
            reference_step(slow, X, y, fnn.losses.softmax_cross_entropy, slow_opt), rel=1e-12)
    assert_same_models(fast, slow, "float64")
    return fast


@pytest.mark.parametrize("layer", [DoubledReLU, CountingDropout])
def test_a_subclass_overriding_forward_or_backward_is_not_compiled(layer, backend, rng):
    make = (lambda: layer(0.3)) if layer is CountingDropout else (lambda: layer())
    before = CountingDropout.calls
    model = train_both(lambda: [fnn.Dense(7, 9, activation="tanh"), make(), fnn.Dense(9, 5)],
                       rng)
    assert model._compiled.plan is None
    if layer is CountingDropout:  # its own backward ran, in each of both models' steps
        assert CountingDropout.calls - before == 6


def test_a_subclass_doubling_relu_trains_as_its_own_passes_say(backend, rng):
    # The doubled layer's gradient is twice ReLU's: a step compiled with ReLU's op would differ.
    model = fnn.Sequential(fnn.Dense(7, 5), DoubledReLU(), dtype="float64", seed=0)
    X = rng.standard_normal((6, 7))
    _, scores = model.forward_backward(X, rng.integers(0, 5, 6), "softmax_cross_entropy")
    relu = np.maximum(X @ model.layers[0].W.data + model.layers[0].b.data, 0)
    np.testing.assert_allclose(scores, 2.0 * relu, rtol=1e-12)


def test_a_subclass_that_changes_nothing_is_compiled(backend, rng):
    model = train_both(lambda: [fnn.Dense(7, 9), fnn.BatchNorm(9), PlainReLU(),
                                fnn.Dense(9, 5)], rng)
    assert (model._compiled.plan is not None) == compiled_step_expected(backend)


def test_a_layer_type_without_a_step_op_goes_layer_by_layer(backend, rng):
    model = train_both(lambda: [fnn.Dense(7, 9, activation="relu"), Scale(),
                                fnn.Dense(9, 5)], rng)
    assert model._compiled.plan is None


def test_a_new_layer_type_with_a_step_op_joins_the_plan(backend, rng):
    model = train_both(lambda: [Tag(), fnn.Dense(7, 9, activation="relu"), Tag(),
                                fnn.Dense(9, 5)], rng)
    assert (model._compiled.plan is not None) == compiled_step_expected(backend)
    assert model.layers[0].seen == (8, 7) and model.layers[2].seen == (8, 9)


@pytest.mark.skipif(fnn._kernels.CYTHON is None, reason="the compiled backend is not built")
@pytest.mark.backend_independent
def test_each_op_class_lives_beside_its_layers_kernels():
    """The ops layers are handed (fastnn._kernels.STEP_OPS) are op.Op's subclasses, each from
    its layer's kernel module; the step module defines none."""
    from fastnn._kernels import op, step
    ops = vars(fnn._kernels.STEP_OPS)
    assert {name: cls.__module__ for name, cls in ops.items()} == {
        "DenseOp": "fastnn._kernels.dense", "ActivationOp": "fastnn._kernels.dense",
        "DropoutOp": "fastnn._kernels.dropout", "BatchNormOp": "fastnn._kernels.batchnorm"}
    assert all(issubclass(cls, op.Op) for cls in ops.values())
    assert not [v for v in vars(step).values() if isinstance(v, type) and issubclass(v, op.Op)]
