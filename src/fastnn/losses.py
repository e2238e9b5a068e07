"""Losses: each `NAME(scores, y) -> (loss, dscores)`, the mean over the batch and its gradient.

- softmax_cross_entropy(scores (N, C), y int labels)   softmax + cross-entropy (multinomial
                                                       logistic regression)
- multiclass_hinge(scores (N, C), y int labels)        Weston-Watkins SVM; alias `svm`
- binary_logistic(scores (N,) or (N, 1), y in {0, 1})  sigmoid + cross-entropy on one score
- binary_hinge(scores (N,) or (N, 1), y in {-1, +1} or {0, 1})
- mse(predictions, targets of the same shape)          mean over all elements, as torch.nn.MSELoss
All are stable for extreme scores (|s| up to 1e4 and beyond): no overflow, no NaN.
`dscores=` takes a preallocated array of the scores' shape and dtype to write the gradient into.
`weighted(loss, sample_weight)` is any of them as a weighted mean over the batch.
"""
import math
from collections import namedtuple

import numpy as np

from . import _backend

__all__ = ["softmax_cross_entropy", "multiclass_hinge", "svm", "binary_logistic", "binary_hinge",
           "mse", "get", "weighted"]


def softmax_cross_entropy(scores, y, *, dscores=None):
    """Mean softmax cross-entropy of class scores (N, C) against integer labels y in [0, C)."""
    return _backend.kernels.softmax_cross_entropy(scores, y, dscores=dscores)


def multiclass_hinge(scores, y, *, dscores=None):
    """Mean multiclass SVM loss: sum over j != y of max(0, s_j - s_y + 1), per sample."""
    return _backend.kernels.multiclass_hinge(scores, y, dscores=dscores)


svm = multiclass_hinge


def binary_logistic(scores, y, *, dscores=None):
    """Mean binary logistic loss of one score per sample against labels in {0, 1}."""
    return _backend.kernels.binary_logistic(scores, y, dscores=dscores)


def binary_hinge(scores, y, *, dscores=None):
    """Mean binary hinge loss max(0, 1 - t s) with t in {-1, +1} (labels 0 are read as -1)."""
    return _backend.kernels.binary_hinge(scores, y, dscores=dscores)


def mse(scores, y, *, dscores=None):
    """Mean squared error over all elements (regression); y has the shape of scores."""
    return _backend.kernels.mse(scores, y, dscores=dscores)


def _multiclass_margins(scores, y):
    return scores - scores[np.arange(scores.shape[0]), y][:, None] + 1 > 0


def _binary_margins(scores, y):
    return 1 - np.where(np.asarray(y).reshape(-1) > 0, 1.0, -1.0) * scores.reshape(-1) > 0


# What the rest of the package knows about each loss, by name (the one table: the Trainer's label
# checks and accuracy, sanity's chance level, gradcheck's kinks and the CLI read it).
#   kind            "multiclass" (integer labels, scores (N, C)), "binary" (one score per sample)
#                   or "regression" (targets of the scores' shape)
#   negative_label  the label of the negative class of a binary loss (the other is 1)
#   initial_loss    n_classes -> the loss of all-zero scores (chance level), or None
#   margins         (scores, y) -> boolean array of the hinge's active margins (its kinks), or None
Spec = namedtuple("Spec", ["name", "function", "kind", "negative_label", "initial_loss",
                           "margins"])
SPECS = {spec.name: spec for spec in (
    Spec("softmax_cross_entropy", softmax_cross_entropy, "multiclass", None, math.log, None),
    Spec("multiclass_hinge", multiclass_hinge, "multiclass", None, lambda c: float(c - 1),
         _multiclass_margins),
    Spec("svm", svm, "multiclass", None, lambda c: float(c - 1), _multiclass_margins),
    Spec("binary_logistic", binary_logistic, "binary", 0, lambda c: math.log(2.0), None),
    Spec("binary_hinge", binary_hinge, "binary", -1, lambda c: 1.0, _binary_margins),
    Spec("mse", mse, "regression", None, None, None),
)}
_BY_NAME = {name: spec.function for name, spec in SPECS.items()}
TAKE_DSCORES = frozenset(_BY_NAME.values())  # the losses that write into a given dscores array
MULTICLASS = tuple(name for name, spec in SPECS.items() if spec.kind == "multiclass")
BINARY = tuple(name for name, spec in SPECS.items() if spec.kind == "binary")


def spec(loss):
    """The Spec of a loss given by name or as one of this module's functions; None for another
    callable (a user's loss, or a weighted one)."""
    if isinstance(loss, str):
        get(loss)  # an unknown name is a ValueError
        return SPECS[loss]
    return next((s for s in SPECS.values() if s.function is loss), None)


def get(loss):
    """A loss function from its name (or the function itself)."""
    if callable(loss):
        return loss
    try:
        return _BY_NAME[loss]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(_BY_NAME)}") from None


def check_sample_weight(where, sample_weight, n):
    """sample_weight as a float64 (n,) array of finite values >= 0, not all zero."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiub" or w.shape != (n,):
        raise ValueError(f"{where}: sample_weight must be {n} real numbers (one per sample), got "
                         f"shape {w.shape} and dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any() or not w.any():
        raise ValueError(f"{where}: sample_weight must be finite and >= 0, not all zero")
    return w


def weighted(loss, sample_weight):
    """`loss` (a name or function of this module) as the weighted mean over the batch,
    sum_i w_i l_i / sum_i w_i, with its exact gradient; a batch of zero weights has loss 0.

    Each group of samples that share one weight goes through the loss kernel once, so class
    weights cost one call per class; many distinct weights in a batch cost one call each.
    """
    loss = get(loss)
    try:
        w = np.asarray(sample_weight)
    except (TypeError, ValueError):
        w = np.asarray(None)
    if w.dtype.kind not in "fiub" or w.ndim != 1:
        raise TypeError(f"weighted: sample_weight must be a 1-D array of real numbers (one per "
                        f"sample of the batch), got {type(sample_weight).__name__}"
                        f"{' of shape ' + str(w.shape) if w.dtype.kind in 'fiub' else ''}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weighted: sample_weight must be finite and >= 0")

    def weighted_loss(scores, y):
        if len(w) != len(scores):
            raise ValueError(f"weighted: sample_weight has {len(w)} weights for a batch of "
                             f"{len(scores)} samples")
        dscores = np.zeros_like(scores)
        total = float(w.sum())
        if total == 0.0:
            return 0.0, dscores
        value = 0.0
        for weight in np.unique(w[w > 0]):
            rows = np.flatnonzero(w == weight)
            part, dpart = loss(scores[rows], y[rows])
            share = float(weight) * len(rows) / total
            value += share * part
            dscores[rows] = dpart * scores.dtype.type(share)
        return value, dscores

    weighted_loss.__name__ = f"weighted_{loss.__name__}"
    return weighted_loss
