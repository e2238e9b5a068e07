"""Metrics of predictions against targets, by the kind of loss a model is trained with."""
import numpy as np

from .losses import BINARY, MULTICLASS as CLASSIFICATION


def correct(loss_name, scores, y):
    """How many samples the scores classify right (an int) for classification losses, None for
    regression."""
    if loss_name in CLASSIFICATION:
        return int(np.count_nonzero(scores.argmax(axis=1) == y))
    if loss_name in BINARY:
        return int(np.count_nonzero((scores.reshape(-1) > 0) == (np.asarray(y).reshape(-1) > 0)))
    return None


def accuracy(loss_name, scores, y):
    """Fraction correct for classification losses, None for regression."""
    right = correct(loss_name, scores, y)
    return None if right is None else right / len(y)
