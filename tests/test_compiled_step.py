"""The compiled training step (fastnn._step, fastnn._kernels.step): Sequential.train_step on the
compiled backend runs forward, loss and backward in one call and must give the numbers of the
explicit layer-by-layer sequence, leave every layer as its own passes would, rebuild its plan when
what it holds changes, and leave models it cannot compile to the layer-by-layer path."""
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _step

from conftest import require_compiled


def models():
    return {
        "dense_activations": lambda: [
            fnn.Dense(7, 33, activation="relu"), fnn.Dense(33, 20, activation="leaky_relu"),
            fnn.Dense(20, 11, activation="elu", alpha=0.7),
            fnn.Dense(11, 9, activation="sigmoid"), fnn.Dense(9, 8, activation="tanh"),
            fnn.Dense(8, 5)],
        "activation_layers": lambda: [
            fnn.Dense(7, 33), fnn.LeakyReLU(0.2), fnn.Tanh(), fnn.Dense(33, 5), fnn.ELU()],
        "batchnorm_dropout": lambda: [
            fnn.Dense(7, 33), fnn.BatchNorm(33), fnn.ReLU(), fnn.Dropout(0.3), fnn.Dense(33, 5)],
        "pass_through_first": lambda: [fnn.Dropout(0.0), fnn.Dense(7, 5, activation="relu")],
        "starts_with_batchnorm": lambda: [
            fnn.BatchNorm(7), fnn.Dense(7, 20, activation="relu"), fnn.Dropout(0.5),
            fnn.Dense(20, 5)],
        "batchnorm_activation_first": lambda: [
            fnn.BatchNorm(7), fnn.Tanh(), fnn.Dropout(0.2), fnn.Dense(7, 5)],
        "batchnorm_activation_no_dropout": lambda: [
            fnn.Dense(7, 300), fnn.BatchNorm(300), fnn.LeakyReLU(0.1), fnn.Dense(300, 9),
            fnn.BatchNorm(9), fnn.ELU(), fnn.Dense(9, 5)],
    }


OPTIMIZERS = {
    "sgd": lambda params: fnn.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=1e-4),
    "adam": lambda params: fnn.optim.Adam(params, lr=1e-2),
}
TOLERANCE = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


def compiled_step_expected(backend):
    return backend == "cython" and _step.step_module() is not None


def pair(layers, dtype, optimizer="sgd"):
    """Two identical models and their optimizers."""
    fast = fnn.Sequential(*layers(), dtype=dtype, seed=3)
    slow = fnn.Sequential(*layers(), dtype=dtype, seed=3)
    make = OPTIMIZERS[optimizer]
    return fast, make(fast.parameters()), slow, make(slow.parameters())


def reference_step(model, X, y, loss, optimizer):
    """The layer-by-layer step that train_step stands for."""
    value, dscores = loss(model.forward(X, training=True), y)
    model.zero_grad()
    model.backward(dscores)
    optimizer.step()
    return value


def assert_same_models(fast, slow, dtype):
    for key, value in slow.state_dict().items():
        np.testing.assert_allclose(fast.state_dict()[key], value, err_msg=key,
                                   **TOLERANCE[dtype])
    for p, q in zip(fast.parameters(), slow.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, err_msg=p.name, **TOLERANCE[dtype])
    for a, b in zip(fast.layers, slow.layers):
        assert a.get_extra_state() == b.get_extra_state()


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 3, 33])
@pytest.mark.parametrize("loss", [fnn.losses.softmax_cross_entropy, fnn.losses.multiclass_hinge])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_compiled_step_equals_the_layer_by_layer_step(name, dtype, n, loss, optimizer, backend,
                                                      rng):
    layers = models()[name]
    if n == 1 and any(isinstance(layer, fnn.BatchNorm) for layer in layers()):
        pytest.skip("BatchNorm needs more than one sample in training")
    fast, fast_opt, slow, slow_opt = pair(layers, dtype, optimizer)
    for _ in range(3):
        X, y = rng.standard_normal((n, 7)), rng.integers(0, 5, n)
        fast_loss = fast.train_step(X, y, loss, fast_opt)
        slow_loss = reference_step(slow, X, y, loss, slow_opt)
        np.testing.assert_allclose(fast_loss, slow_loss, **TOLERANCE[dtype])
    assert (fast._compiled.plan is not None) == compiled_step_expected(backend)
    assert_same_models(fast, slow, dtype)


