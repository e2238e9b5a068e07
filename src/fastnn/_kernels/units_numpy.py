"""NumPy twin of units.pyx: layers whose activation has parameters or pieces (PReLU, Maxout).

Shapes: X is (N, D) for PReLU with slopes a (D,); for Maxout, X is (N, K), W is (K, M * pieces),
b is (M * pieces,), and the pieces of output unit j are the columns j * pieces ... j * pieces +
pieces - 1 of Z = X @ W + b.
"""
import numpy as np

from ._checks import (maxout_backward_args, maxout_forward_args, prelu_backward_args,
                      prelu_forward_args)
from .gemm_numpy import matmul_into, weight_gradients

__all__ = ["prelu_forward", "prelu_backward", "maxout_forward", "maxout_backward"]


def prelu_forward(X, a, *, out=None):
    """out = X where X > 0, a * X elsewhere, with one learnable slope a_j per feature.
    Returns out (N, D); out may be X itself."""
    X, a, out = prelu_forward_args(X, a, out)
    np.copyto(out, np.where(X > 0, X, a * X))
    return out


def prelu_backward(dA, X, a, *, dX=None, da=None, accumulate=False):
    """dX = dA where X > 0, a * dA elsewhere; da = sum over rows of dA * X where X <= 0
    (+= when accumulate). Returns (dX, da)."""
    dA, X, a, dX, da = prelu_backward_args(dA, X, a, dX, da, accumulate)
    positive = X > 0
    slope_grad = np.where(positive, 0, dA * X).sum(axis=0, dtype=np.float64)
    np.copyto(dX, np.where(positive, dA, a * dA))
    if accumulate:
        da += slope_grad
    else:
        da[...] = slope_grad
    return dX, da


def maxout_forward(X, W, b, *, pieces, Z=None, out=None, argmax=None):
    """out[:, j] = max over p of Z[:, j * pieces + p] with Z = X @ W + b; argmax (uint8) records
    the winning piece (the first on ties). Z is a (N, M * pieces) work buffer.
    Returns (out (N, M), argmax (N, M))."""
    X, W, b, Z, out, argmax = maxout_forward_args(X, W, b, pieces, Z, out, argmax)
    n, m = out.shape
    matmul_into(X, False, W, False, Z, False)
    Z += b
    grouped = Z.reshape(n, m, pieces)
    argmax[...] = grouped.argmax(axis=2)
    np.copyto(out, np.take_along_axis(grouped, argmax[:, :, None].astype(np.intp), axis=2)[:, :, 0])
    return out, argmax


def maxout_backward(dA, X, W, argmax, *, pieces, dZ=None, dW=None, db=None, dX=None,
                    need_dX=True, accumulate=False):
    """Gradients of maxout: dZ routes dA[:, j] to the winning piece of unit j (zeros elsewhere);
    dW = X.T @ dZ, db = sum of dZ over rows (+= when accumulate), dX = dZ @ W.T unless need_dX is
    False. Returns (dX or None, dW, db)."""
    dA, X, W, argmax, dZ, dW, db = maxout_backward_args(dA, X, W, argmax, pieces, dZ, dW, db,
                                                        accumulate)
    n, m = dA.shape
    winners = np.arange(pieces) == argmax[:, :, None]
    np.copyto(dZ.reshape(n, m, pieces), np.where(winners, dA[:, :, None], 0))
    column_sum = dZ.sum(axis=0, dtype=np.float64)
    if accumulate:
        db += column_sum
    else:
        db[...] = column_sum
    return weight_gradients("maxout_backward", X, W, dZ, dW, db, dX, need_dX, accumulate)
