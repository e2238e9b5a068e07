"""The compiled training step of a compute_dtype="bfloat16" model: the same kernels on the same
arrays as the layer-by-layer bf16 step (each Dense rounds its input into its Xb buffer,
multiplies by the bf16 copy of W, rounds its output and dZ), so the numbers are equal to the bit:
losses, gradients, parameters after the optimizer, every layer's saved state. The penalty is the
float32 master weights'. Switching compute_dtype between steps changes the plan (a steady bf16
step allocating nothing is test_train_step's, on both engines)."""
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn._kernels.bf16_numpy import round_bfloat16
from fastnn.metrics import correct

from test_compiled_step import OPTIMIZERS, compiled_step_expected, models, reference_step
from test_compute_dtype import oracle


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "compute_dtype='bfloat16' runs by emulation")
        yield


def twins(name, optimizer, freeze_first=False):
    made = []
    for _ in range(2):
        model = fnn.Sequential(*models()[name](), seed=3, compute_dtype="bfloat16")
        if freeze_first:
            next(layer for layer in model.layers if isinstance(layer, fnn.Dense)).freeze()
        made += [model, OPTIMIZERS[optimizer](model.parameters())]
    return made


def assert_identical(fast, slow):
    for key, value in slow.state_dict().items():
        np.testing.assert_array_equal(fast.state_dict()[key], value, err_msg=key)
    for p, q in zip(fast.parameters(), slow.parameters()):
        if q.requires_grad:
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)
            np.testing.assert_array_equal(p._bf16, q._bf16, err_msg=p.name)


def batch(rng, n):
    return rng.standard_normal((n, 7)).astype(np.float32), rng.integers(0, 5, n)


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("n", [3, 33])
@pytest.mark.parametrize("freeze_first", [False, True])
def test_compiled_bf16_step_is_the_layer_by_layer_step_bit_for_bit(name, optimizer, n,
                                                                   freeze_first, backend, rng):
    fast, fast_opt, slow, slow_opt = twins(name, optimizer, freeze_first)
    loss = fnn.losses.softmax_cross_entropy
    for _ in range(3):
        X, y = batch(rng, n)
        assert fast.train_step(X, y, loss, fast_opt) == reference_step(slow, X, y, loss, slow_opt)
    assert (fast._compiled.plan is not None) == compiled_step_expected(backend)
    assert_identical(fast, slow)
    for a, b in zip(fast.layers, slow.layers):
        if isinstance(a, fnn.Dense):  # what the layer's own forward left: the rounded input
            np.testing.assert_array_equal(a._X, b._X)
            np.testing.assert_array_equal(a._A, b._A)
            assert a._bf16 and b._bf16
    # and a backward after the step, from what the plan left in the layers, is the same too
    dscores = rng.standard_normal((n, 5)).astype(np.float32)
    for model in (fast, slow):
        model.zero_grad()
        model.backward(dscores)
    for p, q in zip(fast.parameters(), slow.parameters()):
        if q.requires_grad:
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)


@pytest.mark.parametrize("l1, l2", [(0.0, 1e-2), (1e-3, 2e-2)])
@pytest.mark.parametrize("freeze_first", [False, True])
def test_the_penalty_is_the_master_weights(l1, l2, freeze_first, backend, rng):
    fused_model, _, model, _ = twins("dense_activations", "sgd", freeze_first)
    X, y = batch(rng, 13)
    loss = fnn.losses.softmax_cross_entropy
    loss_value, scores, fused = fused_model._forward_backward(X, y, loss, l1, l2, True)
    assert (fused is not None) == compiled_step_expected(backend)
    if fused is None:
        fnn.regularization.ElasticNet(l1=l1, l2=l2)(fused_model)
    scores = scores.copy()
    reference_loss, dscores = loss(model.forward(X, training=True), y)
    reference_scores = model.forward(X, training=True).copy()
    model.zero_grad()
    model.backward(dscores)
    penalty = fnn.regularization.ElasticNet(l1=l1, l2=l2)(model)
    assert loss_value == reference_loss
    np.testing.assert_array_equal(scores, reference_scores)
    for p, q in zip(fused_model.parameters(), model.parameters()):
        if q.requires_grad:
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)
    if fused is not None:
        assert fused[0] == penalty
        assert fused[1] == correct(loss.__name__, reference_scores, y)


def test_switching_compute_dtype_between_steps_switches_the_arithmetic(backend, rng):
    fast, fast_opt, slow, slow_opt = twins("batchnorm_dropout", "adam")
    loss = fnn.losses.softmax_cross_entropy
    for dtype in ["bfloat16", "float32", "bfloat16", "float32"]:
        fast.compute_dtype = slow.compute_dtype = dtype
        for _ in range(2):
            X, y = batch(rng, 9)
            assert fast.train_step(X, y, loss, fast_opt) == \
                reference_step(slow, X, y, loss, slow_opt)
        assert_identical(fast, slow)
        scores = fast.forward(X, training=False)
        assert np.array_equal(round_bfloat16(scores), scores) == (dtype == "bfloat16")


def test_weights_written_between_steps_are_seen(backend, rng):
    fast, fast_opt, slow, slow_opt = twins("dense_activations", "sgd")
    loss = fnn.losses.softmax_cross_entropy
    for write in range(3):
        X, y = batch(rng, 11)
        assert fast.train_step(X, y, loss, fast_opt) == reference_step(slow, X, y, loss, slow_opt)
        for model in (fast, slow):
            model.layers[write].W.data *= 0.5  # not through the optimizer: rounded again
    X, y = batch(rng, 11)
    assert fast.train_step(X, y, loss, fast_opt) == reference_step(slow, X, y, loss, slow_opt)
    assert_identical(fast, slow)
