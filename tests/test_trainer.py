"""Trainer: the training loop, the babysitting figures on cases with known values, early
stopping, divergence, Ctrl-C, EMA and ensembles, checkpoints and resuming, callbacks, output."""
import collections
import inspect
import math
import re
import shutil
import sys
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn.optim import lr_scheduler
from fastnn.trainer import TrainingWarning

# Babysitting warnings of ordinary runs are noise here; tests that check warnings record them
# all with warnings.simplefilter("always").
pytestmark = pytest.mark.filterwarnings("ignore::fastnn.trainer.TrainingWarning")

TIMING = ("time", "wall_time")  # the only parts of a History that may differ between runs


# -- helpers --------------------------------------------------------------------------------------

def blobs(n=103, d=8, classes=3, seed=0, spread=3.0):
    """Separable Gaussian blobs: (X float32 (n, d), y int labels)."""
    r = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((classes, d)) * spread
    y = r.integers(0, classes, n)
    return (centers[y] + r.standard_normal((n, d))).astype(np.float32), y


def make_model(seed=0, dtype="float32", d=8, hidden=16, classes=3, activation="relu",
               init=None):
    return fnn.Sequential(fnn.Dense(d, hidden, activation=activation, init=init),
                          fnn.Dense(hidden, classes), dtype=dtype, seed=seed)


def make_trainer(model, lr=0.05, momentum=0.9, **kwargs):
    optimizer = fnn.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    kwargs = {"batch_size": 32, "epochs": 3, "progress": False, "seed": 0, **kwargs}
    return fnn.Trainer(model, optimizer, **kwargs)


def assert_same_state(a, b):
    """Two state dicts (or models) hold bit-identical arrays."""
    a = a.state_dict() if hasattr(a, "state_dict") else a
    b = b.state_dict() if hasattr(b, "state_dict") else b
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


def states_differ(a, b):
    return any(not np.array_equal(a[key], b[key]) for key in a)


def history_without_timing(history):
    return {k: v for k, v in history.to_dict().items() if k not in TIMING}


class Snapshots:
    """A callback keeping the model's state after every epoch (what the best epoch restores)."""

    def __init__(self):
        self.states = {}

    def on_epoch(self, trainer, epoch, history):
        self.states[epoch] = trainer.model.state_dict()


class InterruptAt:
    """A callback that presses Ctrl-C after iteration `at` (1-based, counted over the run)."""

    def __init__(self, at):
        self.at = at

    def on_step(self, trainer, iteration, loss):
        if iteration == self.at:
            raise KeyboardInterrupt


