"""NumPy twin of batchnorm.pyx: the same functions, signatures and results, written as plain NumPy.

Shapes: X, out, dY and dX are (N, D); gamma, beta, running_mean, running_var, mean, inv_std,
dgamma and dbeta are (D,). Semantics are torch.nn.BatchNorm1d's: normalize with the biased batch
variance, update running_var with the unbiased one, momentum weights the new batch statistic.
"""
import numpy as np

from ._batchnorm_checks import batchnorm_backward_args, batchnorm_forward_args

__all__ = ["batchnorm_forward", "batchnorm_backward"]


def _batch_statistics(X):
    """Batch mean and biased variance (float64), from sums shifted by the first row.

    With K = X[0], s1 = sum(x - K) and s2 = sum((x - K)**2) over rows, mean = K + s1/N and
    var = s2/N - (s1/N)**2. Because |mean - K| is of the order of the standard deviation, nothing
    cancels catastrophically, however large the mean (the textbook E[x^2] - E[x]^2 would).
    """
    n = X.shape[0]
    shift = X[0].astype(np.float64)
    shifted = np.subtract(X, shift, dtype=np.float64)
    s1 = shifted.sum(axis=0)
    np.square(shifted, out=shifted)
    s2 = shifted.sum(axis=0)
    m1 = s1 / n
    var = s2 / n - m1 * m1
    np.maximum(var, 0.0, out=var)  # rounding can leave -tiny for a constant feature
    return shift + m1, var


def batchnorm_forward(X, gamma, beta, running_mean, running_var, *, training, momentum, eps,
                      out=None, mean=None, inv_std=None):
    """Batch norm: out = (X - mean) * (gamma * inv_std) + beta, with inv_std = 1/sqrt(var + eps).

    X is (N, D); gamma, beta, running_mean and running_var are (D,). Training mode normalizes
    with the batch mean and biased variance (one pass over X), writes them to mean and inv_std
    (D,) for the backward pass, and updates running_mean and running_var in place:
    r = (1 - momentum) * r + momentum * batch statistic, the unbiased variance N/(N-1) * var for
    running_var (torch.nn.BatchNorm1d's rule). It needs N > 1. Inference mode normalizes with the
    running statistics (and writes them to mean and inv_std the same way). out may be X itself.
    Returns out.
    """
    (X, gamma, beta, running_mean, running_var, momentum, eps, out, mean,
     inv_std) = batchnorm_forward_args(X, gamma, beta, running_mean, running_var, training,
                                       momentum, eps, out, mean, inv_std)
    n = X.shape[0]
    if training:
        batch_mean, var = _batch_statistics(X)
        mean[...] = batch_mean
        inv_std[...] = 1.0 / np.sqrt(var + eps)
        running_mean[...] = ((1.0 - momentum) * running_mean.astype(np.float64)
                             + momentum * batch_mean)
        running_var[...] = ((1.0 - momentum) * running_var.astype(np.float64)
                            + momentum * (var * (n / (n - 1))))
    else:
        mean[...] = running_mean
        inv_std[...] = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    # Centre first, then scale: X * scale + shift would cancel catastrophically for large means.
    np.subtract(X, mean, out=out)
    out *= gamma * inv_std
    out += beta
    return out


def batchnorm_backward(dY, X, gamma, mean, inv_std, *, training, dX=None, dgamma=None,
                       dbeta=None, accumulate=False):
    """Gradients of batchnorm_forward, given dY = dL/dout and its saved mean and inv_std (D,).

    With xhat = (X - mean) * inv_std (recomputed, not stored): dbeta = sum of dY over rows,
    dgamma = sum of dY * xhat; training mode (batch statistics depend on X):
    dX = gamma * inv_std * (dY - sum(dY)/N - xhat * sum(dY * xhat)/N), in two passes;
    inference mode (fixed running statistics): dX = dY * gamma * inv_std.
    With accumulate, dgamma and dbeta are added to instead of overwritten. dX may be dY itself.
    Returns (dX, dgamma, dbeta).
    """
    dY, X, gamma, mean, inv_std, dX, dgamma, dbeta = batchnorm_backward_args(
        dY, X, gamma, mean, inv_std, dX, dgamma, dbeta)
    n, dtype = X.shape[0], X.dtype
    # Pass 1: column sums of dY and dY * xhat (float64 accumulation).
    xhat = np.subtract(X, mean)
    xhat *= inv_std
    sum_dy = dY.sum(axis=0, dtype=np.float64)
    sum_dy_xhat = np.multiply(dY, xhat).sum(axis=0, dtype=np.float64)
    if accumulate:
        dbeta += sum_dy
        dgamma += sum_dy_xhat
    else:
        dbeta[...] = sum_dy
        dgamma[...] = sum_dy_xhat
    # Pass 2: dX.
    scale = gamma * inv_std
    if training:
        np.subtract(dY, (sum_dy / n).astype(dtype), out=dX)
        xhat *= (sum_dy_xhat / n).astype(dtype)
        dX -= xhat
        dX *= scale
    else:
        np.multiply(dY, scale, out=dX)
    return dX, dgamma, dbeta
