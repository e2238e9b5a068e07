"""Argument checks of the row gather kernel (gather.pyx, gather_numpy.py), shared by both."""
import numpy as np

from ._checks import as_output


def take_rows_args(X, index, out):
    """take_rows' checks: X a 1-D or 2-D array of numbers, index a 1-D integer array of row
    numbers in [0, len(X)), out None or an OUT array of (len(index),) + X.shape[1:] in X's
    dtype. Returns (X, index as intp, out)."""
    if not isinstance(X, np.ndarray) or X.ndim not in (1, 2) or X.dtype.kind not in "fiub":
        raise TypeError("take_rows: X must be a 1-D or 2-D numpy array of numbers, got "
                        f"{type(X).__name__}{'' if not hasattr(X, 'shape') else ' of shape ' + str(X.shape)}")
    index = np.asarray(index)
    if index.ndim != 1 or (index.dtype.kind not in "iu" and index.size):
        raise TypeError("take_rows: index must be a 1-D array of integers, got "
                        f"dtype {index.dtype}, shape {index.shape}")
    index = np.ascontiguousarray(index, dtype=np.intp)
    if index.size and (index.min() < 0 or index.max() >= X.shape[0]):
        raise IndexError(f"take_rows: index must hold row numbers in [0, {X.shape[0]}), got "
                         f"values from {index.min()} to {index.max()}")
    out = as_output("take_rows", "out", out, (index.size,) + X.shape[1:], X.dtype)
    return X, index, out