def fit_recording(trainer, *args, **kwargs):
    """fit with every warning recorded (none filtered away)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(*args, **kwargs)
    return history, caught


def of_kind(caught, text, category=TrainingWarning):
    return [w for w in caught if issubclass(w.category, category) and text in str(w.message)]


# -- fit and History ------------------------------------------------------------------------------

def test_history_per_iteration_and_per_epoch():
    X, y = blobs(103)
    Xv, yv = blobs(40, seed=1)
    model = make_model()
    penalty = fnn.regularization.L2(1e-3)
    first_penalty = penalty.value(model)
    trainer = make_trainer(model, regularization=penalty, epochs=3)
    sizes = []
    forward_backward = model._fit_forward_backward

    def record(X, y, loss, *fused):  # the minibatch sizes the trainer uses
        sizes.append(len(X))
        return forward_backward(X, y, loss, *fused)

    model._fit_forward_backward = record
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    assert trainer.history is history
    assert history.stop_reason == "completed"
    # 103 samples in batches of 32: 32, 32, 32 and the last partial batch of 7, every epoch
    assert sizes == [32, 32, 32, 7] * 3
    assert len(history.loss) == len(history.reg_loss) == 12
    assert all(math.isfinite(v) and v > 0 for v in history.loss)
    assert history.reg_loss[0] == first_penalty  # the penalty of the weights before step 1
    assert all(v > 0 for v in history.reg_loss)
    assert history.epochs == [1, 2, 3]
    for key in fnn.History.PER_EPOCH:
        assert len(getattr(history, key)) == 3, key
    # per-epoch training loss: the batch-size-weighted mean of that epoch's iteration losses
    for e in range(3):
        losses = history.loss[4 * e:4 * e + 4]
        expected = sum(l * n for l, n in zip(losses, [32, 32, 32, 7])) / 103
        assert history.train_loss[e] == pytest.approx(expected, rel=1e-12)
    assert history.loss[-1] < history.loss[0]
    assert all(0 <= a <= 1 for a in history.train_accuracy + history.val_accuracy)
    assert history.val_accuracy[-1] > 0.9
    # validation figures: the final model evaluated on the validation data
    val_loss, val_acc = trainer.evaluate(Xv, yv)
    assert history.val_loss[-1] == val_loss
    assert history.val_accuracy[-1] == val_acc == np.mean(model.predict(Xv) == yv)
    assert history.gap == [t - v for t, v in zip(history.train_accuracy, history.val_accuracy)]
    assert history.lr == [0.05] * 3
    assert all(t > 0 for t in history.time)
    assert history.wall_time >= sum(history.time) > 0
    assert "3 epochs, 12 iterations" in repr(history) and "completed" in repr(history)


def test_no_regularization_records_zero_and_no_validation_records_none():
    X, y = blobs(64)
    history = make_trainer(make_model(), epochs=2).fit(X, y)
    assert history.reg_loss == [0.0] * 4
    assert history.val_loss == history.val_accuracy == history.gap == [None, None]
    assert all(a is not None for a in history.train_accuracy)


def test_lr_follows_the_schedule():
    X, y = blobs(64)
    model = make_model()
    optimizer = fnn.optim.SGD(model.parameters(), lr=0.08, momentum=0.9)
    schedule = lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    trainer = fnn.Trainer(model, optimizer, batch_size=32, epochs=5, schedule=schedule,
                          progress=False)
    history = trainer.fit(X, y)
    assert history.lr == [0.08, 0.08, 0.04, 0.04, 0.02]
    assert optimizer.param_groups[0]["lr"] == 0.02  # stepped after each epoch: 0.08 * 0.5**2


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", fnn.losses.softmax_cross_entropy,
                                  "svm", fnn.losses.multiclass_hinge])
def test_loss_by_name_or_function(loss):
    X, y = blobs(90)
    Xv, yv = blobs(30, seed=1)
    model = make_model()
    history = make_trainer(model, loss=loss, epochs=2).fit(X, y, validation_data=(Xv, yv))
    assert history.val_accuracy[-1] > 0.8
    # the validation loss is the chosen loss of the final model
    expected, _ = fnn.losses.get(loss)(model.forward(Xv, training=False), yv)
    assert history.val_loss[-1] == float(expected)


def test_named_and_function_losses_give_the_same_run():
    X, y = blobs(90)
    a = make_trainer(make_model(), loss="svm", epochs=2).fit(X, y)
    b = make_trainer(make_model(), loss=fnn.losses.svm, epochs=2).fit(X, y)
    assert history_without_timing(a) == history_without_timing(b)


def test_binary_loss_reports_accuracy():
    X, y = blobs(80, classes=2)
    model = make_model(classes=1)
    history = make_trainer(model, loss="binary_logistic", epochs=3).fit(X, y,
                                                                       validation_data=(X, y))
    assert history.train_accuracy[-1] > 0.9
    predicted = model.forward(X, training=False).reshape(-1) > 0
    assert history.val_accuracy[-1] == np.mean(predicted == (y > 0))


def test_regression_has_no_accuracy():
    r = np.random.default_rng(0)
    X = r.standard_normal((60, 5)).astype(np.float32)
    Y = (X @ r.standard_normal((5, 2))).astype(np.float32)
    model = make_model(d=5, classes=2)
    trainer = make_trainer(model, lr=0.01, loss="mse", epochs=3)
    history = trainer.fit(X, Y, validation_data=(X[:20], Y[:20]))
    assert history.train_accuracy == history.val_accuracy == history.gap == [None] * 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_loss[-1] == pytest.approx(
        float(np.mean((model.forward(X[:20], training=False) - Y[:20]) ** 2)), rel=1e-5)
    assert trainer.evaluate(X, Y)[1] is None


# -- reproducibility ------------------------------------------------------------------------------

def recorded_batches(model):
    """Patch model._fit_forward_backward (the trainer's step before the update) to record the
    training minibatches (as row indices of column 0)."""
    batches = []
    forward_backward = model._fit_forward_backward

    def record(X, y, loss, *fused):
        batches.append(np.asarray(X)[:, 0].astype(int).tolist())
        return forward_backward(X, y, loss, *fused)

    model._fit_forward_backward = record
    return batches


def indexed_blobs(n=103):
    """Blobs whose first feature is the sample's index, so a minibatch names its samples."""
    X, y = blobs(n)
    X[:, 0] = np.arange(n)
    return X, y


def test_same_seed_same_run_bit_for_bit():
    X, y = blobs(103)
    Xv, yv = blobs(30, seed=1)
    runs = []
    for _ in range(2):
        model = fnn.Sequential(fnn.Dense(8, 16, activation="relu"), fnn.Dropout(0.2),
                               fnn.BatchNorm(16), fnn.Dense(16, 3), seed=4)
        trainer = make_trainer(model, seed=7, epochs=3,
                               regularization=fnn.regularization.L2(1e-3))
        runs.append((trainer.fit(X, y, validation_data=(Xv, yv)), model))
    (h1, m1), (h2, m2) = runs
    assert history_without_timing(h1) == history_without_timing(h2)
    assert_same_state(m1, m2)


def test_data_in_another_dtype_trains_as_if_converted_by_hand():
    # The Trainer converts float64 (or integer) data to the model's dtype once, up front: the run
    # is the one on data converted by hand, bit for bit, and the caller's array is not touched.
    X, y = blobs(103)
    X64 = X.astype(np.float64) + 1e-9  # rounds back to X in float32
    before = X64.copy()
    runs = []
    for data in (X, X64):
        model = make_model(seed=3)
        history = make_trainer(model, regularization=fnn.regularization.L2(1e-3)).fit(data, y)
        runs.append((history, model))
    assert history_without_timing(runs[0][0]) == history_without_timing(runs[1][0])
    assert_same_state(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(X64, before)


def test_data_beyond_the_models_dtype_is_refused_before_training():
    X, y = blobs(40)
    X = X.astype(np.float64)
    X[3, 2] = 1e300  # finite in float64, inf in the model's float32
    model = make_model()
    state = model.state_dict()
    with pytest.raises(ValueError, match="NaN or inf"):
        make_trainer(model).fit(X, y)
    assert_same_state(state, model)


def test_training_accuracy_counts_every_sample():
    X, y = blobs(103)
    model = make_model(seed=1)
    trainer = make_trainer(model, epochs=1, batch_size=25, shuffle=False)
    seen = []

    class Watch:
        def on_step(self, trainer, iteration, loss):
            layer = trainer.model.layers[-1]
            seen.append(np.count_nonzero(layer._A.argmax(axis=1) == y[len(seen) * 25:][:25]))

    trainer.callbacks.append(Watch())
    history = trainer.fit(X, y)
    assert history.train_accuracy[-1] == pytest.approx(sum(seen) / len(y))


def test_minibatches_are_shuffled_permutations_from_the_seed():
    X, y = indexed_blobs(103)

    def batches_of(seed):
        model = make_model()
        batches = recorded_batches(model)
        make_trainer(model, lr=0.0, momentum=0.0, seed=seed, epochs=2,
                     monitor=False).fit(X, y)
        return batches

    a, b, c = batches_of(11), batches_of(11), batches_of(12)
    assert a == b
    epochs = [sum(a[:4], []), sum(a[4:], [])]
    for order in epochs:
        assert sorted(order) == list(range(103))  # every sample exactly once per epoch
        assert order != list(range(103))          # shuffled
    assert epochs[0] != epochs[1]                 # reshuffled every epoch
    assert c != a                                 # another seed, another order
    assert [len(batch) for batch in c] == [32, 32, 32, 7] * 2


def test_different_seed_different_run():
    X, y = blobs(103)
    h1 = make_trainer(make_model(), seed=1, epochs=1).fit(X, y)
    h2 = make_trainer(make_model(), seed=2, epochs=1).fit(X, y)
    assert h1.loss[0] != h2.loss[0]


# -- babysitting ---------------------------------------------------------------------------------

def test_dead_relu_layer_fraction_one_and_warned():
    X, y = blobs(64)
    model = make_model(init=1e-3)
    model.layers[0].b.data[:] = -100.0  # no input can make these units fire
    history, caught = fit_recording(make_trainer(model, epochs=3), X, y)
    assert [list(d) for d in history.dead_fraction] == [["0:Dense(8 -> 16, relu)"]] * 3
    assert [d["0:Dense(8 -> 16, relu)"] for d in history.dead_fraction] == [1.0, 1.0, 1.0]
    dead = of_kind(caught, "never fired")
    assert len(dead) == 1 and "layer 0" in str(dead[0].message) and "100%" in str(
        dead[0].message)
    # warned once per fit, recorded every epoch
    assert sum("never fired" in m for m in history.warnings) == 3
    assert dead[0].filename == __file__


def test_healthy_relu_layer_has_almost_no_dead_units():
    X, y = blobs(64)
    history, caught = fit_recording(make_trainer(make_model(hidden=32), epochs=2), X, y)
    assert all(d["0:Dense(8 -> 32, relu)"] <= 0.1 for d in history.dead_fraction)
    assert not of_kind(caught, "never fired")
    assert not any("never fired" in m for m in history.warnings)


def test_relu_layer_of_its_own_is_watched_too():
    """A ReLU() after a BatchNorm is not fused into a Dense: its dead units count as well."""
    X, y = blobs(64)
    model = fnn.Sequential(fnn.Dense(8, 6), fnn.BatchNorm(6), fnn.ReLU(), fnn.Dense(6, 3),
                           seed=0)
    model.layers[1].beta.data[:] = -100.0
    history = make_trainer(model, lr=0.0, momentum=0.0, epochs=1).fit(X, y)
    assert history.dead_fraction[0] == {"2:ReLU()": 1.0}


def test_tanh_layer_of_its_own_is_watched_too():
    X, y = blobs(64)
    model = fnn.Sequential(fnn.Dense(8, 6), fnn.BatchNorm(6), fnn.Tanh(), fnn.Dense(6, 3),
                           seed=0)
    model.layers[1].gamma.data[:] = 1000.0
    history, caught = fit_recording(make_trainer(model, lr=0.0, momentum=0.0, epochs=1), X, y)
    assert history.activations[0]["2:Tanh()"]["saturated"] > 0.95
    assert of_kind(caught, "of the tanh units of layer 2: Tanh() are saturated")


def full_batch_gradient(model, X, y):
    model.zero_grad()
    _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
    model.backward(dscores)
    grads = {f"{i}.{p.name}": p.grad.copy() for i, layer in enumerate(model.layers)
             for p in layer.parameters()}
    model.zero_grad()
    return grads


def test_update_ratio_of_a_known_step():
    """Plain SGD, one full batch: the update is lr * g, so the ratio is lr * ||g|| / ||w||."""
    X, y = blobs(50)
    model = make_model(dtype="float64")
    start = model.state_dict()
    grads = full_batch_gradient(model, X, y)
    lr = 0.01
    history = make_trainer(model, lr=lr, momentum=0.0, batch_size=50, epochs=1,
                           update_ratio_range=(0.0, math.inf)).fit(X, y)
    ratios = history.update_ratio[0]
    assert set(ratios) == {"0.W", "0.b", "1.W", "1.b"}
    for key in ("0.W", "1.W"):
        expected = lr * np.linalg.norm(grads[key]) / np.linalg.norm(start[key])
        assert ratios[key] == pytest.approx(expected, rel=1e-9)
        assert ratios[key] > 0
    assert ratios["0.b"] == math.inf  # biases start at zero: no finite ratio
    assert not history.warnings


@pytest.mark.parametrize("lr, direction", [(5.0, "too high"), (1e-7, "too low")])
def test_update_ratio_out_of_range_is_warned(lr, direction):
    X, y = blobs(50)
    model = make_model(dtype="float64")
    grads = full_batch_gradient(model, X, y)
    ratio = lr * np.linalg.norm(grads["0.W"]) / np.linalg.norm(model.layers[0].W.data)
    low, high = inspect.signature(fnn.Trainer).parameters["update_ratio_range"].default
    assert not low <= ratio <= high  # the case is out of the default range
    history, caught = fit_recording(
        make_trainer(model, lr=lr, momentum=0.0, batch_size=50, epochs=1), X, y)
    assert history.update_ratio[0]["0.W"] == pytest.approx(ratio, rel=1e-9)
    warned = of_kind(caught, "update/weight ratio of W in layer 0: Dense(")
    assert len(warned) == 1 and direction in str(warned[0].message)
    assert warned[0].filename == __file__
    # the same ratio inside a custom range: no warning about it
    model = make_model(dtype="float64")
    history, caught = fit_recording(
        make_trainer(model, lr=lr, momentum=0.0, batch_size=50, epochs=1,
                     update_ratio_range=(ratio / 10, ratio * 10)), X, y)
    assert not of_kind(caught, "update/weight ratio of W in layer 0: Dense(")


def test_tanh_saturation_with_huge_weights_is_warned():
    X, y = blobs(64)
    model = make_model(activation="tanh", init=100.0)
    history, caught = fit_recording(make_trainer(model, epochs=2), X, y)
    stats = [a["0:Dense(8 -> 16, tanh)"] for a in history.activations]
    assert all(s["saturated"] > 0.95 for s in stats)
    assert all(s["std"] > 0.9 for s in stats)  # values piled up at -1 and +1
    warned = of_kind(caught, "saturated")
    assert len(warned) == 1 and "tanh" in str(warned[0].message) and "layer 0" in str(
        warned[0].message)
    assert warned[0].filename == __file__
    assert sum("saturated" in m for m in history.warnings) == 2
    assert history.activations[0]["1:Dense(16 -> 3)"]["saturated"] is None  # identity


def test_tanh_with_small_weights_is_not_saturated():
    X, y = blobs(64)
    model = make_model(activation="tanh", init=0.01)
    history, caught = fit_recording(make_trainer(model, epochs=1), X, y)
    assert history.activations[0]["0:Dense(8 -> 16, tanh)"]["saturated"] < 0.05
    assert not of_kind(caught, "saturated")


def test_sigmoid_saturation():
    X, y = blobs(64)
    model = make_model(activation="sigmoid", init=100.0)
    history = make_trainer(model, epochs=1).fit(X, y)
    assert history.activations[0]["0:Dense(8 -> 16, sigmoid)"]["saturated"] > 0.95


def test_gradient_statistics_are_recorded():
    X, y = blobs(64)
    model = make_model()
    grads = []

    class LastGradient:
        def on_step(self, trainer, iteration, loss):
            grads.append(trainer.model.layers[1].W.grad.copy())

    history = make_trainer(model, epochs=1, callbacks=[LastGradient()]).fit(X, y)
    recorded = history.gradients[0]["1:Dense(16 -> 3)"]
    assert recorded["mean"] == pytest.approx(float(grads[-1].mean()), rel=1e-6, abs=1e-12)
    assert recorded["std"] == pytest.approx(float(grads[-1].std()), rel=1e-6)


def test_train_validation_gap_is_warned():
    X, y = blobs(90)
    Xv, _ = blobs(90, seed=1)
    yv = np.random.default_rng(5).integers(0, 3, 90)  # random labels: ~1/3 validation accuracy
    history, caught = fit_recording(make_trainer(make_model(), epochs=3), X, y,
                                    validation_data=(Xv, yv))
    assert history.gap[-1] == history.train_accuracy[-1] - history.val_accuracy[-1]
    assert history.gap[-1] > 0.15
    warned = of_kind(caught, "overfitting")
    assert len(warned) == 1 and warned[0].filename == __file__
    assert sum("overfitting" in m for m in history.warnings) == sum(g > 0.15 for g in history.gap)


def test_no_gap_warning_below_the_threshold():
    X, y = blobs(90)
    history, caught = fit_recording(make_trainer(make_model(), epochs=2), X, y,
                                    validation_data=blobs(60, seed=1))
    assert all(abs(g) < 0.15 for g in history.gap)
    assert not of_kind(caught, "overfitting")


def kind_of(message):
    """The kind of a babysitting signal: which figure, about which parameter or layer."""
    ratio = re.search(r"update/weight ratio of (\S+) in layer (\d+):", message)
    if ratio:
        return ("update ratio", f"{ratio.group(2)}.{ratio.group(1)}")
    for text, kind in (("saturated", "saturated"), ("never fired", "dead")):
        if text in message:
            return (kind, re.search(r"layer (\d+)", message).group(1))
    return ("gap",) if "overfitting" in message else (message,)


def test_warnings_once_per_kind_per_fit_all_recorded():
    X, y = blobs(90)
    Xv, _ = blobs(60, seed=1)
    yv = np.random.default_rng(5).integers(0, 3, 60)
    model = make_model(activation="tanh", init=100.0)
    trainer = make_trainer(model, epochs=3)
    history, caught = fit_recording(trainer, X, y, validation_data=(Xv, yv))
    warned = collections.Counter(kind_of(str(w.message)) for w in caught)
    recorded = collections.Counter(kind_of(m) for m in history.warnings)
    assert ("saturated", "0") in warned and ("gap",) in warned
    assert set(warned.values()) == {1}          # each kind warned once
    assert set(recorded) == set(warned)         # every signal recorded ...
    assert recorded[("saturated", "0")] == 3    # ... every epoch it occurred
    assert [str(w.message) for w in caught] == [m for m in history.warnings
                                                if m in {str(w.message) for w in caught}]
    assert all(w.filename == __file__ and w.category is TrainingWarning for w in caught)
    # a second fit warns again
    trainer.epochs = 4
    history, again = fit_recording(trainer, X, y, validation_data=(Xv, yv))
    assert ("saturated", "0") in {kind_of(str(w.message)) for w in again}
    assert collections.Counter(kind_of(m) for m in history.warnings)[("saturated", "0")] == 4


def test_monitor_false_records_no_statistics():
    X, y = blobs(64)
    model = make_model(init=1e-3)
    model.layers[0].b.data[:] = -100.0
    history, caught = fit_recording(make_trainer(model, epochs=2, monitor=False), X, y)
    assert history.update_ratio == history.activations == history.dead_fraction == []
    assert not caught and not history.warnings


# -- early stopping -----------------------------------------------------------------------------

def test_early_stopping_with_min_delta_restores_the_best_epoch():
    X, y = blobs(90)
    Xv, yv = blobs(60, seed=1)
    snapshots = Snapshots()
    model = make_model()
    stopper = fnn.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.9)
    trainer = make_trainer(model, epochs=10, early_stopping=stopper, callbacks=[snapshots])
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    # nothing improves on epoch 1 by more than 0.9: stop after 2 more epochs
    assert history.stop_reason == "early stopping"
    assert history.epochs == [1, 2, 3]
    assert history.best_epoch == 1
    assert_same_state(model, snapshots.states[1])
    assert states_differ(snapshots.states[1], snapshots.states[3])
    assert history.val_accuracy[0] > 0.1


def best_epoch_by_rule(values, min_delta=0.0, maximize=False):
    best, best_epoch = None, None
    for epoch, value in enumerate(values, 1):
        if best is None or (value > best + min_delta if maximize else value < best - min_delta):
            best, best_epoch = value, epoch
    return best_epoch


def overfitting_data():
    """Few samples with random labels, a wide net and a large step: the validation loss turns
    up after a few epochs."""
    r = np.random.default_rng(3)
    X = r.standard_normal((40, 10)).astype(np.float32)
    Xv = r.standard_normal((40, 10)).astype(np.float32)
    return X, r.integers(0, 3, 40), Xv, r.integers(0, 3, 40)


@pytest.mark.parametrize("stopper", [2, fnn.EarlyStopping(patience=2),
                                     fnn.EarlyStopping(monitor="val_loss", patience=3,
                                                       min_delta=0.05)])
def test_early_stopping_on_validation_loss(stopper):
    X, y, Xv, yv = overfitting_data()
    snapshots = Snapshots()
    model = make_model(d=10, hidden=64)
    trainer = make_trainer(model, lr=0.1, batch_size=8, epochs=30, early_stopping=stopper,
                           callbacks=[snapshots])
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    patience = stopper if isinstance(stopper, int) else stopper.patience
    min_delta = 0.0 if isinstance(stopper, int) else stopper.min_delta
    assert history.stop_reason == "early stopping"
    best = best_epoch_by_rule(history.val_loss, min_delta)
    assert history.best_epoch == best
    assert history.epochs[-1] == best + patience < 30
    assert_same_state(model, snapshots.states[best])
    assert states_differ(snapshots.states[best], snapshots.states[history.epochs[-1]])


def test_int_patience_without_validation_monitors_the_training_loss():
    X, y = blobs(64)
    model = make_model()
    optimizer = fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # a good first epoch, then a step so large that the training loss only gets worse
    schedule = lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t == 0 else 200.0)
    trainer = fnn.Trainer(model, optimizer, batch_size=32, epochs=10, schedule=schedule,
                          early_stopping=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit(X, y)
    assert history.best_epoch == best_epoch_by_rule(history.train_loss)
    assert history.stop_reason == "early stopping"


def test_early_stopping_arguments():
    with pytest.raises(ValueError, match="unknown monitor"):
        fnn.EarlyStopping(monitor="val_auc")
    for patience, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError),
                            (True, TypeError)):
        with pytest.raises(error, match="patience must be an integer >= 1"):
            fnn.EarlyStopping(patience=patience)
    assert fnn.EarlyStopping(monitor="train_accuracy").maximize
    assert not fnn.EarlyStopping().maximize