def test_layers_hold_what_their_own_passes_leave(backend, rng):
    fast, fast_opt, slow, slow_opt = pair(models()["batchnorm_dropout"], "float64")
    X, y = rng.standard_normal((9, 7)), rng.integers(0, 5, 9)
    fast.train_step(X, y, "softmax_cross_entropy", fast_opt)
    reference_step(slow, X, y, fnn.losses.softmax_cross_entropy, slow_opt)
    for a, b in zip(fast.layers, slow.layers):
        ka, kb = a.kink_pattern(), b.kink_pattern()
        assert (ka is None) == (kb is None)
        if ka is not None:
            np.testing.assert_array_equal(ka, kb)
    dropout_fast, dropout_slow = fast.layers[3], slow.layers[3]
    np.testing.assert_array_equal(dropout_fast._mask, dropout_slow._mask)
    # a backward of the same gradient after the step gives the same gradients
    dscores = rng.standard_normal((9, 5))
    for model in (fast, slow):
        model.zero_grad()
        model.backward(dscores)
    for p, q in zip(fast.parameters(), slow.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-14)


def test_plan_follows_batch_sizes_grown_buffers_and_changed_options(backend, rng):
    fast, fast_opt, slow, slow_opt = pair(models()["batchnorm_dropout"], "float64")
    loss = fnn.losses.softmax_cross_entropy

    def both(n):
        X, y = rng.standard_normal((n, 7)), rng.integers(0, 5, n)
        assert fast.train_step(X, y, loss, fast_opt) == pytest.approx(
            reference_step(slow, X, y, loss, slow_opt), rel=1e-12)

    for n in (13, 5, 13):
        both(n)
    first_plan = fast._compiled.plan
    both(13)
    assert fast._compiled.plan is first_plan  # nothing changed: the plan is kept
    big = rng.standard_normal((200, 7))  # grows every layer's buffers
    np.testing.assert_allclose(fast.predict_proba(big), slow.predict_proba(big), rtol=1e-12)
    both(13)
    for model in (fast, slow):
        model.layers[3].p = 0.6
        model.layers[1].momentum = 0.5
        model.layers[0].activation = "tanh"
    both(13)
    for model in (fast, slow):  # a parameter given a new array
        model.layers[4].W.data = model.layers[4].W.data * 0.5
    both(13)
    assert_same_models(fast, slow, "float64")


def test_alternating_batch_sizes_keep_one_plan_each(backend, rng):
    # An epoch with a short last batch alternates two sizes: each plan is built once, and
    # switching back to a kept plan leaves that plan's arrays in the layers.
    fast, fast_opt, slow, slow_opt = pair(models()["batchnorm_dropout"], "float64")
    loss = fnn.losses.softmax_cross_entropy
    plans = {}
    for epoch in range(3):
        for n in (13, 13, 6):
            X, y = rng.standard_normal((n, 7)), rng.integers(0, 5, n)
            assert fast.train_step(X, y, loss, fast_opt) == pytest.approx(
                reference_step(slow, X, y, loss, slow_opt), rel=1e-12)
            if backend == "cython":
                assert plans.setdefault(n, fast._compiled.plan) is fast._compiled.plan
            for a, b in zip(fast.layers, slow.layers):
                ka, kb = a.kink_pattern(), b.kink_pattern()
                if ka is not None:
                    np.testing.assert_array_equal(ka, kb)
            np.testing.assert_array_equal(fast.layers[3]._mask, slow.layers[3]._mask)
    assert_same_models(fast, slow, "float64")


