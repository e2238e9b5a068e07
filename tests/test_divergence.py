"""Nothing turns the parameters NaN silently: learning rates are checked wherever they can
change (schedules, param_groups edited between steps), and the divergence guards of train_step
and Trainer catch non-finite gradients and parameters, not only a non-finite loss."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.optim import lr_scheduler as sched

BAD = [math.nan, math.inf, -math.inf, -0.1]


def _model():
    return fnn.Sequential(fnn.Dense(6, 16, activation="relu"), fnn.Dense(16, 3), seed=0)


def _data(rng, n=32):
    return rng.standard_normal((n, 6)), rng.integers(0, 3, n)


@pytest.mark.parametrize("make", [
    lambda o, v: sched.StepLR(o, step_size=1, gamma=v),
    lambda o, v: sched.ExponentialLR(o, gamma=v),
    lambda o, v: sched.InverseTimeLR(o, decay=v),
    lambda o, v: sched.CosineAnnealingLR(o, T_max=10, eta_min=v),
    lambda o, v: sched.CosineAnnealingLR(o, T_max=v),
    lambda o, v: sched.LinearLR(o, start_factor=v),
    lambda o, v: sched.LambdaLR(o, lambda t: v),
], ids=["step", "exponential", "inverse_time", "cosine_eta_min", "cosine_T_max", "linear",
        "lambda"])
@pytest.mark.parametrize("value", BAD)
def test_schedules_refuse_factors_that_give_bad_learning_rates(make, value):
    opt = fnn.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises((ValueError, TypeError)):  # TypeError: NaN for an epoch count (T_max)
        make(opt, value)
    assert opt.param_groups[0]["lr"] == 0.1


def test_a_schedule_that_turns_bad_later_raises_and_keeps_the_last_rate():
    opt = fnn.optim.SGD(_model().parameters(), lr=0.1)
    schedule = sched.LambdaLR(opt, lambda t: 0.5 if t < 2 else math.nan)
    schedule.step()
    with pytest.raises(ValueError, match="LambdaLR: the schedule gives the learning rate nan"):
        schedule.step()
    assert opt.param_groups[0]["lr"] == 0.05


OPTIMIZERS = [
    lambda ps: fnn.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: fnn.optim.Adagrad(ps, lr=0.1),
    lambda ps: fnn.optim.RMSprop(ps, lr=0.01),
    lambda ps: fnn.optim.Adam(ps, lr=0.01),
    lambda ps: fnn.optim.AdamW(ps, lr=0.01),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("key", ["lr", "weight_decay", "eps"])
@pytest.mark.parametrize("value", BAD)
def test_hyperparameters_edited_between_steps_are_checked(make, key, value, rng):
    model = _model()
    opt = make(model.parameters())
    X, y = _data(rng)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    if key not in opt.param_groups[0]:
        key = "lr"
    opt.param_groups[0][key] = value
    before = model.state_dict()
    with pytest.raises(ValueError, match=key):
        model.train_step(X, y, "softmax_cross_entropy", opt)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    opt.param_groups[0][key] = 0.01  # a good value again: steps go on
    model.train_step(X, y, "softmax_cross_entropy", opt)


def _nan_gradient_loss(scores, y):
    loss, dscores = fnn.losses.softmax_cross_entropy(scores, y)
    dscores = dscores.copy()
    dscores[0, 0] = np.nan
    return loss, dscores


def test_train_step_refuses_a_non_finite_gradient_before_the_update(rng):
    model = _model()
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    X, y = _data(rng)
    before = model.state_dict()
    with pytest.raises(FloatingPointError, match="gradient of 0.W holds NaN or inf"):
        model.train_step(X, y, _nan_gradient_loss, opt)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    model.train_step(X, y, "softmax_cross_entropy", opt)  # the next good batch trains


def test_train_step_reports_an_update_that_makes_parameters_non_finite(rng):
    """Adam with eps=0 and a zero gradient divides 0 by 0: the loss was finite, the parameters
    are not; train_step says so instead of returning the loss."""
    model = _model()
    opt = fnn.optim.Adam(model.parameters(), lr=0.01, eps=0.0)
    X, y = _data(rng)

    def zero_gradient(scores, y):
        return 1.0, np.zeros_like(scores)

    with pytest.raises(FloatingPointError, match="the update made 0.W non-finite"), \
            np.errstate(invalid="ignore"):
        model.train_step(X, y, zero_gradient, opt)


class _Poison:
    """A regularization (after backward) or constraint (after the update) that puts a NaN in
    the first weight at a given iteration."""

    def __init__(self, at, where):
        self.at, self.where, self.calls = at, where, 0

    def __call__(self, model):
        self.calls += 1
        if self.calls == self.at:
            p = model.parameters()[0]
            (p.grad if self.where == "grad" else p.data)[0, 0] = np.nan
        return 0.0


@pytest.mark.parametrize("where", ["grad", "data"])
def test_trainer_catches_non_finite_gradients_and_parameters_at_the_step(where, rng):
    model = _model()
    opt = fnn.optim.Adam(model.parameters(), lr=0.01)
    X, y = _data(rng, 64)
    poison = _Poison(at=6, where=where)  # epoch 2 (4 batches an epoch), second batch
    kwargs = {"regularization": poison} if where == "grad" else {"constraint": poison}
    trainer = fnn.Trainer(model, opt, batch_size=16, epochs=3, progress=False, monitor=False,
                          **kwargs)
    states = []
    trainer.callbacks = [type("Keep", (), {"on_epoch": lambda self, t, e, h: states.append(
        t.model.state_dict())})()]
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = trainer.fit(X, y)
    what = "the gradient of 0.W became" if where == "grad" else "the update made 0.W"
    assert history.stop_reason.startswith(f"diverged: {what} non-finite at epoch 2, "
                                          "iteration 2")
    assert len(states) == 1
    for k, v in model.state_dict().items():  # the end of epoch 1
        np.testing.assert_array_equal(v, states[0][k])
