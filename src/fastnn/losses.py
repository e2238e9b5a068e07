"""Losses: each `NAME(scores, y) -> (loss, dscores)`, the mean over the batch and its gradient."""
from . import _backend


def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy of class scores (N, C) against integer labels y in [0, C)."""
    return _backend.kernels.softmax_cross_entropy(scores, y)