# -- divergence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lr", [1e6, 1e30])
def test_divergence_at_a_huge_learning_rate_restores_the_last_good_parameters(lr):
    X, y = blobs(103)
    model = make_model()
    start = model.state_dict()
    snapshots = Snapshots()
    trainer = make_trainer(model, lr=lr, momentum=0.0, epochs=3, callbacks=[snapshots])
    history, caught = fit_recording(trainer, X, y, validation_data=blobs(30, seed=1))
    assert history.stop_reason.startswith("diverged: the loss became")
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    # the end of the last completed epoch (1e6: epoch 1, whose loss stayed finite), or the start
    assert history.epochs == ([1] if lr == 1e6 else [])
    assert_same_state(model, snapshots.states[1] if history.epochs else start)
    warned = of_kind(caught, "diverged", RuntimeWarning)
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "learning rate" in message
    assert ("epoch 1" if history.epochs else "the start") in message
    assert warned[0].filename == __file__
    assert message in history.warnings
    assert history.stop_reason in message


def test_divergence_in_a_later_epoch_restores_the_last_good_epoch():
    X, y = blobs(103)
    model = make_model()
    optimizer = fnn.optim.SGD(model.parameters(), lr=0.01)
    schedule = lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t < 2 else 1e8)
    snapshots = Snapshots()
    trainer = fnn.Trainer(model, optimizer, batch_size=32, epochs=6, schedule=schedule,
                          callbacks=[snapshots], progress=False)
    history, caught = fit_recording(trainer, X, y)
    assert history.stop_reason.startswith("diverged")
    assert history.lr[:2] == [0.01, 0.01] and 2 < len(history.epochs) < 6
    last = history.epochs[-1]
    assert_same_state(model, snapshots.states[last])
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    warned = of_kind(caught, "diverged", RuntimeWarning)
    assert len(warned) == 1 and f"restored the parameters of epoch {last}" in str(
        warned[0].message)


