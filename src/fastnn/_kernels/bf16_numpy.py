"""NumPy twin of bf16.pyx: float32/float64 <-> bfloat16 (as uint16 bit patterns), round to
nearest even; see bf16.h for the rules (NaN, inf, overflow, denormals) both follow."""
import numpy as np

from ._bf16_checks import (from_bfloat16_args, matmul_bf16_args, round_bfloat16_args,
                           to_bfloat16_args)
from .gemm_numpy import matmul_into

__all__ = ["to_bfloat16", "from_bfloat16", "round_bfloat16", "matmul_bf16"]


def _bits(X, out):
    """bf16.h's fnn_bf16_bits over a C-contiguous array, into the uint16 array out. float64 goes
    through float32 first (round twice), as PyTorch's conversion does."""
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32, NaNs
        u = np.asarray(X.reshape(-1), dtype=np.float32).view(np.uint32)  # (1-D: 0-d stays arrays)
    rounded = u + np.uint32(0x7FFF)  # wraps only for NaNs, which are replaced below
    rounded += (u >> 16) & np.uint32(1)
    rounded >>= 16
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    np.copyto(rounded, (u >> 16) | np.uint32(0x0040), where=nan)
    np.copyto(out.reshape(-1), rounded, casting="unsafe")
    return out


def _widen(B, out):
    with np.errstate(invalid="ignore"):  # float64 out: a signalling NaN comes out quiet
        out.reshape(-1)[:] = (B.reshape(-1).astype(np.uint32) << 16).view(np.float32)
    return out


def to_bfloat16(X, *, out=None):
    """X (float32 or float64, any shape) rounded to the nearest bfloat16, ties to even, as uint16
    bit patterns of X's shape. float64 is rounded to float32 first, as PyTorch does; inf stays
    inf, values beyond the largest bfloat16 round to inf, a NaN stays a (quiet) NaN."""
    X, out = to_bfloat16_args(X, out)
    return _bits(X, out)


def from_bfloat16(B, *, out=None, dtype=np.float32):
    """The values of the bfloat16 bit patterns B (uint16, any shape), exactly, as float32 or
    float64 (`dtype`; out, when given, must have it)."""
    B, out = from_bfloat16_args(B, out, dtype)
    return _widen(B, out)


def round_bfloat16(X, *, out=None):
    """X (float32 or float64) rounded to the nearest bfloat16 value, in X's dtype:
    from_bfloat16(to_bfloat16(X)) in one pass. Rounding both operands of a float32 matrix
    multiply with it emulates a bfloat16 GEMM with float32 accumulation. out may be X itself."""
    X, out = round_bfloat16_args(X, out)
    return _widen(_bits(X, np.empty(X.shape, np.uint16)), out)


def _rounded(X, given):
    """X (checked float32) rounded to bfloat16 values: in place when the checks made X a copy of
    the caller's array `given` (not merely a view of it), else into a new array."""
    copy = X is not given and X.flags.owndata
    return _widen(_bits(X, np.empty(X.shape, np.uint16)), X if copy else np.empty_like(X))


def matmul_bf16(A, B, *, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (+)= op(A) @ op(B) with A and B rounded to bfloat16 and the products summed in
    float32: what a bfloat16 GEMM with float32 accumulation computes, emulated by a float32
    GEMM of the rounded operands. Returns out.

    A and B are 2-D real arrays (converted to float32 first); op, out and accumulate are as in
    matmul; out is float32.
    """
    a, b, out = matmul_bf16_args(A, B, out, trans_a, trans_b, accumulate)
    matmul_into(_rounded(a, A), trans_a, _rounded(b, B), trans_b, out, accumulate)
    return out