class ScaledDense(fnn.Dense):
    def forward(self, X, training=False):
        return super().forward(X, training=training) * 1.0


@pytest.mark.parametrize("case", ["prelu", "maxout", "subclass", "mse", "callable"])
def test_what_cannot_be_compiled_goes_layer_by_layer(case, backend, rng):
    layers = {
        "prelu": lambda: [fnn.Dense(7, 9), fnn.PReLU(9), fnn.Dense(9, 5)],
        "maxout": lambda: [fnn.Maxout(7, 9, pieces=2), fnn.Dense(9, 5)],
        "subclass": lambda: [ScaledDense(7, 9, activation="relu"), fnn.Dense(9, 5)],
    }.get(case, lambda: [fnn.Dense(7, 9, activation="relu"), fnn.Dense(9, 5)])
    loss = {"mse": fnn.losses.mse,
            "callable": lambda s, y: fnn.losses.softmax_cross_entropy(s, y)}.get(
        case, fnn.losses.softmax_cross_entropy)
    fast, fast_opt, slow, slow_opt = pair(layers, "float64")
    for _ in range(3):
        X = rng.standard_normal((6, 7))
        y = rng.standard_normal((6, 5)) if case == "mse" else rng.integers(0, 5, 6)
        assert fast.train_step(X, y, loss, fast_opt) == pytest.approx(
            reference_step(slow, X, y, loss, slow_opt), rel=1e-12)
    assert fast._compiled.plan is None
    assert_same_models(fast, slow, "float64")


def test_a_batch_of_one_with_batchnorm_is_refused_as_by_the_layer(rng):
    model = fnn.Sequential(fnn.Dense(7, 4), fnn.BatchNorm(4), fnn.Dense(4, 3), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="layer 1 .*BatchNorm.*batch of 1"):
        model.train_step(rng.standard_normal((1, 7)), [0], "softmax_cross_entropy", opt)


