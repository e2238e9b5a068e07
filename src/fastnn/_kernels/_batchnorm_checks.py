"""Argument checks of the batchnorm kernels (batchnorm.pyx, batchnorm_numpy.py), shared by both."""
import numpy as np

from ._checks import as_input, as_output, as_vector, float_dtype


def batchnorm_options(kernel, n_samples, training, momentum, eps):
    """Checked (momentum, eps) as floats; a batch of one is an error in training mode."""
    momentum, eps = float(momentum), float(eps)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{kernel}: momentum must lie in [0, 1], got {momentum}")
    if not 0.0 < eps < float("inf"):
        raise ValueError(f"{kernel}: eps must be positive and finite, got {eps}")
    if training and n_samples < 2:
        raise ValueError(f"{kernel}: training mode needs more than one sample per feature to "
                         f"compute batch statistics, got a batch of {n_samples}")
    return momentum, eps


# batchnorm

def batchnorm_forward_args(X, gamma, beta, running_mean, running_var, training, momentum, eps, out,
                           mean, inv_std):
    """(X, gamma, beta, running_mean, running_var, momentum, eps, out, mean, inv_std) of
    batchnorm_forward, converted to gamma's dtype; the running statistics are OUT buffers in
    training mode (updated in place) and IN vectors in inference mode."""
    kernel = "batchnorm_forward"
    dtype = float_dtype(kernel, "gamma", gamma)
    X = as_input(kernel, "X", X, dtype, 2)
    n, d = X.shape
    momentum, eps = batchnorm_options(kernel, n, training, momentum, eps)
    gamma = as_vector(kernel, "gamma", gamma, dtype, d)
    beta = as_vector(kernel, "beta", beta, dtype, d)
    out = as_output(kernel, "out", out, (n, d), dtype)
    mean = as_output(kernel, "mean", mean, (d,), dtype)
    inv_std = as_output(kernel, "inv_std", inv_std, (d,), dtype)
    if training:
        running_mean = as_output(kernel, "running_mean", running_mean, (d,), dtype)
        running_var = as_output(kernel, "running_var", running_var, (d,), dtype)
    else:
        running_mean = as_vector(kernel, "running_mean", running_mean, dtype, d)
        running_var = as_vector(kernel, "running_var", running_var, dtype, d)
    return X, gamma, beta, running_mean, running_var, momentum, eps, out, mean, inv_std


def batchnorm_backward_args(dY, X, gamma, mean, inv_std, dX, dgamma, dbeta):
    """(dY, X, gamma, mean, inv_std, dX, dgamma, dbeta) of batchnorm_backward, converted to
    gamma's dtype; a missing dgamma or dbeta starts at zero."""
    kernel = "batchnorm_backward"
    dtype = float_dtype(kernel, "gamma", gamma)
    X = as_input(kernel, "X", X, dtype, 2)
    dY = as_input(kernel, "dY", dY, dtype, 2)
    n, d = X.shape
    if dY.shape != (n, d):
        raise ValueError(f"{kernel}: dY must have shape {(n, d)}, got {dY.shape}")
    gamma = as_vector(kernel, "gamma", gamma, dtype, d)
    mean = as_vector(kernel, "mean", mean, dtype, d)
    inv_std = as_vector(kernel, "inv_std", inv_std, dtype, d)
    dX = as_output(kernel, "dX", dX, (n, d), dtype)
    dgamma = np.zeros(d, dtype) if dgamma is None else as_output(kernel, "dgamma", dgamma, (d,),
                                                                 dtype)
    dbeta = np.zeros(d, dtype) if dbeta is None else as_output(kernel, "dbeta", dbeta, (d,), dtype)
    return dY, X, gamma, mean, inv_std, dX, dgamma, dbeta