@pytest.mark.parametrize("failure", ["exception", "divergence", "interrupt"])
def test_a_failed_epoch_leaves_the_optimizer_state_of_the_last_good_one(failure):
    # Adam's moments and step count, not only the parameters, go back to the end of epoch 1:
    # fit can be called again and continues as if the failed epoch had not run.
    X, y = blobs(103)
    model = make_model()
    optimizer = fnn.optim.Adam(model.parameters(), lr=1e-2)
    saved = {}

    class FailInEpochTwo:
        def on_epoch(self, trainer, epoch, history):
            saved[epoch] = (trainer.model.state_dict(), trainer.optimizer.state_dict())

        def on_step(self, trainer, iteration, loss):
            if iteration == 6:  # epoch 2 (4 batches an epoch), after two of its updates
                if failure == "exception":
                    raise RuntimeError("a callback failed")
                if failure == "interrupt":
                    raise KeyboardInterrupt
                trainer.model.layers[0].W.data[0, 0] = np.nan

    trainer = fnn.Trainer(model, optimizer, batch_size=32, epochs=3, progress=False,
                          callbacks=[FailInEpochTwo()])
    if failure == "exception":
        with pytest.raises(RuntimeError, match="a callback failed"):
            trainer.fit(X, y)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(X, y)
    assert list(saved) == [1]
    model_state, optimizer_state = saved[1]
    assert_same_state(model_state, model)
    restored = optimizer.state_dict()
    assert restored["param_groups"] == optimizer_state["param_groups"]
    assert restored["state"].keys() == optimizer_state["state"].keys()
    for i, state in optimizer_state["state"].items():
        assert restored["state"][i].keys() == state.keys()
        for key, value in state.items():
            np.testing.assert_array_equal(restored["state"][i][key], value, err_msg=key)


