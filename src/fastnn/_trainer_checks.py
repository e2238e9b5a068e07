"""Trainer's arguments and data, checked before any epoch: bad input must not stop a run
halfway, leaving a half-trained model. Messages name the argument and what it accepts."""
import numbers

import numpy as np

from ._mixed import COMPUTE_DTYPES, check_compute_dtype
from ._validation import _is_bool, as_binary_labels, as_labels, check_bool, check_float, check_int
from .callbacks import EarlyStopping
from .losses import SPECS, check_sample_weight
from .metrics import BINARY, CLASSIFICATION


def check_collaborators(model, optimizer, schedule, regularization, constraint):
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


def check_compute(model, compute_dtype):
    """Trainer's compute_dtype: None (the model's own) or one of COMPUTE_DTYPES, which fit sets
    on the model (bfloat16 only for a float32 model)."""
    if compute_dtype is None:
        return None
    if not isinstance(compute_dtype, str):
        raise TypeError(f"Trainer: compute_dtype must be None (the model's own) or one of "
                        f"{', '.join(map(repr, COMPUTE_DTYPES))}, got {compute_dtype!r}")
    return check_compute_dtype("Trainer", compute_dtype, model.dtype)


def check_thresholds(update_ratio_range, dead_threshold, gap_threshold):
    """The babysitting thresholds (inf turns a warning off)."""
    if not isinstance(update_ratio_range, (tuple, list)) or len(update_ratio_range) != 2:
        raise TypeError(f"Trainer: update_ratio_range must be a pair (low, high), got "
                        f"{update_ratio_range!r}")
    update_ratio_range = tuple(
        check_float(f"Trainer: update_ratio_range[{i}]", v, low=0.0, finite=False)
        for i, v in enumerate(update_ratio_range))
    dead_threshold = check_float("Trainer: dead_threshold", dead_threshold, low=0.0,
                                 finite=False)
    gap_threshold = check_float("Trainer: gap_threshold", gap_threshold, low=0.0,
                                finite=False)
    return update_ratio_range, dead_threshold, gap_threshold


# Data sets up to this size are converted to the model's dtype once, before training; larger
# ones batch by batch, so that a large float64 array does not need a second copy in memory.
CONVERT_ONCE_BYTES = 1 << 28


def check_data(trainer, X, y, what):
    """X and y as arrays, the whole data set checked once, before the first step."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"Trainer: {what} must be a non-empty (N, D) array, got shape "
                         f"{X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"Trainer: {what} has {X.shape[0]} samples but {y.shape[0]} labels")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"Trainer: {what} must hold real numbers, got dtype {X.dtype}")
    dtype = trainer.model.dtype
    if X.dtype != dtype and X.size * dtype.itemsize <= CONVERT_ONCE_BYTES:
        # The conversion every batch would make, made once (values beyond the model's dtype's
        # range become inf here, and are refused just below).
        with np.errstate(over="ignore"):
            X = X.astype(dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"Trainer: {what} contains NaN or inf")
    if trainer.loss_name in CLASSIFICATION:
        as_labels(f"Trainer ({what})", y, len(y), trainer.model.out_features)
    elif trainer.loss_name in BINARY:
        as_binary_labels(f"Trainer ({what})", y, len(y),
                         SPECS[trainer.loss_name].negative_label)
    elif y.dtype.kind in "fiub" and not np.isfinite(y).all():
        raise ValueError(f"Trainer: {what} has NaN or inf targets")
    return X, y


def check_options(early_stopping, ema, seed, shuffle):
    """Trainer's early_stopping (None, an EarlyStopping or an int patience, which fit turns into
    an EarlyStopping), ema (a decay; None, False or 0 for none), seed and shuffle."""
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        if _is_bool(early_stopping) or not isinstance(early_stopping, numbers.Integral):
            raise TypeError("Trainer: early_stopping must be None, an EarlyStopping or an "
                            f"integer patience >= 1, got {early_stopping!r}")
        early_stopping = check_int("Trainer: early_stopping (patience)", early_stopping, low=1)
    if ema is not None and ema is not False and ema != 0:
        ema = check_float("Trainer: ema (decay)", ema, 0.0, 1.0, low_open=True, high_open=True)
    if seed is not None:
        seed = check_int("Trainer: seed", seed, low=0)
    return early_stopping, ema, seed, check_bool("Trainer: shuffle", shuffle)


def check_fit(trainer, X, y, validation_data, sample_weight):
    """fit's arguments, checked and converted (check_data) before the first epoch; returns them
    and the early stopping the run uses (an int patience becomes an EarlyStopping on val_loss
    with validation data, on train_loss without)."""
    if y is None:
        raise TypeError("Trainer.fit: y (the targets) must be an array with one entry per "
                        "sample, got None")
    if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or
                                        len(validation_data) != 2):
        raise TypeError("Trainer.fit: validation_data must be None or a pair (X, y), got "
                        f"{type(validation_data).__name__}")
    X, y = check_data(trainer, X, y, "training data")
    if sample_weight is not None:
        sample_weight = check_sample_weight("Trainer", sample_weight, X.shape[0])
    if validation_data is not None:
        validation_data = check_data(trainer, *validation_data, "validation_data")
    features = getattr(trainer.augment, "features", None)
    if features is not None and features != X.shape[1]:
        raise ValueError(f"Trainer: augment {trainer.augment!r} takes {features} features per "
                         f"sample, the training data has {X.shape[1]}")
    early_stopping = trainer.early_stopping
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        monitor = "val_loss" if validation_data is not None else "train_loss"
        early_stopping = EarlyStopping(monitor, patience=early_stopping)
    if early_stopping is not None and validation_data is None and \
            early_stopping.monitor.startswith("val"):
        raise ValueError(f"Trainer: early stopping monitors {early_stopping.monitor}, "
                         "but fit got no validation_data")
    if not trainer._batches(X.shape[0]):
        raise ValueError(f"Trainer: {X.shape[0]} training samples make no minibatch that "
                         f"can train (batch_size={trainer.batch_size}, drop_last="
                         f"{trainer.drop_last}, BatchNorm needs 2 samples)")
    return X, y, validation_data, sample_weight, early_stopping
