"""NumPy twin of dense.pyx: the same functions, signatures and results, written as plain NumPy.

It is the correctness oracle for the compiled kernels and the backend behind FASTNN_BACKEND=numpy.
Shapes: X is (N, K), W is (K, M), b is (M,), Z/A/dA/dZ are (N, M), dX is (N, K).
"""
import numpy as np

from ._checks import activation_code, as_gradient, as_input, as_output, float_dtype

__all__ = ["bias_act_forward", "bias_act_backward", "dense_forward", "dense_backward"]

IDENTITY, RELU, LEAKY_RELU, ELU, SIGMOID, TANH = range(6)


def _activate(Z, code, alpha):
    """Apply the activation to Z in place, in Z's dtype (alpha is cast to it, as in dense.pyx)."""
    alpha = Z.dtype.type(alpha)
    if code == RELU:
        np.maximum(Z, 0, out=Z)
    elif code == LEAKY_RELU:
        # z if z > 0 else alpha * z, as z times a slope of 1 or alpha.
        np.multiply(Z, np.where(Z > 0, Z.dtype.type(1), alpha), out=Z)
    elif code == ELU:
        # z if z > 0 else alpha * expm1(z) (both are z at z = 0, so only z < 0 is replaced);
        # min(z, 0) keeps expm1 from overflowing on the entries the select leaves as they are.
        negative = np.minimum(Z, 0)
        np.expm1(negative, out=negative)
        negative *= alpha
        np.copyto(Z, negative, where=Z < 0)
    elif code == SIGMOID:
        # Stable: with e = exp(-|z|) and s = 1 / (1 + e), sigmoid(z) is s for z >= 0, e * s below.
        e = np.abs(Z)
        np.negative(e, out=e)
        np.exp(e, out=e)
        s = np.add(e, 1)
        np.divide(1, s, out=s)
        e *= s
        np.copyto(Z, np.where(Z >= 0, s, e))
    elif code == TANH:
        np.tanh(Z, out=Z)


def _activation_backward(dA, A, code, alpha, dZ):
    """dZ = dA * act'(A), the derivative written in terms of the activation's output A.

    dZ may be dA itself: the derivative is built in a separate array before dZ is written.
    """
    alpha = A.dtype.type(alpha)
    if code == IDENTITY:
        np.copyto(dZ, dA)
        return
    if code == RELU:
        np.multiply(dA, A > 0, out=dZ)  # the boolean mask multiplies as 1 or 0
        return
    if code == LEAKY_RELU:
        slope = np.where(A > 0, A.dtype.type(1), alpha)
    elif code == ELU:
        slope = np.add(A, alpha)  # A + alpha = alpha * exp(z) for z <= 0
        np.copyto(slope, 1, where=A > 0)
    elif code == SIGMOID:
        slope = np.subtract(1, A)
        slope *= A
    else:  # tanh
        slope = np.multiply(A, A)
        np.subtract(1, slope, out=slope)
    np.multiply(dA, slope, out=dZ)


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
    _activation_backward(dA, A, code, alpha, dZ)
    if db is not None:
        db = as_output(kernel, "db", db, (A.shape[1],), dtype)
        column_sum = dZ.sum(axis=0, dtype=np.float64)
        if accumulate:
            db += column_sum
        else:
            db[...] = column_sum
    return dZ, db


def dense_forward(X, W, b, *, activation="identity", alpha=0.0, out=None):
    """out = act(X @ W + b) for X (N, K), W (K, M), b (M,) or None. Returns out (N, M)."""
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
    A = as_input(kernel, "A", A, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    if A.shape != (n, m):
        raise ValueError(f"{kernel}: A must have shape {(n, m)}, got {A.shape}")
    if dA.shape != (n, m):
        raise ValueError(f"{kernel}: dA must have shape {(n, m)}, got {dA.shape}")
    if db is None:
        db = np.zeros(m, dtype=dtype)
    dZ, db = bias_act_backward(dA, A, activation=activation, alpha=alpha, dZ=dZ, db=db,
                               accumulate=accumulate)
    dW = as_gradient(kernel, "dW", dW, (k, m), dtype, accumulate)
    if accumulate:
        dW += X.T @ dZ
    else:
        np.matmul(X.T, dZ, out=dW)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (n, k), dtype)
    np.matmul(dZ, W.T, out=dX)
    return dX, dW, db