def test_non_finite_parameters_stop_training():
    """A step that leaves the loss finite but a parameter infinite is caught at the epoch's
    end."""
    X, y = blobs(64)
    model = make_model()
    start = model.state_dict()

    class Poison:
        def on_step(self, trainer, iteration, loss):
            if iteration == 2:
                trainer.model.layers[1].b.data[0] = np.inf  # read by no later loss: last batch

    trainer = make_trainer(model, batch_size=32, epochs=2, callbacks=[Poison()])
    history, caught = fit_recording(trainer, X, y)
    assert history.stop_reason == "diverged: parameters became non-finite at epoch 1"
    assert_same_state(model, start)
    assert of_kind(caught, "diverged", RuntimeWarning)


def test_nan_in_the_training_data_is_refused():
    X, y = blobs(64)
    X[0, 3] = np.nan
    model = make_model()
    with pytest.raises(ValueError, match="NaN or inf"):
        make_trainer(model).fit(X, y)


def last_sample_drawn(n, seed):
    """The sample the trainer's first permutation puts in the last minibatch."""
    order = np.random.default_rng(seed).permutation(n)
    return int(order[-1])


def test_nan_in_the_training_data_is_refused_before_any_step():
    X, y = blobs(64)
    X[last_sample_drawn(64, seed=0), 3] = np.nan
    model = make_model()
    start = model.state_dict()
    trainer = make_trainer(model, batch_size=16, seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        trainer.fit(X, y)
    assert trainer.history.loss == []
    assert_same_state(model, start)


def test_nan_in_the_validation_data_is_refused():
    X, y = blobs(64)
    Xv, yv = blobs(20, seed=1)
    Xv[5, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        make_trainer(make_model()).fit(X, y, validation_data=(Xv, yv))


# -- Ctrl-C -----------------------------------------------------------------------------------

def test_interrupt_in_the_first_epoch_keeps_the_start():
    X, y = blobs(103)
    model = make_model()
    start = model.state_dict()
    trainer = make_trainer(model, epochs=3, callbacks=[InterruptAt(2)])
    history = trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert history.stop_reason == "interrupted"
    assert len(history.loss) == 2 and history.epochs == []
    assert history.best_epoch is None
    assert_same_state(model, start)


def test_interrupt_mid_epoch_keeps_the_best_completed_epoch():
    X, y = blobs(103)
    Xv, yv = blobs(30, seed=1)
    snapshots = Snapshots()
    model = make_model()
    trainer = make_trainer(model, epochs=5, callbacks=[snapshots, InterruptAt(4 * 3 + 2)])
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    assert history.stop_reason == "interrupted"
    assert history.epochs == [1, 2, 3]
    assert len(history.loss) == 14  # the history so far, partial epoch included
    best = best_epoch_by_rule(history.val_loss)
    assert history.best_epoch == best
    assert_same_state(model, snapshots.states[best])


def test_interrupt_inside_an_optimizer_step_never_leaves_a_half_update():
    X, y = blobs(103)
    snapshots = Snapshots()
    model = make_model()
    trainer = make_trainer(model, epochs=3, callbacks=[snapshots])
    step, update, steps = trainer.optimizer.step, trainer.optimizer._update, []

    def counted_step(*args, **kwargs):
        steps.append(len(steps) + 1)
        return step(*args, **kwargs)

    def interrupted_update(p, group, state):
        update(p, group, state)
        # epochs 1 and 2 done (4 steps each), 2 steps of epoch 3 done, the third one has
        # changed parameters (all of them, in one flat update, or the first one) and not returned
        if len(steps) == 2 * 4 + 3:
            raise KeyboardInterrupt

    trainer.optimizer.step, trainer.optimizer._update = counted_step, interrupted_update
    history = trainer.fit(X, y)  # no validation data: the best epoch by training loss
    assert history.stop_reason == "interrupted"
    assert history.epochs == [1, 2]
    best = best_epoch_by_rule(history.train_loss)
    assert history.best_epoch == best
    assert_same_state(model, snapshots.states[best])


# -- EMA and ensembles ---------------------------------------------------------------------------

def test_ema_shadow_is_the_hand_computed_average():
    X, y = blobs(103)
    Xv, yv = blobs(30, seed=1)
    model = make_model(dtype="float64")
    expected = [p.data.copy() for p in model.parameters()]
    raw = []

    class Average:
        def on_step(self, trainer, iteration, loss):
            for shadow, p in zip(expected, trainer.model.parameters()):
                shadow[...] = 0.9 * shadow + 0.1 * p.data
            raw.append([p.data.copy() for p in trainer.model.parameters()])
            assert len(trainer.ema.shadow) == len(expected)
            for shadow, mine in zip(trainer.ema.shadow, expected):
                np.testing.assert_allclose(shadow, mine, rtol=1e-12, atol=1e-15)

    trainer = make_trainer(model, ema=0.9, epochs=2, callbacks=[Average()])
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    assert len(raw) == 8
    # the final model holds the averaged parameters, not the last raw ones
    for p, shadow, last in zip(model.parameters(), expected, raw[-1]):
        np.testing.assert_allclose(p.data, shadow, rtol=1e-12, atol=1e-15)
        assert not np.array_equal(p.data, last)
    # validation used the averaged parameters
    assert (history.val_loss[-1], history.val_accuracy[-1]) == trainer.evaluate(Xv, yv)
    for p, last in zip(model.parameters(), raw[-1]):
        p.data[...] = last
    assert trainer.evaluate(Xv, yv)[0] != history.val_loss[-1]


def test_ema_object_and_applied():
    model = make_model()
    ema = fnn.EMA(model, decay=0.5)
    before = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.data += 2
    ema.update()
    for shadow, old in zip(ema.shadow, before):
        np.testing.assert_allclose(shadow, old + 1, rtol=1e-6)
    with ema.applied():
        for p, old in zip(model.parameters(), before):
            np.testing.assert_allclose(p.data, old + 1, rtol=1e-6)
    for p, old in zip(model.parameters(), before):
        np.testing.assert_allclose(p.data, old + 2, rtol=1e-6)
    for decay in (0.0, 1.0, -0.5, 2):
        with pytest.raises(ValueError, match="decay"):
            fnn.EMA(model, decay)


def test_ensemble_averages_probabilities():
    X, _ = blobs(20)
    models = [make_model(seed=s) for s in range(3)]
    ensemble = fnn.Ensemble(models)
    proba = ensemble.predict_proba(X)
    expected = np.mean([m.predict_proba(X) for m in models], axis=0)
    np.testing.assert_allclose(proba, expected, rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(ensemble.predict(X), expected.argmax(axis=1))
    # the average is not a vote: some sample where it differs from member 0 makes it real
    assert not np.allclose(proba, models[0].predict_proba(X))
    with pytest.raises(ValueError, match="at least one model"):
        fnn.Ensemble([])


def test_ensemble_of_checkpoints(tmp_path):
    X, y = blobs(103)
    paths = []

    class Keep:
        def on_epoch(self, trainer, epoch, history):
            paths.append(tmp_path / f"epoch{epoch}.npz")
            fnn.save(trainer.model, paths[-1])

    make_trainer(make_model(), epochs=2, callbacks=[Keep()]).fit(X, y)
    members = [fnn.load(p) for p in paths]
    ensemble = fnn.Ensemble(members)
    np.testing.assert_allclose(ensemble.predict_proba(X),
                               (members[0].predict_proba(X) + members[1].predict_proba(X)) / 2,
                               rtol=1e-6)


# -- checkpoints and resuming --------------------------------------------------------------------

def test_checkpoints_are_written_after_every_epoch(tmp_path):
    X, y = blobs(90)
    Xv, yv = blobs(30, seed=1)
    last, best = tmp_path / "last.npz", tmp_path / "best.npz"
    seen = []

    class Check:
        def on_epoch(self, trainer, epoch, history):
            checkpoint = fnn.load_checkpoint(last)
            seen.append(checkpoint.extra["trainer"]["epoch"])
            assert_same_state(checkpoint.model, trainer.model)
            assert best.exists()

    snapshots = Snapshots()
    model = make_model()
    trainer = make_trainer(model, epochs=3, checkpoint=last, best_checkpoint=best,
                           callbacks=[Check(), snapshots])
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    assert seen == [1, 2, 3]
    assert_same_state(fnn.load(last), model)
    checkpoint = fnn.load_checkpoint(last)
    assert isinstance(checkpoint.optimizer, fnn.optim.SGD)
    assert checkpoint.optimizer.param_groups[0]["momentum"] == 0.9
    best_model = fnn.load(best)
    assert_same_state(best_model, snapshots.states[history.best_epoch])
    assert fnn.load_checkpoint(best).extra["trainer"]["epoch"] == history.best_epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "last.npz"]  # no temp files


def test_best_checkpoint_with_ema_holds_the_averaged_parameters(tmp_path):
    X, y = blobs(90)
    best = tmp_path / "best.npz"
    model = make_model()
    trainer = make_trainer(model, ema=0.9, epochs=1, best_checkpoint=best)
    trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert_same_state(fnn.load(best), model)


def resumable_model(seed=5):
    return fnn.Sequential(fnn.Dense(8, 16, activation="relu"), fnn.BatchNorm(16),
                          fnn.Dropout(0.3), fnn.Dense(16, 3), seed=seed)


OPTIMIZERS = {
    "sgd_momentum": lambda ps: fnn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: fnn.optim.Adam(ps, lr=1e-2),
}


def run_with_copy(tmp_path, make, epochs, copy_at, model_seed=5, **kwargs):
    """An uninterrupted run that writes a checkpoint every epoch; the checkpoint of epoch
    `copy_at` is copied aside (what a crash would have left)."""
    model = make(model_seed)
    last, copy = tmp_path / "last.npz", tmp_path / f"epoch{copy_at}.npz"

    class CopyAside:
        def on_epoch(self, trainer, epoch, history):
            if epoch == copy_at:
                shutil.copy(last, copy)

    trainer = build_trainer(model, epochs, checkpoint=last, callbacks=[CopyAside()], **kwargs)
    X, y = blobs(103)
    history = trainer.fit(X, y, validation_data=blobs(30, seed=1))
    return model, history, copy


def build_trainer(model, epochs, optimizer="sgd_momentum", **kwargs):
    opt = OPTIMIZERS[optimizer](model.parameters())
    schedule = lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return fnn.Trainer(model, opt, batch_size=32, epochs=epochs, schedule=schedule,
                       regularization=fnn.regularization.L2(1e-3), seed=3, progress=False,
                       **kwargs)


@pytest.mark.parametrize("optimizer, ema", [("sgd_momentum", None), ("adam", None),
                                            ("sgd_momentum", 0.9)])
def test_resume_equals_the_uninterrupted_run(optimizer, ema, tmp_path):
    model, history, copy = run_with_copy(tmp_path, resumable_model, 4, 2, optimizer=optimizer,
                                         ema=ema)
    assert history.stop_reason == "completed"

    fresh = resumable_model(seed=5)
    trainer = build_trainer(fresh, 4, optimizer=optimizer, ema=ema,
                            checkpoint=tmp_path / "resumed.npz")
    assert trainer.resume(copy) is trainer
    assert trainer.epoch == 2 and trainer.history.epochs == [1, 2]
    X, y = blobs(103)
    resumed = trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert resumed.epochs == [1, 2, 3, 4]
    assert history_without_timing(resumed) == history_without_timing(history)
    assert_same_state(fresh, model)
    assert fresh.layers[2].step == model.layers[2].step == 16  # Dropout's mask stream
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
        OPTIMIZERS[optimizer](fresh.parameters()).param_groups[0]["lr"] * 0.7 ** 4)


def test_resume_continues_the_dropout_stream_of_an_unseeded_model(tmp_path):
    model, history, copy = run_with_copy(tmp_path, lambda s: resumable_model(seed=None), 3, 1)
    fresh = resumable_model(seed=None)
    trainer = build_trainer(fresh, 3).resume(copy)
    X, y = blobs(103)
    trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert_same_state(fresh, model)


def test_resume_then_early_stopping_restores_the_best_epoch(tmp_path):
    stopper = fnn.EarlyStopping(monitor="val_accuracy", patience=3, min_delta=0.9)
    model, history, copy = run_with_copy(tmp_path, resumable_model, 10, 2,
                                         early_stopping=stopper)
    assert history.stop_reason == "early stopping" and history.best_epoch == 1
    fresh = resumable_model(seed=5)
    trainer = build_trainer(fresh, 10, early_stopping=stopper).resume(copy)
    X, y = blobs(103)
    resumed = trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert resumed.best_epoch == 1 and resumed.epochs == [1, 2, 3, 4]
    assert_same_state(fresh, model)


def test_resume_from_the_last_checkpoint_of_a_finished_run_does_nothing_more(tmp_path):
    model, history, _ = run_with_copy(tmp_path, resumable_model, 2, 2)
    fresh = resumable_model(seed=9)
    trainer = build_trainer(fresh, 2).resume(tmp_path / "last.npz")
    X, y = blobs(103)
    again = trainer.fit(X, y)
    assert again.epochs == [1, 2] and len(again.loss) == 8
    assert_same_state(fresh, model)


def test_resume_refuses_a_corrupted_checkpoint(tmp_path):
    _, _, copy = run_with_copy(tmp_path, resumable_model, 1, 1)
    data = bytearray(copy.read_bytes())
    for position in (len(data) // 3, len(data) // 2):
        data[position] ^= 0xFF
    copy.write_bytes(bytes(data[:-100]))
    trainer = build_trainer(resumable_model(), 2)
    with pytest.raises(ValueError) as info:
        trainer.resume(copy)
    assert str(copy) in str(info.value)
    assert "truncated or corrupted" in str(info.value)
    assert trainer.epoch == 0 and trainer.history.epochs == []


def test_resume_refuses_a_model_file(tmp_path):
    path = tmp_path / "model.npz"
    fnn.save(resumable_model(), path)
    trainer = build_trainer(resumable_model(seed=6), 2)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        trainer.resume(path)


def test_a_refused_resume_leaves_the_model_untouched(tmp_path):
    path = tmp_path / "model.npz"
    fnn.save(resumable_model(seed=1), path)
    model = resumable_model(seed=6)
    before = model.state_dict()
    with pytest.raises(ValueError, match="not a training checkpoint"):
        build_trainer(model, 2).resume(path)
    assert_same_state(model, before)


# -- compute dtype -------------------------------------------------------------------------------

EMULATED = "ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning"


@pytest.mark.filterwarnings(EMULATED)
def test_compute_dtype_is_set_on_the_model_before_the_first_step():
    X, y = blobs(103)
    runs = {}
    for own, asked in (("float32", "bfloat16"), ("bfloat16", None), ("bfloat16", "float32"),
                       ("float32", None)):
        model = make_model()
        model.compute_dtype = own
        trainer = make_trainer(model, epochs=2, compute_dtype=asked)
        assert model.compute_dtype == own  # set by fit, not by the constructor
        history = trainer.fit(X, y)
        assert history.stop_reason == "completed"
        assert model.compute_dtype == (asked or own)
        runs[own, asked] = model.state_dict()
    # the trainer's compute dtype trains as the model's own would, from the first step on
    assert_same_state(runs["float32", "bfloat16"], runs["bfloat16", None])
    assert_same_state(runs["bfloat16", "float32"], runs["float32", None])


@pytest.mark.parametrize("value, error, match", [
    ("float16", ValueError, "Trainer: compute_dtype must be one of 'float32', 'bfloat16', got "
                            "'float16'"),
    ("bf16", ValueError, "Trainer: compute_dtype must be one of"),
    (16, TypeError, r"Trainer: compute_dtype must be None \(the model's own\) or one of"),
    (np.float32, TypeError, "Trainer: compute_dtype must be None"),
])
def test_bad_compute_dtype(value, error, match):
    model = make_model()
    with pytest.raises(error, match=match):
        make_trainer(model, compute_dtype=value)
    assert model.compute_dtype == "float32"


def test_bfloat16_compute_on_a_float64_model_is_refused_up_front():
    model = make_model(dtype="float64")
    with pytest.raises(ValueError, match="Trainer: compute_dtype='bfloat16' needs "
                                         "dtype='float32'.*got dtype='float64'"):
        make_trainer(model, compute_dtype="bfloat16")
    make_trainer(model, compute_dtype="float32").fit(*blobs(40))
    assert model.compute_dtype == "float32"


@pytest.mark.filterwarnings(EMULATED)
def test_resume_takes_the_runs_compute_dtype_and_refuses_another(tmp_path):
    model, history, copy = run_with_copy(tmp_path, resumable_model, 3, 1,
                                         compute_dtype="bfloat16")
    assert model.compute_dtype == "bfloat16"
    refused = resumable_model(seed=6)
    before = refused.state_dict()
    with pytest.raises(ValueError, match="trained with compute_dtype 'bfloat16', this Trainer "
                                         "has compute_dtype 'float32'"):
        build_trainer(refused, 3, compute_dtype="float32").resume(copy)
    assert_same_state(refused, before)
    assert refused.compute_dtype == "float32"
    fresh = resumable_model(seed=6)
    trainer = build_trainer(fresh, 3).resume(copy)
    assert fresh.compute_dtype == "bfloat16"
    X, y = blobs(103)
    resumed = trainer.fit(X, y, validation_data=blobs(30, seed=1))
    assert history_without_timing(resumed) == history_without_timing(history)
    assert_same_state(fresh, model)


# -- callbacks -----------------------------------------------------------------------------------

def test_callbacks_once_per_step_and_once_per_epoch():
    X, y = blobs(103)
    steps, epochs = [], []

    class Both:
        def on_step(self, trainer, iteration, loss):
            steps.append((trainer, iteration, loss))

        def on_epoch(self, trainer, epoch, history):
            epochs.append((trainer, epoch, history, len(history.epochs)))

    class OnlyEpoch:
        count = 0

        def on_epoch(self, trainer, epoch, history):
            OnlyEpoch.count += 1

    trainer = make_trainer(make_model(), epochs=3, callbacks=[Both(), OnlyEpoch(), object()])
    history = trainer.fit(X, y)
    assert [s[1] for s in steps] == list(range(1, 13))
    assert [s[2] for s in steps] == history.loss
    assert all(s[0] is trainer for s in steps)
    assert [(e[1], e[3]) for e in epochs] == [(1, 1), (2, 2), (3, 3)]
    assert all(e[0] is trainer and e[2] is history for e in epochs)
    assert OnlyEpoch.count == 3


# -- output ------------------------------------------------------------------------------------

def test_progress_false_prints_nothing(capsys):
    X, y = blobs(64)
    model = make_model(init=1e-3)
    model.layers[0].b.data[:] = -100.0  # warnings go through `warnings`, not print
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_trainer(model, epochs=2, progress=False, early_stopping=1).fit(
            X, y, validation_data=blobs(20, seed=1))
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_true_prints_one_line_per_epoch(capsys):
    pytest.importorskip("tqdm")
    X, y = blobs(64)
    Xv, yv = blobs(20, seed=1)
    history = make_trainer(make_model(), epochs=3, progress=True).fit(X, y,
                                                                      validation_data=(Xv, yv))
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {epoch:3d}/3")
        for part in ("loss", "train acc", "val loss", "val acc", "lr", "ms"):
            assert part in line
        assert f"val acc {history.val_accuracy[epoch - 1]:.4f}" in line


def test_progress_without_tqdm_prints_the_epoch_lines(monkeypatch, capsys):
    # A bare install (no tqdm) trains and reports exactly as with tqdm: one line per epoch.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = blobs(64)
    history = make_trainer(make_model(), progress=True, epochs=2).fit(X, y)
    assert history.stop_reason == "completed"
    lines = capsys.readouterr().out.splitlines()
    assert [line[:11] for line in lines] == ["epoch   1/2", "epoch   2/2"]
    assert all("loss" in line and "ms" in line for line in lines)


# -- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": -3}, "batch_size must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ({"batch_size": True}, "batch_size must be an integer >= 1"),
    ({"epochs": -1}, "epochs must be an integer >= 0"),
    ({"epochs": 1.0}, "epochs must be an integer >= 0"),
    ({"loss": "cross_entropy"}, "unknown loss 'cross_entropy'"),
])
def test_bad_arguments(kwargs, match):
    # a wrong type (2.5, True) is a TypeError, a value out of range a ValueError
    with pytest.raises((ValueError, TypeError), match=match):
        make_trainer(make_model(), **kwargs)


