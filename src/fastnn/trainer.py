"""Minibatch training that babysits the learning process (the CS231n notes' checklist).

    trainer = fnn.Trainer(model, fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                          loss="softmax_cross_entropy", batch_size=64, epochs=30, seed=0)
    history = trainer.fit(X, y, validation_data=(Xv, yv))

What it watches, per epoch, in `history` (and warns about when it signals trouble):
- data loss per iteration, regularization loss, train/validation loss and accuracy, learning rate;
- the ratio of update magnitude to weight magnitude per parameter (the notes' ~1e-3 rule);
- activation and gradient statistics per layer, with the saturated fraction of tanh/sigmoid units;
- the fraction of dead ReLU units per layer (units that never fired on the epoch's data);
- the train/validation accuracy gap.
Nothing is lost: early stopping restores the best epoch's parameters; a non-finite loss,
gradient or parameter stops training and restores the last good parameters; Ctrl-C ends `fit`
cleanly with the best parameters and the history so far; any other exception restores the
parameters of the last completed epoch, records itself in history.stop_reason and propagates.
"""
import contextlib
import math
import numbers
import signal
import sys
import threading
import time
import warnings

import numpy as np

from . import losses as _losses
from ._kernels._checks import as_binary_labels, as_labels
from ._validation import _is_bool, check_bool, check_float, check_int
from .augment import RandomFlipCrop
from .layers import Activation, BatchNorm, Dense

CLASSIFICATION = ("softmax_cross_entropy", "multiclass_hinge", "svm")


class TrainingWarning(UserWarning):
    """A babysitting signal from Trainer.fit (filter with warnings.simplefilter)."""
BINARY = ("binary_logistic", "binary_hinge")


class History:
    """What `Trainer.fit` recorded. Per iteration: `loss` (data loss), `reg_loss`. Per epoch (one
    entry per completed epoch): `epochs`, `train_loss`, `train_accuracy`, `val_loss`,
    `val_accuracy`, `gap` (train minus validation accuracy: large means overfitting), `lr`,
    `time`, `update_ratio` ({parameter: ratio}), `activations` and
    `gradients` ({layer: {mean, std, saturated}}), `dead_fraction` ({layer: fraction}).
    `best_epoch`, `stop_reason` ("completed", "early stopping", "diverged: ...", "interrupted",
    "error: <exception>"),
    `warnings` (the messages warned), `wall_time`."""

    PER_EPOCH = ("epochs", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "gap", "lr",
                 "time", "update_ratio", "activations", "gradients", "dead_fraction")

    def __init__(self):
        self.loss, self.reg_loss = [], []
        for key in self.PER_EPOCH:
            setattr(self, key, [])
        self.best_epoch = None
        self.stop_reason = None
        self.warnings = []
        self.wall_time = 0.0

    def to_dict(self):
        return {key: value for key, value in vars(self).items()}

    @classmethod
    def from_dict(cls, state):
        history = cls()
        vars(history).update(state)
        return history

    def plot(self, path):
        """Write `<path>-loss.png` (data loss per iteration and a smoothed line) and
        `<path>-accuracy.png` (train and validation accuracy per epoch); return the two paths.
        Needs matplotlib (the `plot` extra)."""
        from .plotting import plot_history
        return plot_history(self, path)

    def __repr__(self):
        last = f", last val acc {self.val_accuracy[-1]:.4f}" if self.val_accuracy and \
            self.val_accuracy[-1] is not None else ""
        return (f"History({len(self.epochs)} epochs, {len(self.loss)} iterations{last}, "
                f"stop: {self.stop_reason})")


