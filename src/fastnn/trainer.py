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
import math
import sys
import time
import warnings

import numpy as np

from . import _backend
from . import losses as _losses
from ._best_epoch import monitored, track_best
from ._trainer_checks import (check_collaborators, check_compute, check_fit, check_options,
                              check_thresholds)
from ._validation import check_bool, check_int
from .augment import RandomFlipCrop
from .callbacks import (EMA, EarlyStopping, History, Monitor, Progress, TrainingWarning, resume,
                        save_training_checkpoint)
from .ensemble import Ensemble
from .layers import BatchNorm
from .metrics import BINARY, CLASSIFICATION, accuracy
from .metrics import correct as metrics_correct
from .regularization import L1, L2, ElasticNet

__all__ = ["Trainer", "History", "EarlyStopping", "EMA", "Ensemble", "TrainingWarning",
           "accuracy"]


def _caller_level():
    """The warnings stacklevel of the first frame outside fastnn (the user's call to fit)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastnn."):
        frame, level = frame.f_back, level + 1
    return level


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
    draws are saved in checkpoints when it has get_state()/set_state(). It gets the batch in a
    buffer the next batch overwrites: return a new array, or change that one in place.
    progress: one line per epoch (loss, accuracies, learning rate, time), and a tqdm bar over
    the epoch's minibatches when tqdm (the `progress` extra) is installed; False for quiet.
    callbacks: objects with optional on_epoch_begin(trainer, epoch), on_step(trainer,
    iteration, loss) and on_epoch(trainer, epoch, history) methods (fastnn.callbacks).
    monitor: collect the babysitting statistics (fastnn.callbacks.Monitor: update ratios,
    activation and gradient statistics, dead units); `update_ratio_range` (default: two orders
    of magnitude either side of the notes' 1e-3), `dead_threshold` and `gap_threshold` set when
    they warn.
    compute_dtype: None (train in the model's own model.compute_dtype), or "float32" or
    "bfloat16" (a float32 model only), which fit sets as the model's compute_dtype before the
    first step (it stays the model's afterwards).
    """

    def __init__(self, model, optimizer, loss="softmax_cross_entropy", batch_size=64, epochs=10,
                 schedule=None, regularization=None, constraint=None, early_stopping=None,
                 ema=None, checkpoint=None, best_checkpoint=None, seed=0, progress=True,
                 callbacks=(), monitor=True, update_ratio_range=(1e-5, 1e-1),
                 dead_threshold=0.5, gap_threshold=0.15, drop_last=False, shuffle=True,
                 augment=None, compute_dtype=None):
        batch_size = check_int("Trainer: batch_size", batch_size, low=1)
        epochs = check_int("Trainer: epochs", epochs, low=0)
        check_collaborators(model, optimizer, schedule, regularization, constraint)
        early_stopping, ema, seed, shuffle = check_options(early_stopping, ema, seed, shuffle)
        self.compute_dtype = check_compute(model, compute_dtype)
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
        self._monitor, self._progress = Monitor(), Progress()
        self.update_ratio_range, self.dead_threshold, self.gap_threshold = check_thresholds(
            update_ratio_range, dead_threshold, gap_threshold)
        self.drop_last = check_bool("Trainer: drop_last", drop_last)
        self.shuffle = shuffle
        if augment is not None and not callable(augment):
            raise TypeError(f"Trainer: augment must be None or a callable on a batch (e.g. "
                            f"fastnn.augment.RandomFlipCrop), got {type(augment).__name__}")
        self.augment = augment
        self.classifier = self.loss_name in CLASSIFICATION + BINARY
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.n_batches = None  # of the epoch under way
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

    def _snapshot(self):
        """Copies of what an epoch changes and a failed one must not keep: the parameters (and
        running statistics) and the optimizer's state (moments, step counts, hyperparameters)."""
        return self.model.state_dict(), self.optimizer.state_dict()

    def _restore(self, snapshot):
        self.model.load_state_dict(snapshot[0])
        self.optimizer.load_state_dict(snapshot[1])

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train for the remaining epochs; returns the History (also `trainer.history`).
        sample_weight (N,), >= 0: each sample's loss is weighted by it (fastnn.losses.weighted);
        validation is unweighted."""
        X, y, validation_data, sample_weight, self.early_stopping = check_fit(
            self, X, y, validation_data, sample_weight)
        if self.compute_dtype is not None:
            self.model.compute_dtype = self.compute_dtype
        history = self.history
        started = time.perf_counter()
        last_good = self._snapshot()
        self._warned = set()
        # Overflow on the way to divergence is detected and reported below; NumPy's own
        # floating-point warnings would only repeat it.
        errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        errstate.__enter__()
        try:
            while self.epoch < self.epochs:
                diverged = self._run_epoch(X, y, validation_data, sample_weight)
                if diverged:
                    self._restore(last_good)
                    history.stop_reason = diverged
                    lr = self.optimizer.param_groups[0]["lr"]
                    self._warn(f"{diverged}; restored the parameters of "
                               f"{'epoch ' + str(self.epoch) if self.epoch else 'the start'}. "
                               f"Lower the learning rate (lr = {lr:g}) or check the data.",
                               RuntimeWarning, kind="diverged")
                    break
                last_good = self._snapshot()
                if self._should_stop():
                    history.stop_reason = "early stopping"
                    break
            else:
                history.stop_reason = "completed"
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
            # A step may have been cut short mid-update: never keep its parameters (the
            # optimizer goes back to the last epoch's end, whose parameters are the best ones or
            # later ones).
            self._restore(last_good)
            if self._best:
                self.model.load_state_dict(self._best[2])
        except BaseException as error:
            history.stop_reason = f"error: {type(error).__name__}: {error}"
            self._restore(last_good)
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
                      f"{monitored(self)} {self._best[0]:.4f})")
        return history

    def _hooks(self, method):
        """The bound `method` of the monitor and of each callback that has it, in call order."""
        hooks = ([self._monitor] if self.monitor else []) + \
            ([self._progress] if self.progress else []) + self.callbacks
        return [getattr(hook, method) for hook in hooks if hasattr(hook, method)]

    def _run_epoch(self, X, y, validation_data, sample_weight=None):
        """One pass over shuffled minibatches; returns a divergence message or None."""
        history, model = self.history, self.model
        epoch = self.epoch + 1
        started = time.perf_counter()
        order = self.rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
        bounds = self._batches(X.shape[0])
        self.n_batches = len(bounds)
        for hook in self._hooks("on_epoch_begin"):
            hook(self, epoch)
        on_step = self._hooks("on_step")
        total_loss, correct, seen = 0.0, 0.0, 0
        # The model's compiled step can do an exact L1/L2/ElasticNet penalty and the accuracy
        # count in its own passes (Sequential._forward_backward); anything else is done here.
        regularization = self.regularization
        own_penalty = type(regularization) in (L1, L2, ElasticNet)
        l1, l2 = (regularization.l1, regularization.l2) if own_penalty else (0.0, 0.0)
        count = self.loss_name in CLASSIFICATION
        finite = self.augment is None  # fit checked X (an augmented batch is checked again)
        # The minibatches are gathered into two buffers this epoch reuses (no array per step).
        take_rows = _backend.kernels.take_rows
        rows = max(stop - start for start, stop in bounds)
        X_rows = np.empty((rows,) + X.shape[1:], X.dtype)
        y_rows = np.empty((rows,) + y.shape[1:], y.dtype) \
            if y.dtype.kind in "fiub" and y.ndim <= 2 else None
        model.train()
        try:
            for b, (start, stop) in enumerate(bounds):
                batch = order[start:stop]
                Xb = take_rows(X, batch, out=X_rows[:stop - start])
                yb = y[batch] if y_rows is None else take_rows(y, batch, out=y_rows[:stop - start])
                if self.augment is not None:
                    Xb = self._augmented(Xb)
                loss_fn = self.loss_fn if sample_weight is None else \
                    _losses.weighted(self.loss_fn, sample_weight[batch])
                loss, scores, fused = model._fit_forward_backward(Xb, yb, loss_fn, l1, l2, count,
                                                                  finite)
                if fused is not None and (own_penalty or regularization is None):
                    reg = fused[0]
                else:
                    reg = regularization(model) if regularization is not None else 0.0
                if not math.isfinite(loss + reg):
                    return (f"diverged: the loss became {loss + reg} at epoch {epoch}, "
                            f"iteration {b + 1}")
                bad = model._nonfinite(1)
                if bad is not None:
                    return (f"diverged: the gradient of {bad} became non-finite at epoch "
                            f"{epoch}, iteration {b + 1}")
                self.optimizer.step()
                if self.constraint is not None:
                    self.constraint(model)
                bad = model._nonfinite(0)
                if bad is not None:
                    return (f"diverged: the update made {bad} non-finite at epoch {epoch}, "
                            f"iteration {b + 1}")
                if self.ema is not None:
                    self.ema.update()
                history.loss.append(float(loss))
                history.reg_loss.append(float(reg))
                total_loss += float(loss) * len(batch)
                if fused is not None and fused[1] is not None:
                    correct += fused[1]
                elif self.classifier:
                    correct += metrics_correct(self.loss_name, scores, yb)
                seen += len(batch)
                for hook in on_step:
                    hook(self, len(history.loss), float(loss))
        finally:
            self._progress.close()
        if model._nonfinite(0) is not None:
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
        track_best(self)
        self._save_checkpoints()
        for hook in self._hooks("on_epoch"):
            hook(self, epoch, history)
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

    def _layer_name(self, i):
        """A layer as model.summary() lists it: "layer 2: Dense(256, 10)"."""
        return f"layer {i}: {self.model.layers[i]!r}"

    # -- early stopping (on the best epoch: fastnn._best_epoch), checkpoints -------------------

    def _should_stop(self):
        if self.early_stopping is None or self._best is None:
            return False
        return self.epoch - self._best[1] >= self.early_stopping.patience

    def _save_checkpoints(self):
        if self.checkpoint is not None:
            save_training_checkpoint(self.checkpoint, self)

    def _augmented(self, Xb):
        """The augmented batch; a RandomFlipCrop writes it into Xb (the epoch's batch buffer,
        which the next batch overwrites)."""
        if isinstance(self.augment, RandomFlipCrop) and Xb.dtype in (np.float32, np.float64):
            return self.augment(Xb, out=Xb)
        return self.augment(Xb)

    def resume(self, path):
        """Continue a run from a checkpoint written with `checkpoint=`: parameters, optimizer
        state, epoch, shuffling generator, schedule and history. Returns self.

        Only what continues the run exactly is accepted: a different optimizer class, a
        schedule configured differently (e.g. a cosine schedule of another length, which is what
        a longer `epochs` gives) or a compute_dtype other than the run's raises ValueError
        before anything is loaded; with compute_dtype=None the model takes the run's."""
        return resume(self, path)

    # -- reporting -----------------------------------------------------------------------------

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
