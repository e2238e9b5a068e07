"""NumPy twin of dense.pyx: the same functions, signatures and results, written as plain NumPy.

It is the correctness oracle for the compiled kernels and the backend behind FASTNN_BACKEND=numpy.
Shapes: X is (N, K), W is (K, M), b is (M,), Z/A/dA/dZ are (N, M), dX is (N, K).
"""
import numpy as np

from ._checks import activation_code, as_input, as_output, float_dtype

__all__ = ["bias_act_forward", "bias_act_backward", "dense_forward", "dense_backward"]

IDENTITY, RELU, LEAKY_RELU, ELU, SIGMOID, TANH = range(6)


def _activate(Z, code, alpha):
    """Apply the activation to Z in place."""
    if code == RELU:
        np.maximum(Z, 0, out=Z)
    elif code == LEAKY_RELU:
        np.multiply(Z, np.where(Z > 0, 1.0, alpha).astype(Z.dtype), out=Z)
    elif code == ELU:
        negative = Z < 0
        Z[negative] = alpha * np.expm1(Z[negative])
    elif code == SIGMOID:
        e = np.exp(-np.abs(Z))
        s = 1.0 / (1.0 + e)
        np.copyto(Z, np.where(Z >= 0, s, e * s))
    elif code == TANH:
        np.tanh(Z, out=Z)


def _derivative_from_output(A, code, alpha):
    """d act / d z, written in terms of the activation's output A."""
    if code == IDENTITY:
        return np.ones_like(A)
    if code == RELU:
        return (A > 0).astype(A.dtype)
    if code == LEAKY_RELU:
        return np.where(A > 0, 1.0, alpha).astype(A.dtype)
    if code == ELU:
        return np.where(A > 0, 1.0, A + alpha).astype(A.dtype)
    if code == SIGMOID:
        return A * (1 - A)
    return 1 - A * A  # tanh


def bias_act_forward(Z, b, *, activation="identity", alpha=0.0, out=None):
    """out = act(Z + b). Z is (N, M), b is (M,) or None; out may be Z itself. Returns out."""
    kernel = "bias_act_forward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "Z", Z)
    Z = as_input(kernel, "Z", Z, dtype, 2)
    out = as_output(kernel, "out", out, Z.shape, dtype)
    if b is None:
        np.copyto(out, Z)
    else:
        b = as_input(kernel, "b", b, dtype, 1)
        if b.shape != (Z.shape[1],):
            raise ValueError(f"{kernel}: b must have shape ({Z.shape[1]},), got {b.shape}")
        np.add(Z, b, out=out)
    _activate(out, code, alpha)
    return out


def bias_act_backward(dA, A, *, activation="identity", alpha=0.0, dZ=None, db=None,
                      accumulate=False):
    """dZ = dA * act'(A); db = sum of dZ over rows (+= when accumulate). Returns (dZ, db).

    dA and A are (N, M); dZ may be dA itself. db=None skips the bias gradient.
    """
    kernel = "bias_act_backward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "A", A)
    A = as_input(kernel, "A", A, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    if dA.shape != A.shape:
        raise ValueError(f"{kernel}: dA must have shape {A.shape}, got {dA.shape}")
    dZ = as_output(kernel, "dZ", dZ, A.shape, dtype)
    np.multiply(dA, _derivative_from_output(A, code, alpha), out=dZ)
    if db is not None:
        db = as_output(kernel, "db", db, (A.shape[1],), dtype)
        column_sum = dZ.sum(axis=0, dtype=np.float64)
        if accumulate:
            db += column_sum
        else:
            db[...] = column_sum
    return dZ, db


def dense_forward(X, W, b, *, activation="identity", alpha=0.0, out=None):
    """out = act(X @ W + b) for X (N, K), W (K, M), b (M,). Returns out (N, M)."""
    kernel = "dense_forward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"{kernel}: X must have shape (N, {W.shape[0]}), got {X.shape}")
    out = as_output(kernel, "out", out, (X.shape[0], W.shape[1]), dtype)
    np.matmul(X, W, out=out)
    return bias_act_forward(out, b, activation=activation, alpha=alpha, out=out)


def dense_backward(dA, X, W, A, *, activation="identity", alpha=0.0, dZ=None, dW=None, db=None,
                   dX=None, need_dX=True, accumulate=False):
    """Gradients of a dense layer A = act(X @ W + b), given dA = dL/dA.

    dZ = dA * act'(A) (dZ may be dA itself); dW = X.T @ dZ; db = sum of dZ over rows;
    dX = dZ @ W.T, skipped when need_dX is False (a network's first layer).
    With accumulate, dW and db are added to instead of overwritten; dX is always overwritten.
    Returns (dX or None, dW, db).
    """
    kernel = "dense_backward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    n, (k, m) = X.shape[0], W.shape
    if X.shape[1] != k:
        raise ValueError(f"{kernel}: X must have shape (N, {k}), got {X.shape}")
    if np.shape(A) != (n, m):
        raise ValueError(f"{kernel}: A must have shape {(n, m)}, got {np.shape(A)}")
    if db is None:
        db = np.zeros(m, dtype=dtype)
    dZ, db = bias_act_backward(dA, A, activation=activation, alpha=alpha, dZ=dZ, db=db,
                               accumulate=accumulate)
    dW = as_output(kernel, "dW", dW, (k, m), dtype)
    if accumulate:
        dW += X.T @ dZ
    else:
        np.matmul(X.T, dZ, out=dW)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (n, k), dtype)
    np.matmul(dZ, W.T, out=dX)
    return dX, dW, db