def test_bad_data():
    X, y = blobs(64)
    trainer = make_trainer(make_model())
    with pytest.raises(ValueError, match="training data has 64 samples but 63 labels"):
        trainer.fit(X, y[:63])
    with pytest.raises(ValueError, match="validation_data has 20 samples but 19 labels"):
        trainer.fit(X, y, validation_data=(X[:20], y[:19]))
    with pytest.raises(ValueError, match=r"non-empty \(N, D\) array"):
        trainer.fit(X[0], y[:1])
    with pytest.raises(ValueError, match=r"non-empty \(N, D\) array"):
        trainer.fit(X[:0], y[:0])
    assert trainer.history.loss == [] and trainer.epoch == 0


def test_zero_epochs_trains_nothing():
    X, y = blobs(64)
    model = make_model()
    start = model.state_dict()
    history = make_trainer(model, epochs=0).fit(X, y)
    assert history.stop_reason == "completed" and history.loss == [] and history.epochs == []
    assert_same_state(model, start)


def test_the_trainer_takes_the_compiled_step_with_the_same_results(monkeypatch):
    """On the compiled backend the trainer's steps go through model.forward_backward's compiled
    path (fastnn._step) for a Dense/BatchNorm/ReLU/Dropout model, with the numbers of the
    layer-by-layer path: history and weights alike, bit for bit in float64."""
    from fastnn import _step
    if fnn.get_backend() != "cython" or _step.step_module() is None:
        pytest.skip("the compiled step runs on the compiled backend only")
    X, y = blobs(103)
    Xv, yv = blobs(40, seed=1)

    def fit():
        model = fnn.Sequential(fnn.Dense(8, 16), fnn.BatchNorm(16), fnn.ReLU(), fnn.Dropout(0.2),
                               fnn.Dense(16, 3), dtype="float64", seed=0)
        trainer = make_trainer(model, regularization=fnn.regularization.L2(1e-3),
                               constraint=fnn.regularization.MaxNorm(3.0))
        return trainer.fit(X, y, validation_data=(Xv, yv)), model

    compiled_history, compiled_model = fit()
    assert compiled_model._compiled.plan is not None
    monkeypatch.setattr(_step, "_module", False)  # as if the GEMMs had not been found
    layered_history, layered_model = fit()
    assert layered_model._compiled.plan is None
    assert history_without_timing(compiled_history) == history_without_timing(layered_history)
    assert_same_state(compiled_model, layered_model)
