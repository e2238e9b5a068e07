"""Numerical gradients by centered differences, for checking backward passes (in float64).

Like the CS231n checker, the function's output is contracted with an upstream gradient `df`, so
f may return an array: the checked quantity is sum(f(x) * df).
"""
import numpy as np


def numerical_gradient(f, x, df=None, h=1e-6, coords=None):
    """d sum(f(x) * df) / dx by centered differences.

    x is perturbed in place (and restored), so f must read it on each call. coords, if given, is a
    sequence of flat indices to check; the other entries of the result are NaN. Returns an array
    shaped like x.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: use float64 for gradient checks, got {x.dtype}")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    grad = np.full(x.size, np.nan) if coords is not None else np.empty(x.size)
    indices = range(x.size) if coords is None else coords

    def value():
        out = np.asarray(f(x), dtype=np.float64)
        return float(np.sum(out if df is None else out * df))

    for i in indices:
        old = flat[i]
        flat[i] = old + h
        plus = value()
        flat[i] = old - h
        minus = value()
        flat[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(x.shape)


def relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||) over the finite entries of `numeric`.

    A norm over the whole array rather than the notes' per-element max, so that entries that are
    tiny compared with the rest (where finite differences carry mostly rounding noise) do not
    dominate the verdict.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    checked = np.isfinite(numeric)
    a, n = analytic[checked], numeric[checked]
    scale = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / scale) if scale > 0 else 0.0
