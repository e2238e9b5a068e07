"""NumPy twin of dense.pyx: the same functions, signatures and results, written as plain NumPy.

It is the correctness oracle for the compiled kernels and the backend behind FASTNN_BACKEND=numpy.
Shapes: X is (N, K), W is (K, M), b is (M,), Z/A/dA/dZ are (N, M), dX is (N, K).
"""
import numpy as np

from ._checks import (bias_act_backward_args, bias_act_forward_args, dense_backward_args,
                      dense_forward_args)
from .bf16_numpy import round_bfloat16
from .gemm_numpy import matmul_into, weight_gradients

__all__ = ["bias_act_forward", "bias_act_backward", "dense_forward", "dense_backward"]

IDENTITY, RELU, LEAKY_RELU, ELU, SIGMOID, TANH = range(6)
TANH_SATURATES_F32 = np.float32(9.010914)  # the same constant as fnn_tanhf in kernels.h


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
        # float32: +-1 exactly from the first float32 whose tanh rounds to 1, as dense.pyx does;
        # NumPy's own float32 tanh saturates at a point that depends on its SIMD code (10.0 with
        # AVX2), and the gradient 1 - A**2 would differ between the backends in between.
        saturated = np.abs(Z) >= TANH_SATURATES_F32 if Z.dtype == np.float32 else None
        np.tanh(Z, out=Z)
        if saturated is not None:
            np.copyto(Z, np.copysign(np.float32(1), Z), where=saturated)


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


def _bias_act(Z, b, code, alpha, out, round_bf16):
    """out = act(Z + b), adding nothing when b is None, then rounded to bfloat16 when
    round_bf16; out may be Z."""
    if b is None:
        np.copyto(out, Z)
    else:
        np.add(Z, b, out=out)
    _activate(out, code, alpha)
    if round_bf16:
        round_bfloat16(out, out=out)


def _bias_act_grad(dA, A, code, alpha, dZ, db, accumulate, round_bf16):
    """dZ = dA * act'(A); db (+)= the column sums of dZ unless db is None; then dZ is rounded
    to bfloat16 when round_bf16 (db sums it unrounded)."""
    _activation_backward(dA, A, code, alpha, dZ)
    if db is not None:
        column_sum = dZ.sum(axis=0, dtype=np.float64)
        if accumulate:
            db += column_sum
        else:
            db[...] = column_sum
    if round_bf16:
        round_bfloat16(dZ, out=dZ)


def bias_act_forward(Z, b, *, activation="identity", alpha=0.0, out=None, round_bf16=False):
    """out = act(Z + b). Z is (N, M), b is (M,) or None; out may be Z itself. Returns out.

    round_bf16 (float32 only): out holds act(Z + b) rounded to bfloat16 (nearest even).
    """
    code, alpha, Z, b, out = bias_act_forward_args(Z, b, activation, alpha, out, round_bf16)
    _bias_act(Z, b, code, alpha, out, round_bf16)
    return out


def bias_act_backward(dA, A, *, activation="identity", alpha=0.0, dZ=None, db=None,
                      accumulate=False, round_bf16=False):
    """dZ = dA * act'(A); db = sum of dZ over rows (+= when accumulate). Returns (dZ, db).

    dA and A are (N, M); dZ may be dA itself. db=None skips the bias gradient.
    round_bf16 (float32 only): db sums the unrounded dZ, dZ is stored rounded to bfloat16.
    """
    code, alpha, dA, A, dZ, db = bias_act_backward_args(dA, A, activation, alpha, dZ, db,
                                                        round_bf16)
    _bias_act_grad(dA, A, code, alpha, dZ, db, accumulate, round_bf16)
    return dZ, db


def dense_forward(X, W, b, *, activation="identity", alpha=0.0, out=None, round_bf16=False):
    """out = act(X @ W + b) for X (N, K), W (K, M), b (M,) or None. Returns out (N, M).

    round_bf16 (float32 only): out is rounded to bfloat16 after the activation, in the same pass.
    """
    code, alpha, X, W, b, out = dense_forward_args(X, W, b, activation, alpha, out, round_bf16)
    matmul_into(X, False, W, False, out, False)
    _bias_act(out, b, code, alpha, out, round_bf16)
    return out


def dense_backward(dA, X, W, A, *, activation="identity", alpha=0.0, dZ=None, dW=None, db=None,
                   dX=None, need_dX=True, accumulate=False, round_bf16=False):
    """Gradients of a dense layer A = act(X @ W + b), given dA = dL/dA.

    dZ = dA * act'(A) (dZ may be dA itself); dW = X.T @ dZ; db = sum of dZ over rows;
    dX = dZ @ W.T, skipped when need_dX is False (a network's first layer).
    With accumulate, dW and db are added to instead of overwritten; dX is always overwritten.
    round_bf16 (float32 only): db sums the unrounded dZ; dZ is stored rounded to bfloat16, and
    dW and dX are computed from that rounded dZ.
    Returns (dX or None, dW, db).
    """
    code, alpha, dA, X, W, A, dZ, dW, db = dense_backward_args(dA, X, W, A, activation, alpha, dZ,
                                                               dW, db, accumulate, round_bf16)
    _bias_act_grad(dA, A, code, alpha, dZ, db, accumulate, round_bf16)
    return weight_gradients("dense_backward", X, W, dZ, dW, db, dX, need_dX, accumulate)
