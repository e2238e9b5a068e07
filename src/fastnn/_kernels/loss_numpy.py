"""NumPy twin of loss.pyx: each loss returns (mean loss over the batch, d loss / d scores).

Multiclass losses take scores (N, C) and integer labels y (N,) in [0, C); binary losses take one
score per sample, (N,) or (N, 1); mse takes predictions and targets of the same shape.
"""
import numpy as np

from ._checks import binary_scores_args, class_scores_args, mse_args

__all__ = ["softmax_cross_entropy", "multiclass_hinge", "binary_logistic", "binary_hinge", "mse"]


def softmax_cross_entropy(scores, y, *, dscores=None):
    """Mean softmax cross-entropy over the batch and its gradient d loss / d scores.

    Stable: the row maximum is subtracted before exponentiating, and log-sum-exp replaces
    log(softmax), so no exp overflows and no log(0) occurs. dscores may be scores itself.
    Returns (loss as a Python float, dscores (N, C)).
    """
    scores, y, dscores = class_scores_args("softmax_cross_entropy", scores, y, dscores)
    n, dtype = scores.shape[0], scores.dtype
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    correct = shifted[rows, y].astype(np.float64)
    np.exp(shifted, out=dscores)
    sums = dscores.sum(axis=1, keepdims=True, dtype=np.float64)
    loss = float(np.mean(np.log(sums[:, 0]) - correct))
    dscores *= (1.0 / (sums * n)).astype(dtype)
    dscores[rows, y] -= dtype.type(1.0 / n)
    return loss, dscores


def multiclass_hinge(scores, y, *, dscores=None):
    """Multiclass SVM (Weston-Watkins) loss: mean over samples of
    sum over j != y of max(0, s_j - s_y + 1). dscores may be scores itself.
    Returns (loss, dscores (N, C))."""
    scores, y, dscores = class_scores_args("multiclass_hinge", scores, y, dscores)
    n = scores.shape[0]
    rows = np.arange(n)
    margins = scores - scores[rows, y][:, None] + 1
    margins[rows, y] = 0
    active = margins > 0
    loss = float(np.sum(np.where(active, margins, 0), dtype=np.float64) / n)
    np.divide(active, n, out=dscores, casting="unsafe")
    dscores[rows, y] = -active.sum(axis=1) / n
    return loss, dscores


def binary_logistic(scores, y, *, dscores=None):
    """Binary logistic loss (sigmoid + cross-entropy) on one score per sample, labels in {0, 1}:
    mean of log(1 + exp(-s)) for y = 1 and log(1 + exp(s)) for y = 0, computed stably as
    max(s, 0) - y * s + log1p(exp(-|s|)). d/ds = (sigmoid(s) - y) / N.
    Returns (loss, dscores shaped like scores)."""
    s, t, dscores = binary_scores_args("binary_logistic", scores, y, dscores, 0)
    s64 = s.astype(np.float64)
    loss = float(np.mean(np.maximum(s64, 0) - t * s64 + np.log1p(np.exp(-np.abs(s64)))))
    e = np.exp(-np.abs(s64))
    sigmoid = np.where(s64 >= 0, 1 / (1 + e), e / (1 + e))
    dscores.reshape(-1)[...] = (sigmoid - t) / s.shape[0]
    return loss, dscores


def binary_hinge(scores, y, *, dscores=None):
    """Binary hinge (SVM) loss on one score per sample: mean of max(0, 1 - t * s) with t = +1 or -1.
    Labels are {-1, +1} or {0, 1} (0 is read as -1). Returns (loss, dscores shaped like scores)."""
    s, t, dscores = binary_scores_args("binary_hinge", scores, y, dscores, -1)
    margins = 1 - t * s.astype(np.float64)
    loss = float(np.mean(np.maximum(margins, 0)))
    dscores.reshape(-1)[...] = np.where(margins > 0, -t, 0) / s.shape[0]
    return loss, dscores


def mse(scores, y, *, dscores=None):
    """Mean squared error for regression, as torch.nn.MSELoss: the mean over all elements of
    (scores - y)**2; y has the shape of scores. d/ds = 2 (scores - y) / scores.size.
    Returns (loss, dscores)."""
    scores, y, dscores = mse_args(scores, y, dscores)
    diff = scores.astype(np.float64) - y
    loss = float(np.mean(diff * diff))
    dscores[...] = diff * (2.0 / scores.size)
    return loss, dscores