class EarlyStopping:
    """Stop when `monitor` ("val_loss", "val_accuracy", "train_loss") has not improved by more
    than `min_delta` for `patience` epochs; the best epoch's parameters are restored."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0):
        if monitor not in ("val_loss", "val_accuracy", "train_loss", "train_accuracy"):
            raise ValueError(f"EarlyStopping: unknown monitor {monitor!r}")
        patience = check_int("EarlyStopping: patience", patience, low=1)
        min_delta = check_float("EarlyStopping: min_delta", min_delta, low=0.0)
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta

    @property
    def maximize(self):
        return self.monitor.endswith("accuracy")


class EMA:
    """Exponential moving average of a model's parameters (Polyak averaging with decay):
    shadow = decay * shadow + (1 - decay) * param after every update. `with ema.applied():`
    swaps the averaged parameters in (for evaluation) and back."""

    def __init__(self, model, decay=0.999):
        self.decay = check_float("EMA: decay", decay, 0.0, 1.0, low_open=True, high_open=True)
        self.params = model.parameters()
        self.shadow = [p.data.copy() for p in self.params]

    def update(self):
        keep = 1.0 - self.decay
        for shadow, p in zip(self.shadow, self.params):
            shadow += p.dtype.type(keep) * (p.data - shadow)

    def applied(self):
        ema = self

        class _Swap:
            def __enter__(self):
                self.saved = [p.data.copy() for p in ema.params]
                for shadow, p in zip(ema.shadow, ema.params):
                    p.data[...] = shadow

            def __exit__(self, *exc):
                for saved, p in zip(self.saved, ema.params):
                    p.data[...] = saved

        return _Swap()


class Ensemble:
    """Averages the predicted class probabilities of several models (independent seeds, or
    checkpoints of one run loaded with fastnn.load)."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise ValueError("Ensemble needs at least one model")

    def predict_proba(self, X):
        return sum(m.predict_proba(X) for m in self.models) / len(self.models)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives in the block until the block has finished, then
    deliver it, so that a checkpoint write is completed rather than cut short. Only in the main
    thread (the one Python delivers signals to) and only over Python's own SIGINT handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def _caller_level():
    """The warnings stacklevel of the first frame outside fastnn (the user's call to fit)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastnn."):
        frame, level = frame.f_back, level + 1
    return level


def accuracy(loss_name, scores, y):
    """Fraction correct for classification losses, None for regression."""
    if loss_name in CLASSIFICATION:
        # count_nonzero, not np.mean, whose overhead outweighs the rest on a minibatch
        return np.count_nonzero(scores.argmax(axis=1) == y) / len(y)
    if loss_name in BINARY:
        predicted = scores.reshape(-1) > 0
        return float(np.mean(predicted == (np.asarray(y).reshape(-1) > 0)))
    return None


def _effective_activation(layer):
    if isinstance(layer, Dense):
        return layer.epilogue[0]
    if isinstance(layer, Activation) and not layer.fused:
        return layer.activation
    return None


def _saturated(activation, A):
    if activation == "tanh":
        return float(np.mean(np.abs(A) > 0.99))
    if activation == "sigmoid":
        return float(np.mean((A < 0.01) | (A > 0.99)))
    return None


def _check_arguments(model, optimizer, schedule, regularization, constraint):
    """Trainer's collaborators are checked for what the loop calls on them, before any epoch."""
    if not callable(getattr(model, "parameters", None)) or not hasattr(model, "train_step"):
        raise TypeError(f"Trainer: model must be a fastnn Sequential, got {type(model).__name__}")
    if not callable(getattr(optimizer, "step", None)) or \
            not hasattr(optimizer, "param_groups"):
        raise TypeError("Trainer: optimizer must be a fastnn optimizer (e.g. fastnn.optim.SGD("
                        f"model.parameters(), lr=0.01)), got {optimizer!r}")
    if schedule is not None and not callable(getattr(schedule, "step", None)):
        raise TypeError("Trainer: schedule must be None or a learning-rate schedule from "
                        "fastnn.optim.lr_scheduler (e.g. CosineAnnealingLR(optimizer, T_max=10)), "
                        f"got {schedule!r}")
    for name, value, example in (("regularization", regularization, "L2(1e-3)"),
                                 ("constraint", constraint, "MaxNorm(3.0)")):
        if value is not None and not callable(value):
            raise TypeError(f"Trainer: {name} must be None or a penalty from "
                            f"fastnn.regularization (e.g. fastnn.regularization.{example}), got "
                            f"{value!r}")


_SCHEDULE_STATE = ("optimizer", "lr_lambda", "schedulers", "last_epoch", "base_lrs",
                   "_last_lr")


def _schedule_config(schedule):
    """What fixes a schedule's learning rates apart from its position: class and settings,
    children's too (JSON values, for checkpoints). None without a schedule."""
    if schedule is None:
        return None
    config = {"class": type(schedule).__name__}
    for key, value in vars(schedule).items():
        if key not in _SCHEDULE_STATE and isinstance(value, (int, float, str, bool, list)):
            config[key] = value
    if getattr(schedule, "schedulers", None):
        config["schedulers"] = [_schedule_config(child) for child in schedule.schedulers]
    return config


