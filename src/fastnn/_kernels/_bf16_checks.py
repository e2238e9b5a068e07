"""Argument checks of the bfloat16 conversions (bf16.pyx, bf16_numpy.py), shared by both.

A bfloat16 array is a uint16 array of bit patterns (NumPy has no bfloat16 dtype). IN arrays of
any shape and memory layout are accepted (and made C-contiguous); the float ones must already be
float32 or float64, and the bfloat16 ones uint16: any other integer array would be a silent
reinterpretation or wrap-around.
"""
import numpy as np

from ._checks import FLOAT_DTYPES, as_output, float_dtype
from ._gemm_checks import matmul_args

BF16 = np.dtype(np.uint16)


def float_input(kernel, X):
    """X (a float32 or float64 array of any shape), C-contiguous."""
    dtype = float_dtype(kernel, "X", X)
    return np.asarray(X, dtype=dtype, order="C")


def bf16_input(kernel, B):
    """B (a uint16 array of bfloat16 bit patterns, any shape), C-contiguous."""
    if not isinstance(B, np.ndarray) or B.dtype != BF16:
        raise TypeError(f"{kernel}: B must be a uint16 array of bfloat16 bit patterns, got "
                        f"{type(B).__name__} of dtype {getattr(B, 'dtype', None)}")
    return np.asarray(B, order="C")


def to_bfloat16_args(X, out):
    """(X, out) of to_bfloat16: X float32/float64 C-contiguous, out uint16 of X's shape."""
    X = float_input("to_bfloat16", X)
    return X, as_output("to_bfloat16", "out", out, X.shape, BF16)


def round_bfloat16_args(X, out):
    """(X, out) of round_bfloat16: X float32/float64 C-contiguous, out of X's shape and dtype."""
    X = float_input("round_bfloat16", X)
    return X, as_output("round_bfloat16", "out", out, X.shape, X.dtype)


def from_bfloat16_args(B, out, dtype):
    """(B, out) of from_bfloat16: B uint16 C-contiguous, out float32 or float64 (`dtype`) of
    B's shape."""
    kernel = "from_bfloat16"
    try:  # (np.dtype(None) would be float64)
        resolved = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if not any(resolved is d for d in FLOAT_DTYPES):  # (== would coerce None to float64 too)
        raise TypeError(f"{kernel}: dtype must be float32 or float64, got {dtype!r}")
    B = bf16_input(kernel, B)
    return B, as_output(kernel, "out", out, B.shape, resolved)


def matmul_bf16_args(A, B, out, trans_a, trans_b, accumulate):
    """(A, B, out) of matmul_bf16: matmul's checks, with A and B (any real dtype) converted to
    float32 and out float32."""
    return matmul_args(A, B, out, trans_a, trans_b, accumulate, kernel="matmul_bf16",
                       dtype=np.dtype(np.float32))