@pytest.mark.parametrize("bad", ["nan", "inf", "label", "label_dtype", "label_shape"])
def test_bad_input_is_refused_before_anything_changes(bad, backend, rng):
    model = fnn.Sequential(fnn.Dense(7, 9, activation="relu"), fnn.Dropout(0.5), fnn.Dense(9, 3),
                           seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = rng.standard_normal((6, 7)), rng.integers(0, 3, 6)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    before = model.state_dict()
    extra = model.layers[1].get_extra_state()
    if bad in ("nan", "inf"):
        X[2, 3] = np.nan if bad == "nan" else -np.inf
        error, match = ValueError, "layer 0 .*NaN or inf"
    elif bad == "label":
        y[4] = 3
        error, match = ValueError, r"labels must lie in \[0, 3\)"
    elif bad == "label_dtype":
        y = y.astype(str)
        error, match = TypeError, "labels must be integer"
    else:
        y = y[:5]
        error, match = ValueError, r"labels must have shape \(6,\)"
    with pytest.raises(error, match=match):
        model.train_step(X, y, "softmax_cross_entropy", opt)
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    if bad in ("nan", "inf"):  # refused before the dropout stream moved
        assert model.layers[1].get_extra_state() == extra


def test_labels_of_other_integer_types_and_lists_are_accepted(backend, rng):
    fast, fast_opt, slow, slow_opt = pair(models()["dense_activations"], "float64")
    X = rng.standard_normal((6, 7))
    y = rng.integers(0, 5, 6)
    for labels in (y.astype(np.int32), y.tolist(), y.astype(np.uint8), y.astype(float)):
        fast.train_step(X, labels, "softmax_cross_entropy", fast_opt)
        reference_step(slow, X, y, fnn.losses.softmax_cross_entropy, slow_opt)
    assert_same_models(fast, slow, "float64")


@pytest.mark.backend_independent
def test_compiled_step_is_available_where_ci_builds_it():
    if not require_compiled():
        pytest.skip("FASTNN_REQUIRE_COMPILED is not set")
    if not sys.platform.startswith("linux"):
        pytest.skip("NumPy's BLAS is looked up on Linux only")
    from fastnn._kernels import gemm
    assert _step.step_module() is not None, "the compiled step did not load"
    assert gemm.engine() == "openblas", "NumPy's CBLAS GEMMs were not found"


def test_a_replaced_layer_is_seen(backend, rng):
    model = fnn.Sequential(fnn.Dense(7, 9, activation="relu"), fnn.Dense(9, 5), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    X, y = rng.standard_normal((6, 7)), rng.integers(0, 5, 6)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    model.layers[1] = fnn.Maxout(9, 5, pieces=2)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    before = model.layers[1].W.data.copy()
    model.train_step(X, y, "softmax_cross_entropy", opt)
    assert model._compiled.plan is None
    assert not np.array_equal(model.layers[1].W.data, before)  # the new layer was trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [2, 33, 257])
def test_batchnorm_activation_dropout_steps_are_bit_for_bit_the_layers(dtype, n, backend, rng):
    """The compiled step calls the layers' own kernels on their own arrays, so it gives exactly
    the numbers of their passes: parameters, gradients, every layer's output and the dropout
    mask (at batch 257, with the tests' threading threshold, BatchNorm's passes are threaded)."""
    layers = lambda: [fnn.Dense(7, 300), fnn.BatchNorm(300), fnn.ReLU(), fnn.Dropout(0.4),  # noqa
                      fnn.Dense(300, 5)]
    fast, fast_opt, slow, slow_opt = pair(layers, dtype, "adam")
    for _ in range(3):
        X, y = rng.standard_normal((n, 7)), rng.integers(0, 5, n)
        assert fast.train_step(X, y, "softmax_cross_entropy", fast_opt) == \
            reference_step(slow, X, y, fnn.losses.softmax_cross_entropy, slow_opt)
    assert (fast._compiled.plan is not None) == compiled_step_expected(backend)
    for key, value in slow.state_dict().items():
        np.testing.assert_array_equal(fast.state_dict()[key], value, err_msg=key)
    for p, q in zip(fast.parameters(), slow.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)
    for a, b in zip(fast.layers, slow.layers):
        if getattr(a, "_out", None) is not None:
            np.testing.assert_array_equal(a._out.rows(n), b._out.rows(n))
    np.testing.assert_array_equal(fast.layers[3]._mask, slow.layers[3]._mask)


@pytest.mark.skipif(fnn._kernels.CYTHON is None, reason="the compiled backend is not built")
@pytest.mark.backend_independent
def test_the_steps_dropout_key_is_the_masks_key():
    """DropoutOp computes the dropout key in C (uint64 arithmetic); it must be
    _checks.dropout_key's for any seed, layer index and step, and refuse what that refuses."""
    from fastnn._kernels import step
    from fastnn._hash import dropout_key
    rng = np.random.default_rng(0)
    cases = [(0, 0, 0), (2**64 - 1, 2**64 - 1, 2**64 - 1), (2**64 + 5, 1, 2), (2**200, 3, 4),
             (np.uint64(7), 1, 2), (np.int32(3), np.int64(2), 9)]
    cases += [tuple(int(v) for v in rng.integers(0, 2**63, 3, dtype=np.int64)) for _ in range(50)]
    for case in cases:
        assert step.dropout_key_of(*case) == dropout_key(*case), case
    for bad in [(-1, 0, 0), (True, 0, 0), (0, 0, 1.5), (0, None, 0)]:
        with pytest.raises(ValueError):
            dropout_key(*bad)
        with pytest.raises(ValueError):
            step.dropout_key_of(*bad)
