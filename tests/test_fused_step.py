"""What the compiled step does beside forward, loss and backward when the Trainer asks
(Sequential._forward_backward's l1, l2 and count): the elastic-net penalty, value and gradient,
and the count of rows classified right. Each must be what the separate passes give
(fastnn.regularization.ElasticNet, fastnn.metrics.correct), so a Trainer's run is the same
with and without them."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn.metrics import correct

from test_compiled_step import compiled_step_expected, models

STRENGTHS = [(0.0, 1e-2), (1e-3, 0.0), (1e-3, 2e-2)]


def twins(name, dtype, freeze_first=False):
    made = []
    for _ in range(2):
        model = fnn.Sequential(*models()[name](), dtype=dtype, seed=3)
        if freeze_first:
            next(layer for layer in model.layers if isinstance(layer, fnn.Dense)).freeze()
        made.append(model)
    return made


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("l1, l2", STRENGTHS)
@pytest.mark.parametrize("loss", [fnn.losses.softmax_cross_entropy, fnn.losses.multiclass_hinge])
@pytest.mark.parametrize("freeze_first", [False, True])
def test_fused_penalty_and_count_are_the_separate_passes(name, dtype, l1, l2, loss, freeze_first,
                                                         backend, rng):
    fused_model, model = twins(name, dtype, freeze_first)
    X, y = rng.standard_normal((13, 7)), rng.integers(0, 5, 13)
    loss_value, scores, fused = fused_model._forward_backward(X, y, loss, l1, l2, True)
    assert (fused is not None) == compiled_step_expected(backend)
    if fused is None:  # the layer-by-layer step: the caller does the penalty (as the Trainer)
        fnn.regularization.ElasticNet(l1=l1, l2=l2)(fused_model)
    scores = scores.copy()
    reference_loss, reference_scores = model.forward_backward(X, y, loss)
    penalty = fnn.regularization.ElasticNet(l1=l1, l2=l2)(model)
    assert loss_value == reference_loss
    np.testing.assert_array_equal(scores, reference_scores)
    for p, q in zip(fused_model.parameters(), model.parameters()):
        if q.requires_grad:  # the same arithmetic on each element: equal to the bit
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)
    if fused is not None:
        assert fused[0] == penalty  # summed in the same order
        assert fused[1] == correct(loss.__name__, reference_scores, y)


def test_without_strengths_or_count_nothing_more_is_done(backend, rng):
    fused_model, model = twins("dense_activations", "float64")
    X, y = rng.standard_normal((9, 7)), rng.integers(0, 5, 9)
    _, _, fused = fused_model._forward_backward(X, y, "softmax_cross_entropy")
    model.forward_backward(X, y, "softmax_cross_entropy")
    if fused is not None:
        assert fused == (0.0, None)
    for p, q in zip(fused_model.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=p.name)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_count_follows_argmax_on_ties_and_nan(dtype, backend):
    # An infinite hidden unit times a zero weight makes NaN scores in chosen entries (NaN input
    # itself is refused).
    big = np.finfo(dtype).max
    model = fnn.Sequential(fnn.Dense(2, 3), fnn.Dense(3, 4), dtype=dtype, seed=0)
    model.layers[0].W.data = np.array([[big, 0.0, 0.0], [0.0, 1.0, big]])
    model.layers[1].W.data = np.array([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0],
                                       [0.0, 1.0, 1.0, 1.0]])
    for layer in model.layers:
        layer.b.data = np.zeros(layer.b.data.shape)
    X = np.array([[2.0, 0.0],   # [inf, inf, NaN, NaN]: the first NaN after the largest, 2
                  [0.0, 2.0],   # [NaN, inf, inf, inf]: a NaN first, 0
                  [0.0, 0.0],   # all 0: a tie, the first, 0
                  [1e-30, 1]])  # [~1e8, big, big, big]: a tie of the largest, 1
    y = np.array([2, 3, 0, 1])
    scores = model.forward(X, training=False).copy()
    assert scores.argmax(axis=1).tolist() == [2, 0, 0, 1]
    expected = correct("softmax_cross_entropy", scores, y)
    assert expected == 3
    _, fused_scores, fused = model._forward_backward(X, y, "softmax_cross_entropy", 0.0, 0.0,
                                                     True)
    np.testing.assert_array_equal(fused_scores, scores)
    if fused is not None:
        assert fused[1] == expected


class Subclassed(fnn.regularization.L2):
    """An L2 the Trainer does not recognise as its own: it runs it as a separate pass."""


@pytest.mark.parametrize("penalty", [fnn.regularization.L2(1e-3),
                                     fnn.regularization.ElasticNet(l1=1e-4, l2=1e-3), None])
def test_a_trainers_run_is_the_same_with_the_fused_passes(penalty, backend):
    X, y = np.random.default_rng(0).standard_normal((103, 7)), np.arange(103) % 5
    runs = []
    for regularization in (penalty, Subclassed(1e-3) if penalty is not None else None):
        if penalty is not None and regularization is not penalty:
            regularization.l1, regularization.l2 = penalty.l1, penalty.l2
        model = fnn.Sequential(*models()["batchnorm_dropout"](), seed=1)
        trainer = fnn.Trainer(model, fnn.optim.Adam(model.parameters(), lr=1e-2),
                              batch_size=32, epochs=2, regularization=regularization, seed=2,
                              progress=False)
        if runs:  # the reference: the count done by metrics.correct, as without a compiled step
            step = model._fit_forward_backward
            model._fit_forward_backward = lambda X, y, loss, l1, l2, count, *rest: step(
                X, y, loss, l1, l2, False, *rest)
        history = trainer.fit(X, y)
        runs.append((history, model.state_dict()))
    (first, first_state), (second, second_state) = runs
    assert first.loss == second.loss
    assert first.reg_loss == second.reg_loss
    assert first.train_accuracy == second.train_accuracy
    for key in first_state:
        np.testing.assert_array_equal(first_state[key], second_state[key], err_msg=key)