def _describe_schedule(config):
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("class", "schedulers"))
    children = "; ".join(_describe_schedule(c) for c in config.get("schedulers", []))
    inner = "; ".join(part for part in (settings, children) if part)
    return f"{config['class']}({inner})"


class Trainer:
    """Minibatch training of a Sequential with any optimizer, loss, schedule and regularization.

    model, optimizer: a fastnn Sequential and an optimizer over its parameters.
    loss: a function from fastnn.losses or its name.
    schedule: an lr_scheduler, stepped once per epoch.
    regularization: a penalty from fastnn.regularization (L2, L1, ElasticNet), or None;
    constraint: e.g. fastnn.regularization.MaxNorm(c), applied after every update.
    early_stopping: an EarlyStopping, or an int patience (monitoring val_loss when validation
    data is given, train_loss otherwise).
    ema: a decay (e.g. 0.999) to keep an exponential moving average of the parameters; the
    averaged parameters are the ones validated, kept as the best epoch's, and left in the model
    at the end.
    checkpoint / best_checkpoint: paths where the latest state (for resuming) and the best epoch
    are saved, atomically, after each epoch.
    seed: seeds the shuffling: the same seed gives the same run on the same backend and threads.
    drop_last: drop the last minibatch of each epoch when it is smaller than batch_size. With
    the default False, it is trained on, except that a last batch of one sample in a model with
    BatchNorm (which cannot train on one sample) joins the batch before it.
    shuffle: reshuffle the samples every epoch (False: minibatches in the data's order).
    augment: None, or a callable applied to each training minibatch's inputs (not the labels,
    not validation data), e.g. fastnn.augment.RandomFlipCrop(image_shape=(3, 32, 32)); its
    draws are saved in checkpoints when it has get_state()/set_state().
    progress: one line per epoch (loss, accuracies, learning rate, time), and a tqdm bar over
    the epoch's minibatches when tqdm (the `progress` extra) is installed; False for quiet.
    callbacks: objects with optional on_step(trainer, iteration, loss) and
    on_epoch(trainer, epoch, history) methods.
    monitor: collect the babysitting statistics (update ratios, activation and gradient
    statistics, dead units); `update_ratio_range` (default: two orders of magnitude either side
    of the notes' 1e-3), `dead_threshold` and `gap_threshold` set when they warn.
    """

    def __init__(self, model, optimizer, loss="softmax_cross_entropy", batch_size=64, epochs=10,
                 schedule=None, regularization=None, constraint=None, early_stopping=None,
                 ema=None, checkpoint=None, best_checkpoint=None, seed=0, progress=True,
                 callbacks=(), monitor=True, update_ratio_range=(1e-5, 1e-1),
                 dead_threshold=0.5, gap_threshold=0.15, drop_last=False, shuffle=True,
                 augment=None):
        batch_size = check_int("Trainer: batch_size", batch_size, low=1)
        epochs = check_int("Trainer: epochs", epochs, low=0)
        _check_arguments(model, optimizer, schedule, regularization, constraint)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            if _is_bool(early_stopping) or not isinstance(early_stopping, numbers.Integral):
                raise TypeError("Trainer: early_stopping must be None, an EarlyStopping or an "
                                f"integer patience >= 1, got {early_stopping!r}")
            early_stopping = check_int("Trainer: early_stopping (patience)", early_stopping,
                                       low=1)
        if ema is not None and ema is not False and ema != 0:
            ema = check_float("Trainer: ema (decay)", ema, 0.0, 1.0, low_open=True,
                              high_open=True)
        if seed is not None:
            seed = check_int("Trainer: seed", seed, low=0)
        shuffle = check_bool("Trainer: shuffle", shuffle)
        self.model, self.optimizer = model, optimizer
        self.loss_fn = _losses.get(loss)
        self.loss_name = loss if isinstance(loss, str) else loss.__name__
        self.batch_size, self.epochs = batch_size, epochs
        self.schedule, self.regularization, self.constraint = schedule, regularization, constraint
        self.early_stopping = early_stopping  # an int becomes an EarlyStopping in fit
        self.ema = EMA(model, ema) if ema else None
        self.checkpoint, self.best_checkpoint = checkpoint, best_checkpoint
        self.seed = seed
        self.progress = progress
        self.callbacks = list(callbacks)
        self.monitor = monitor
        if not isinstance(update_ratio_range, (tuple, list)) or len(update_ratio_range) != 2:
            raise TypeError(f"Trainer: update_ratio_range must be a pair (low, high), got "
                            f"{update_ratio_range!r}")
        update_ratio_range = tuple(
            check_float(f"Trainer: update_ratio_range[{i}]", v, low=0.0, finite=False)
            for i, v in enumerate(update_ratio_range))
        # (inf turns a warning off)
        dead_threshold = check_float("Trainer: dead_threshold", dead_threshold, low=0.0,
                                     finite=False)
        gap_threshold = check_float("Trainer: gap_threshold", gap_threshold, low=0.0,
                                    finite=False)
        self.update_ratio_range, self.dead_threshold = update_ratio_range, dead_threshold
        self.gap_threshold = gap_threshold
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"Trainer: drop_last must be True or False, got {drop_last!r}")
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        if augment is not None and not callable(augment):
            raise TypeError(f"Trainer: augment must be None or a callable on a batch (e.g. "
                            f"fastnn.augment.RandomFlipCrop), got {type(augment).__name__}")
        self.augment = augment
        self.classifier = self.loss_name in CLASSIFICATION + BINARY
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self._best = None  # (metric, epoch, state_dict)

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, X, y, batch_size=4096):
        """(mean data loss, accuracy or None) in inference mode."""
        scores = self.model._predict_scores(np.asarray(X), batch_size)
        loss, _ = self.loss_fn(scores, y)
        return float(loss), accuracy(self.loss_name, scores, y)

    def _validate(self, validation_data):
        if validation_data is None:
            return None, None
        if self.ema is not None:
            with self.ema.applied():
                return self.evaluate(*validation_data)
        return self.evaluate(*validation_data)

    def _evaluated_state(self):
        """The parameters evaluation uses: the moving average with ema, the model's otherwise."""
        if self.ema is None:
            return self.model.state_dict()
        with self.ema.applied():
            return self.model.state_dict()

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train for the remaining epochs; returns the History (also `trainer.history`).
        sample_weight (N,), >= 0: each sample's loss is weighted by it (fastnn.losses.weighted);
        validation is unweighted."""
        if y is None:
            raise TypeError("Trainer.fit: y (the targets) must be an array with one entry per "
                            "sample, got None")
        if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or
                                            len(validation_data) != 2):
            raise TypeError("Trainer.fit: validation_data must be None or a pair (X, y), got "
                            f"{type(validation_data).__name__}")
        X, y = self._check_data(X, y, "training data")
        if sample_weight is not None:
            sample_weight = _losses.check_sample_weight("Trainer", sample_weight, X.shape[0])
        if validation_data is not None:
            validation_data = self._check_data(*validation_data, "validation data")
        features = getattr(self.augment, "features", None)
        if features is not None and features != X.shape[1]:
            raise ValueError(f"Trainer: augment {self.augment!r} takes {features} features per "
                             f"sample, the training data has {X.shape[1]}")
        if isinstance(self.early_stopping, int) and not isinstance(self.early_stopping, bool):
            monitor = "val_loss" if validation_data is not None else "train_loss"
            self.early_stopping = EarlyStopping(monitor, patience=self.early_stopping)
        if self.early_stopping is not None and validation_data is None and \
                self.early_stopping.monitor.startswith("val"):
            raise ValueError(f"Trainer: early stopping monitors {self.early_stopping.monitor}, "
                             "but fit got no validation_data")
        if not self._batches(X.shape[0]):
            raise ValueError(f"Trainer: {X.shape[0]} training samples make no minibatch that "
                             f"can train (batch_size={self.batch_size}, drop_last="
                             f"{self.drop_last}, BatchNorm needs 2 samples)")
        history = self.history
        started = time.perf_counter()
        last_good = self.model.state_dict()
        self._warned = set()
        # Overflow on the way to divergence is detected and reported below; NumPy's own
        # floating-point warnings would only repeat it.
        errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        errstate.__enter__()
        try:
            while self.epoch < self.epochs:
                diverged = self._run_epoch(X, y, validation_data, sample_weight)
                if diverged:
                    self.model.load_state_dict(last_good)
                    history.stop_reason = diverged
                    lr = self.optimizer.param_groups[0]["lr"]
                    self._warn(f"{diverged}; restored the parameters of "
                               f"{'epoch ' + str(self.epoch) if self.epoch else 'the start'}. "
                               f"Lower the learning rate (lr = {lr:g}) or check the data.",
                               RuntimeWarning, kind="diverged")
                    break
                last_good = self.model.state_dict()
                if self._should_stop():
                    history.stop_reason = "early stopping"
                    break
            else:
                history.stop_reason = "completed"
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
            # A step may have been cut short mid-update: never keep its parameters.
            self.model.load_state_dict(self._best[2] if self._best else last_good)
        except BaseException as error:
            history.stop_reason = f"error: {type(error).__name__}: {error}"
            self.model.load_state_dict(last_good)
            raise
        finally:
            errstate.__exit__(None, None, None)
            history.wall_time += time.perf_counter() - started
        if history.stop_reason in ("early stopping", "completed"):
            if self.early_stopping is not None and self._best is not None:
                self.model.load_state_dict(self._best[2])
            elif self.ema is not None:
                self.model.load_state_dict(self._evaluated_state())
        history.best_epoch = self._best[1] if self._best else None
        if self._best is not None and history.stop_reason in ("early stopping", "interrupted"):
            self._say(f"restored the parameters of epoch {self._best[1]} (best "
                      f"{self._monitor_name()} {self._best[0]:.4f})")
        return history

    def _check_data(self, X, y, what):
        """The whole data set is checked once, before the first step: bad data must not stop a
        run halfway, leaving a half-trained model."""
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"Trainer: {what} must be a non-empty (N, D) array, got shape "
                             f"{X.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Trainer: {what} has {X.shape[0]} samples but {y.shape[0]} labels")
        if X.dtype.kind not in "fiub":
            raise TypeError(f"Trainer: {what} must hold real numbers, got dtype {X.dtype}")
        if not np.isfinite(X).all():
            raise ValueError(f"Trainer: {what} contains NaN or inf")
        if self.loss_name in CLASSIFICATION:
            as_labels(f"Trainer ({what})", y, len(y), self.model.out_features)
        elif self.loss_name in BINARY:
            as_binary_labels(f"Trainer ({what})", y, len(y),
                             0 if self.loss_name == "binary_logistic" else -1)
        elif y.dtype.kind in "fiub" and not np.isfinite(y).all():
            raise ValueError(f"Trainer: {what} has NaN or inf targets")
        return X, y

    def _run_epoch(self, X, y, validation_data, sample_weight=None):
        """One pass over shuffled minibatches; returns a divergence message or None."""
        history, model = self.history, self.model
        epoch = self.epoch + 1
        started = time.perf_counter()
        order = self.rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
        bounds = self._batches(X.shape[0])
        n_batches = len(bounds)
        relu_layers = [l for l in model.layers if _effective_activation(l) == "relu"] \
            if self.monitor else []
        fired = {}  # per ReLU layer: which units fired at least once this epoch
        total_loss, correct, seen = 0.0, 0.0, 0
        model.train()
        bar = self._progress_bar(n_batches, epoch)
        try:
            for b, (start, stop) in enumerate(bounds):
                batch = order[start:stop]
                Xb, yb = X[batch], y[batch]
                if self.augment is not None:
                    Xb = self._augmented(Xb)
                loss_fn = self.loss_fn if sample_weight is None else \
                    _losses.weighted(self.loss_fn, sample_weight[batch])
                loss, scores = model.forward_backward(Xb, yb, loss_fn)
                reg = self.regularization(model) if self.regularization is not None else 0.0
                if not math.isfinite(loss + reg):
                    return (f"diverged: the loss became {loss + reg} at epoch {epoch}, "
                            f"iteration {b + 1}")
                bad = model._nonfinite(1)
                if bad is not None:
                    return (f"diverged: the gradient of {bad} became non-finite at epoch "
                            f"{epoch}, iteration {b + 1}")
                last = b == n_batches - 1
                before = [p.data.copy() for p in model.parameters()] if last and \
                    self.monitor else None
                self.optimizer.step()
                if self.constraint is not None:
                    self.constraint(model)
                bad = model._nonfinite(0)
                if bad is not None:
                    return (f"diverged: the update made {bad} non-finite at epoch {epoch}, "
                            f"iteration {b + 1}")
                if self.ema is not None:
                    self.ema.update()
                for layer in relu_layers:
                    mask = fired.setdefault(id(layer), np.zeros(layer._A.shape[1], dtype=bool))
                    np.logical_or(mask, np.any(layer._A > 0, axis=0), out=mask)
                history.loss.append(float(loss))
                history.reg_loss.append(float(reg))
                total_loss += float(loss) * len(batch)
                if self.classifier:
                    correct += accuracy(self.loss_name, scores, yb) * len(batch)
                seen += len(batch)
                if before is not None:
                    self._record_monitoring(before, Xb, fired, relu_layers)
                for callback in self.callbacks:
                    if hasattr(callback, "on_step"):
                        callback.on_step(self, len(history.loss), float(loss))
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        if not all(np.isfinite(p.data).all() for p in model.parameters()):
            return f"diverged: parameters became non-finite at epoch {epoch}"
        self.epoch = epoch
        train_accuracy = correct / seen if self.classifier else None
        val_loss, val_accuracy = self._validate(validation_data)
        gap = None if val_accuracy is None or train_accuracy is None else \
            train_accuracy - val_accuracy
        # With ema, validation sees the average, which lags the trained weights (it starts at
        # the initial ones) until about 1 / (1 - decay) updates have gone into it.
        lagging = self.ema is not None and len(history.loss) * (1 - self.ema.decay) < 1
        if gap is not None and gap > self.gap_threshold and not lagging:
            self._warn(f"epoch {epoch}: training accuracy exceeds validation accuracy by "
                       f"{gap:.2f} (overfitting): more regularization, dropout or data",
                       kind="gap")
        lr = self.optimizer.param_groups[0]["lr"]
        history.epochs.append(epoch)
        history.train_loss.append(total_loss / seen)
        history.train_accuracy.append(train_accuracy)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        history.gap.append(gap)
        history.lr.append(lr)
        if self.schedule is not None:
            self.schedule.step()
        history.time.append(time.perf_counter() - started)
        self._track_best()
        self._report_epoch()
        self._save_checkpoints()
        for callback in self.callbacks:
            if hasattr(callback, "on_epoch"):
                callback.on_epoch(self, epoch, history)
        return None

    def _batches(self, n):
        """The (start, stop) of each minibatch of an epoch over n shuffled samples."""
        size = self.batch_size
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        if bounds and bounds[-1][1] - bounds[-1][0] < size:
            if self.drop_last:
                bounds.pop()
            elif bounds[-1][1] - bounds[-1][0] == 1 and any(
                    isinstance(layer, BatchNorm) for layer in self.model.layers):
                bounds.pop()
                if bounds:
                    bounds[-1] = (bounds[-1][0], n)
        return bounds

    # -- babysitting ---------------------------------------------------------------------------

    def _record_monitoring(self, before, Xb, fired, relu_layers):
        history, model = self.history, self.model
        low, high = self.update_ratio_range
        # The ~1e-3 rule calibrates the base learning rate: a schedule that has decayed the rate
        # by lr0 / lr is expected to shrink the ratio by as much.
        group = self.optimizer.param_groups[0]
        initial_lr = group.get("initial_lr", group["lr"])
        decayed = initial_lr / group["lr"] if group["lr"] > 0 else 1.0
        # A warm-up holds the rate below the base on purpose, rising: the rule applies after it.
        warming_up = group["lr"] < initial_lr and (not history.lr or group["lr"] > history.lr[-1])
        ratios = {}
        for (label, p), old in zip(self._labelled_parameters(), before):
            norm = float(np.linalg.norm(old))
            ratio = float(np.linalg.norm(p.data - old)) / norm if norm > 0 else float("inf")
            ratios[label] = ratio
            if p.is_weight and p.requires_grad and not warming_up and \
                    not low <= ratio * decayed <= high:
                advice = "too high" if ratio * decayed > high else "too low"
                i, name = label.split(".", 1)
                self._warn(f"epoch {self.epoch + 1}: update/weight ratio of {name} in "
                           f"{self._layer_name(int(i))} is "
                           f"{ratio:.1e}, far from the ~1e-3 the notes recommend (learning rate "
                           f"{advice}?)", kind=f"update ratio {label}")
        history.update_ratio.append(ratios)
        activations, gradients = {}, {}
        for i, layer in enumerate(model.layers):
            A = getattr(layer, "_A", None)
            if A is None or not isinstance(layer, (Dense, Activation)):
                continue
            act = _effective_activation(layer)
            activations[f"{i}:{layer!r}"] = {"mean": float(A.mean()), "std": float(A.std()),
                                             "saturated": _saturated(act, A)}
            grads = [p.grad for p in layer.parameters() if p.is_weight and p.requires_grad]
            if grads:
                gradients[f"{i}:{layer!r}"] = {"mean": float(grads[0].mean()),
                                               "std": float(grads[0].std())}
            saturated = activations[f"{i}:{layer!r}"]["saturated"]
            if saturated is not None and saturated > 0.5:
                self._warn(f"epoch {self.epoch + 1}: {saturated:.0%} of the {act} units of "
                           f"{self._layer_name(i)} are saturated (their gradients vanish): "
                           "smaller weights or inputs, or another activation",
                           kind=f"saturated {i}")
        history.activations.append(activations)
        history.gradients.append(gradients)
        dead = {}
        for layer in relu_layers:
            i = model.layers.index(layer)
            fraction = 1.0 - float(np.mean(fired[id(layer)]))
            dead[f"{i}:{layer!r}"] = fraction
            if fraction > self.dead_threshold:
                self._warn(f"epoch {self.epoch + 1}: {fraction:.0%} of the ReLU units of "
                           f"{self._layer_name(i)} never fired on this epoch's data (dead "
                           "units): lower the learning rate or check the initialization",
                           kind=f"dead {i}")
        history.dead_fraction.append(dead)

    def _layer_name(self, i):
        """A layer as model.summary() lists it: "layer 2: Dense(256, 10)"."""
        return f"layer {i}: {self.model.layers[i]!r}"

    def _labelled_parameters(self):
        return [(f"{i}.{p.name}", p) for i, layer in enumerate(self.model.layers)
                for p in layer.parameters()]

    # -- best epoch, early stopping, checkpoints -----------------------------------------------

    def _monitor_name(self):
        if self.early_stopping is not None:
            return self.early_stopping.monitor
        return "val_loss" if self.history.val_loss and self.history.val_loss[-1] is not None \
            else "train_loss"

    def _track_best(self):
        name = self._monitor_name()
        value = getattr(self.history, name)[-1]
        if value is None:
            return
        maximize = name.endswith("accuracy")
        delta = self.early_stopping.min_delta if self.early_stopping is not None else 0.0
        better = self._best is None or (value > self._best[0] + delta if maximize
                                        else value < self._best[0] - delta)
        if not better:
            return
        # Ctrl-C waits for the best epoch and its file: both are the new best, or neither.
        with _interrupts_deferred():
            self._best = (value, self.epoch, self._evaluated_state())
            if self.best_checkpoint is not None:
                from .io import save_checkpoint
                if self.ema is not None:
                    with self.ema.applied():
                        save_checkpoint(self.best_checkpoint, self.model, self.optimizer,
                                        extra=self._resume_state())
                else:
                    save_checkpoint(self.best_checkpoint, self.model, self.optimizer,
                                    extra=self._resume_state())

    def _should_stop(self):
        if self.early_stopping is None or self._best is None:
            return False
        return self.epoch - self._best[1] >= self.early_stopping.patience

    def _save_checkpoints(self):
        if self.checkpoint is not None:
            from .io import save_checkpoint
            with _interrupts_deferred():
                save_checkpoint(self.checkpoint, self.model, self.optimizer,
                                extra=self._resume_state())

    def _augmented(self, Xb):
        """The augmented batch; a RandomFlipCrop writes it into Xb (a fresh copy of the rows)."""
        if isinstance(self.augment, RandomFlipCrop) and Xb.dtype in (np.float32, np.float64):
            return self.augment(Xb, out=Xb)
        return self.augment(Xb)

    def _resume_state(self):
        return {"trainer": {"epoch": self.epoch, "rng": self.rng.bit_generator.state,
                            "augment": self.augment.get_state()
                            if hasattr(self.augment, "get_state") else None,
                            "history": self.history.to_dict(),
                            "schedule": self.schedule.state_dict() if self.schedule else None,
                            "best": None if self._best is None else
                            [self._best[0], self._best[1], self._best[2]],
                            "ema": None if self.ema is None else list(self.ema.shadow),
                            "epochs": self.epochs,
                            "schedule_config": _schedule_config(self.schedule)}}

    def resume(self, path):
        """Continue a run from a checkpoint written with `checkpoint=`: parameters, optimizer
        state, epoch, shuffling generator, schedule and history. Returns self.

        Only what continues the run exactly is accepted: a different optimizer class or a
        schedule configured differently (e.g. a cosine schedule of another length, which is what
        a longer `epochs` gives) raises ValueError before anything is loaded."""
        from .io import load_checkpoint
        state = load_checkpoint(path)
        trainer = (state.extra or {}).get("trainer")
        if trainer is None:
            raise ValueError(f"Trainer.resume: {path} is not a training checkpoint (write one "
                             "with Trainer(checkpoint=...))")
        if state.optimizer is not None and type(state.optimizer) is not type(self.optimizer):
            raise ValueError(f"Trainer.resume: {path} was trained with "
                             f"{type(state.optimizer).__name__}, this Trainer has "
                             f"{type(self.optimizer).__name__}: its state cannot continue the "
                             f"run; resume with {type(state.optimizer).__name__} or start anew")
        saved, mine = trainer.get("schedule_config"), _schedule_config(self.schedule)
        if saved is not None and mine is not None and saved != mine:
            run = f" (a run of {trainer['epochs']} epochs)" if "epochs" in trainer else ""
            raise ValueError(f"Trainer.resume: {path}{run} has the schedule "
                             f"{_describe_schedule(saved)}, this Trainer "
                             f"{_describe_schedule(mine)}: the learning rates would not continue "
                             "the run; resume with the same schedule (and, for a schedule over "
                             "the run's length, the same epochs) or start anew")
        self.model.load_state_dict(state.model.state_dict())
        for mine, saved in zip(self.model.layers, state.model.layers):
            mine.set_extra_state(saved.get_extra_state())  # Dropout's seed, index and step
        if state.optimizer is not None:
            self.optimizer.load_state_dict(state.optimizer.state_dict())
        self.epoch = trainer["epoch"]
        self.rng.bit_generator.state = trainer["rng"]
        if trainer.get("augment") is not None and hasattr(self.augment, "set_state"):
            self.augment.set_state(trainer["augment"])
        self.history = History.from_dict(trainer["history"])
        if self.schedule is not None and trainer["schedule"] is not None:
            self.schedule.load_state_dict(trainer["schedule"])
        if trainer["best"] is not None:
            self._best = tuple(trainer["best"])
        if self.ema is not None and trainer["ema"] is not None:
            self.ema.shadow = [np.array(s, dtype=p.dtype) for s, p in
                               zip(trainer["ema"], self.ema.params)]
        return self

    # -- reporting -----------------------------------------------------------------------------

    def _progress_bar(self, total, epoch):
        """A tqdm bar over the epoch's minibatches when tqdm is installed (the `progress` extra);
        without it, None: progress is the one line per epoch `_report_epoch` prints either way."""
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        # disable=None: no bar when the output is not a terminal (logs, pipes, CI).
        return tqdm(total=total, desc=f"epoch {epoch}/{self.epochs}", leave=False, disable=None)

    def _report_epoch(self):
        if not self.progress:
            return
        h = self.history
        parts = [f"epoch {h.epochs[-1]:3d}/{self.epochs}", f"loss {h.train_loss[-1]:.4f}"]
        if h.train_accuracy[-1] is not None:
            parts.append(f"train acc {h.train_accuracy[-1]:.4f}")
        if h.val_loss[-1] is not None:
            parts.append(f"val loss {h.val_loss[-1]:.4f}")
        if h.val_accuracy[-1] is not None:
            parts.append(f"val acc {h.val_accuracy[-1]:.4f}")
        parts.append(f"lr {h.lr[-1]:.3g}")
        parts.append(f"{1000 * h.time[-1]:.0f} ms")
        self._say("  ".join(parts))

    def _say(self, message):
        if self.progress:
            print(message)

    def _warn(self, message, category=None, kind=None):
        """Record every signal in history.warnings; warn once per kind of signal per fit."""
        self.history.warnings.append(message)
        kind = kind or message
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, category or TrainingWarning, stacklevel=_caller_level())
