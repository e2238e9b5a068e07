"""NumPy twin of loss.pyx. scores are (N, C) class scores, y are (N,) integer labels in [0, C)."""
import numpy as np

from ._checks import as_input, as_labels, as_output, float_dtype

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(scores, y, *, dscores=None):
    """Mean softmax cross-entropy over the batch and its gradient d loss / d scores.

    Stable: the row maximum is subtracted before exponentiating, and log-sum-exp replaces
    log(softmax), so no exp overflows and no log(0) occurs. dscores may be scores itself.
    Returns (loss as a Python float, dscores (N, C)).
    """
    kernel = "softmax_cross_entropy"
    dtype = float_dtype(kernel, "scores", scores)
    scores = as_input(kernel, "scores", scores, dtype, 2)
    n, c = scores.shape
    if n == 0:
        raise ValueError(f"{kernel}: empty batch (scores has shape {scores.shape})")
    y = as_labels(kernel, y, n, c)
    dscores = as_output(kernel, "dscores", dscores, (n, c), dtype)
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    correct = shifted[rows, y].astype(np.float64)
    np.exp(shifted, out=dscores)
    sums = dscores.sum(axis=1, keepdims=True, dtype=np.float64)
    loss = float(np.mean(np.log(sums[:, 0]) - correct))
    dscores *= (1.0 / (sums * n)).astype(dtype)
    dscores[rows, y] -= dtype.type(1.0 / n)
    return loss, dscores
