"""Argument checks of the dropout kernels (dropout.pyx, dropout_numpy.py), shared by both."""
import numpy as np

from .._hash import MASK64
from ._checks import as_input, as_output, float_dtype


def drop_probability(kernel, p):
    """(p, threshold): the drop probability as a float in [0, 1) and floor(p * 2**32)."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: p must be a number, got {p!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{kernel}: p (the drop probability) must lie in [0, 1), got {p}")
    return p, int(p * 4294967296.0)  # exact: scaling by a power of two, then floor


def random_key(kernel, key):
    """A dropout key (from dropout_key) as a Python int in [0, 2**64)."""
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{kernel}: key must be an integer, got {type(key).__name__}")
    if not 0 <= key <= MASK64:
        raise ValueError(f"{kernel}: key must lie in [0, 2**64), got {key}")
    return int(key)


def as_mask(kernel, mask, shape):
    """A dropout mask (bool or uint8, nonzero = kept) as a C-contiguous uint8 array of `shape`."""
    mask = np.asarray(mask)
    if mask.dtype not in (np.dtype(np.bool_), np.dtype(np.uint8)):
        raise TypeError(f"{kernel}: mask must be a uint8 or bool array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{kernel}: mask must have shape {tuple(shape)}, got {mask.shape}")
    return np.ascontiguousarray(mask).view(np.uint8)


# dropout

def dropout_forward_args(X, p, key, out, mask):
    """(X, out, mask, key, threshold, scale) of dropout_forward: X converted to its own float
    dtype, the key as a Python int, the keep threshold floor(p * 2**32) and the scale
    1 / (1 - p) of the kept units."""
    kernel = "dropout_forward"
    p, threshold = drop_probability(kernel, p)
    key = random_key(kernel, key)
    dtype = float_dtype(kernel, "X", X)
    X = as_input(kernel, "X", X, dtype, 2)
    out = as_output(kernel, "out", out, X.shape, dtype)
    mask = as_output(kernel, "mask", mask, X.shape, np.dtype(np.uint8))
    return X, out, mask, key, threshold, 1.0 / (1.0 - p)


def dropout_backward_args(dA, mask, p, dX):
    """(dA, mask, dX, scale) of dropout_backward: dA converted to its own float dtype, the mask
    as uint8 and the scale 1 / (1 - p) of the kept units."""
    kernel = "dropout_backward"
    p, _ = drop_probability(kernel, p)
    dtype = float_dtype(kernel, "dA", dA)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    mask = as_mask(kernel, mask, dA.shape)
    return dA, mask, as_output(kernel, "dX", dX, dA.shape, dtype), 1.0 / (1.0 - p)
