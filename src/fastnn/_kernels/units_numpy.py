"""NumPy twin of units.pyx: layers whose activation has parameters or pieces (PReLU, Maxout).

Shapes: X is (N, D) for PReLU with slopes a (D,); for Maxout, X is (N, K), W is (K, M * pieces),
b is (M * pieces,), and the pieces of output unit j are the columns j * pieces ... j * pieces +
pieces - 1 of Z = X @ W + b.
"""
import numpy as np

from ._checks import (as_gradient, as_input, as_output, as_piece_indices, float_dtype,
                      maxout_pieces)

__all__ = ["prelu_forward", "prelu_backward", "maxout_forward", "maxout_backward"]


def prelu_forward(X, a, *, out=None):
    """out = X where X > 0, a * X elsewhere, with one learnable slope a_j per feature.
    Returns out (N, D); out may be X itself."""
    kernel = "prelu_forward"
    dtype = float_dtype(kernel, "a", a)
    X = as_input(kernel, "X", X, dtype, 2)
    a = as_input(kernel, "a", a, dtype, 1)
    if a.shape != (X.shape[1],):
        raise ValueError(f"{kernel}: a must have shape ({X.shape[1]},), got {a.shape}")
    out = as_output(kernel, "out", out, X.shape, dtype)
    np.copyto(out, np.where(X > 0, X, a * X))
    return out


def prelu_backward(dA, X, a, *, dX=None, da=None, accumulate=False):
    """dX = dA where X > 0, a * dA elsewhere; da = sum over rows of dA * X where X <= 0
    (+= when accumulate). Returns (dX, da)."""
    kernel = "prelu_backward"
    dtype = float_dtype(kernel, "a", a)
    X = as_input(kernel, "X", X, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    a = as_input(kernel, "a", a, dtype, 1)
    if dA.shape != X.shape or a.shape != (X.shape[1],):
        raise ValueError(f"{kernel}: expected dA of shape {X.shape} and a of shape "
                         f"({X.shape[1]},), got {dA.shape} and {a.shape}")
    dX = as_output(kernel, "dX", dX, X.shape, dtype)
    da = as_gradient(kernel, "da", da, a.shape, dtype, accumulate)
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
    kernel = "maxout_forward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    b = as_input(kernel, "b", b, dtype, 1)
    n, (k, width) = X.shape[0], W.shape
    m = maxout_pieces(kernel, pieces, width)
    if X.shape[1] != k or b.shape != (width,):
        raise ValueError(f"{kernel}: expected X of shape (N, {k}) and b of shape ({width},), got "
                         f"{X.shape} and {b.shape}")
    Z = as_output(kernel, "Z", Z, (n, width), dtype)
    out = as_output(kernel, "out", out, (n, m), dtype)
    argmax = as_output(kernel, "argmax", argmax, (n, m), np.dtype(np.uint8))
    np.matmul(X, W, out=Z)
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
    kernel = "maxout_backward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    n, (k, width) = X.shape[0], W.shape
    m = maxout_pieces(kernel, pieces, width)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    argmax = as_input(kernel, "argmax", as_piece_indices(kernel, argmax, pieces),
                      np.dtype(np.uint8), 2)
    if X.shape[1] != k or dA.shape != (n, m) or argmax.shape != (n, m):
        raise ValueError(f"{kernel}: expected X (N, {k}), dA and argmax (N, {m}), got {X.shape}, "
                         f"{dA.shape} and {argmax.shape}")
    dZ = as_output(kernel, "dZ", dZ, (n, width), dtype)
    dW = as_gradient(kernel, "dW", dW, (k, width), dtype, accumulate)
    db = as_gradient(kernel, "db", db, (width,), dtype, accumulate)
    winners = np.arange(pieces) == argmax[:, :, None]
    np.copyto(dZ.reshape(n, m, pieces), np.where(winners, dA[:, :, None], 0))
    column_sum = dZ.sum(axis=0, dtype=np.float64)
    if accumulate:
        db += column_sum
        dW += X.T @ dZ
    else:
        db[...] = column_sum
        np.matmul(X.T, dZ, out=dW)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (n, k), dtype)
    np.matmul(dZ, W.T, out=dX)
    return dX, dW, db
