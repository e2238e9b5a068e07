"""Runs are not lost over a last batch of one (BatchNorm), and an exception inside fit leaves
the model at its last completed epoch with the reason in the history."""
import numpy as np
import pytest

import fastnn as fnn


def _bn_model():
    return fnn.Sequential(fnn.Dense(5, 8), fnn.BatchNorm(8), fnn.ReLU(), fnn.Dense(8, 3),
                          seed=0)


def _data(rng, n):
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def _trainer(model, **kwargs):
    kwargs.setdefault("epochs", 2)
    return fnn.Trainer(model, fnn.optim.SGD(model.parameters(), lr=0.05), batch_size=8,
                       progress=False, monitor=False, **kwargs)


def test_a_last_batch_of_one_joins_the_batch_before_with_batchnorm(rng):
    X, y = _data(rng, 33)  # 4 batches of 8 and one of 1
    history = _trainer(_bn_model()).fit(X, y)
    assert history.stop_reason == "completed"
    assert len(history.loss) == 2 * 4  # the lone sample trained with the fourth batch
    # Without BatchNorm the batch of one is trained on its own, as before.
    plain = fnn.Sequential(fnn.Dense(5, 8, activation="relu"), fnn.Dense(8, 3), seed=0)
    assert len(_trainer(plain).fit(X, y).loss) == 2 * 5


def test_drop_last_drops_the_incomplete_batch(rng):
    X, y = _data(rng, 35)
    history = _trainer(_bn_model(), drop_last=True).fit(X, y)
    assert history.stop_reason == "completed" and len(history.loss) == 2 * 4
    with pytest.raises(TypeError, match="drop_last"):
        _trainer(_bn_model(), drop_last="yes")


def test_no_trainable_batch_is_refused_before_training(rng):
    model = _bn_model()
    before = model.state_dict()
    with pytest.raises(ValueError, match="make no minibatch"):
        _trainer(model).fit(*_data(rng, 1))
    with pytest.raises(ValueError, match="make no minibatch"):
        _trainer(model, drop_last=True).fit(*_data(rng, 7))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


class _FailAt:
    def __init__(self, iteration, error):
        self.iteration, self.error = iteration, error

    def on_step(self, trainer, iteration, loss):
        if iteration == self.iteration:
            raise self.error


def test_an_exception_mid_epoch_restores_the_last_completed_epoch(rng):
    X, y = _data(rng, 32)  # 4 batches an epoch
    model = _bn_model()
    epochs = []
    keep = type("Keep", (), {"on_epoch": lambda self, t, e, h: epochs.append(
        t.model.state_dict())})()
    trainer = _trainer(model, epochs=3, callbacks=[keep, _FailAt(6, OSError("disk full"))])
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(X, y)
    assert trainer.history.stop_reason == "error: OSError: disk full"
    assert len(epochs) == 1
    for key, value in model.state_dict().items():  # parameters and BatchNorm statistics
        np.testing.assert_array_equal(value, epochs[0][key])
