"""NumPy twin of gather.pyx: a minibatch's rows copied out of the data set."""
import numpy as np

from ._gather_checks import take_rows_args

__all__ = ["take_rows"]


def take_rows(X, index, out=None):
    """X[index] (the rows of a 1-D or 2-D X at the row numbers in index, each in
    [0, len(X))) written into out ((len(index),) + X.shape[1:], X's dtype; None allocates).
    Returns out."""
    X, index, out = take_rows_args(X, index, out)
    np.take(X, index, axis=0, out=out)
    return out
