# Compiled bfloat16 conversions; bf16_numpy.py is their NumPy twin (same names, signatures and
# bits).
#
# Design:
# - A bfloat16 is stored as the uint16 of its bits (NumPy has no bfloat16 dtype). The rounding
#   rules (to nearest even, NaN, inf, overflow, denormals) are bf16.h's, one place for this file,
#   its twin's formula and every kernel that cimports bf16.pxd to write a bfloat16 copy in the
#   same pass as its float32 result.
# - float64 input is rounded to float32 first (so twice), as PyTorch's conversion does.
# - One pass of integer ops per element, which GCC/Clang vectorize; the flat range is cut into
#   BLOCK-sized pieces that go to OpenMP threads above FNN_PARALLEL_MIN_WORK.
# - matmul_bf16 emulates a bfloat16 GEMM with float32 accumulation (for CPUs or engines without
#   one): both operands rounded here, the float32 multiply by gemm.pyx, like every multiply.
# - Argument checks are the twin's (_bf16_checks.py). Before running them, each entry asks
#   whether its arguments already pass them unchanged (an ndarray of the right dtype,
#   C-contiguous, out None or right already): a training step converts the same buffers every
#   time, and the checks cost more than converting a small layer's weights.
cimport numpy as cnp
import numpy as np
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint16_t

from ._fastpath cimport like_typed
from .gemm cimport matmul_into

from ._bf16_checks import (from_bfloat16_args, matmul_bf16_args, round_bfloat16_args,
                           to_bfloat16_args)

cnp.import_array()

__all__ = ["to_bfloat16", "from_bfloat16", "round_bfloat16", "matmul_bf16"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK

cdef enum:
    BLOCK = 16384  # elements per piece of work handed to a thread (a multiple of any SIMD width)


# ---- the loops: one per (source, destination) pair, each a plain loop over [start, stop)

cdef inline void _bits(const floating* x, uint16_t* out, Py_ssize_t start,
                       Py_ssize_t stop) noexcept nogil:
    # (float64 goes through float32, as tensor.to(torch.bfloat16) does)
    cdef Py_ssize_t i
    for i in range(start, stop):
        out[i] = fnn_bf16_bits(<float> x[i])


cdef inline void _round(const floating* x, floating* out, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, stop):
        out[i] = fnn_bf16_round(<float> x[i])


cdef inline void _widen(const uint16_t* b, floating* out, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, stop):
        out[i] = fnn_bf16_to_float(b[i])


cdef enum Pass:
    BITS_F32, BITS_F64, ROUND_F32, ROUND_F64, WIDEN_F32, WIDEN_F64


cdef inline void _block(Pass kind, const void* src, void* dst, Py_ssize_t start,
                        Py_ssize_t stop) noexcept nogil:
    if kind == BITS_F32:
        _bits(<const float*> src, <uint16_t*> dst, start, stop)
    elif kind == BITS_F64:
        _bits(<const double*> src, <uint16_t*> dst, start, stop)
    elif kind == ROUND_F32:
        _round(<const float*> src, <float*> dst, start, stop)
    elif kind == ROUND_F64:
        _round(<const double*> src, <double*> dst, start, stop)
    elif kind == WIDEN_F32:
        _widen[float](<const uint16_t*> src, <float*> dst, start, stop)
    else:
        _widen[double](<const uint16_t*> src, <double*> dst, start, stop)


cdef void _convert(Pass kind, const void* src, void* dst, Py_ssize_t size,
                   bint threaded) noexcept nogil:
    cdef Py_ssize_t b, blocks = (size + BLOCK - 1) // BLOCK
    if threaded:  # (both branches: see kernels.h)
        for b in prange(blocks, schedule="static"):
            _block(kind, src, dst, b * BLOCK, min(size, (b + 1) * BLOCK))
    else:
        _block(kind, src, dst, 0, size)


cdef inline bint _threaded(Py_ssize_t size) noexcept:
    return size >= FNN_PARALLEL_MIN_WORK


# ---- entries on checked arrays (bf16.pxd)

cdef void _to_bf16_f32(const float* x, uint16_t* out, Py_ssize_t size,
                       bint threaded) noexcept nogil:
    _convert(BITS_F32, x, out, size, threaded)


cdef void _from_bf16_f32(const uint16_t* b, float* out, Py_ssize_t size,
                         bint threaded) noexcept nogil:
    _convert(WIDEN_F32, b, out, size, threaded)


cdef void _run_pass(Pass kind, cnp.ndarray src, cnp.ndarray dst) noexcept:
    # src and dst C-contiguous, of one size and of the dtypes `kind` converts between.
    cdef Py_ssize_t size = src.size
    cdef bint threaded = _threaded(size)
    cdef const void* a = cnp.PyArray_DATA(src)
    cdef void* b = cnp.PyArray_DATA(dst)
    with nogil:
        _convert(kind, a, b, size, threaded)


cdef void _run_to_bfloat16(cnp.ndarray X, cnp.ndarray out) noexcept:
    # X C-contiguous float32/float64, out C-contiguous uint16 of X's size.
    _run_pass(BITS_F32 if X.descr.type_num == cnp.NPY_FLOAT else BITS_F64, X, out)


cdef void _run_round_bfloat16(cnp.ndarray X, cnp.ndarray out) noexcept:
    # X C-contiguous float32/float64, out C-contiguous of X's size and dtype (may be X).
    _run_pass(ROUND_F32 if X.descr.type_num == cnp.NPY_FLOAT else ROUND_F64, X, out)


cdef void _run_from_bfloat16(cnp.ndarray B, cnp.ndarray out) noexcept:
    # B C-contiguous uint16, out C-contiguous float32/float64 of B's size.
    _run_pass(WIDEN_F32 if out.descr.type_num == cnp.NPY_FLOAT else WIDEN_F64, B, out)


# ---- Python entries

cdef inline bint _float_array(object X):
    # Whether X passes float_input unchanged: a C-contiguous float32/float64 ndarray.
    cdef int t
    if not cnp.PyArray_Check(X):
        return False
    t = (<cnp.ndarray> X).descr.type_num
    return (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and cnp.PyArray_IS_C_CONTIGUOUS(
        <cnp.ndarray> X)


cdef inline cnp.ndarray _empty_like(cnp.ndarray ref, int type_num):
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(ref), cnp.PyArray_DIMS(ref), type_num, 0)


def to_bfloat16(X, *, out=None):
    """X (float32 or float64, any shape) rounded to the nearest bfloat16, ties to even, as uint16
    bit patterns of X's shape. float64 is rounded to float32 first, as PyTorch does; inf stays
    inf, values beyond the largest bfloat16 round to inf, a NaN stays a (quiet) NaN."""
    if _float_array(X) and (out is None or like_typed(out, <cnp.ndarray> X, cnp.NPY_UINT16,
                                                      True)):
        if out is None:
            out = _empty_like(<cnp.ndarray> X, cnp.NPY_UINT16)
    else:
        X, out = to_bfloat16_args(X, out)
    _run_to_bfloat16(X, out)
    return out


def from_bfloat16(B, *, out=None, dtype=np.float32):
    """The values of the bfloat16 bit patterns B (uint16, any shape), exactly, as float32 or
    float64 (`dtype`; out, when given, must have it)."""
    cdef int t = cnp.NPY_FLOAT if dtype is np.float32 else cnp.NPY_DOUBLE
    if not ((dtype is np.float32 or dtype is np.float64) and cnp.PyArray_Check(B)
            and (<cnp.ndarray> B).descr.type_num == cnp.NPY_UINT16
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> B)
            and (out is None or like_typed(out, <cnp.ndarray> B, t, True))):
        B, out = from_bfloat16_args(B, out, dtype)
    elif out is None:
        out = _empty_like(<cnp.ndarray> B, t)
    _run_from_bfloat16(B, out)
    return out


def round_bfloat16(X, *, out=None):
    """X (float32 or float64) rounded to the nearest bfloat16 value, in X's dtype:
    from_bfloat16(to_bfloat16(X)) in one pass. Rounding both operands of a float32 matrix
    multiply with it emulates a bfloat16 GEMM with float32 accumulation. out may be X itself."""
    if _float_array(X) and (out is None or like_typed(out, <cnp.ndarray> X,
                                                      (<cnp.ndarray> X).descr.type_num, True)):
        if out is None:
            out = _empty_like(<cnp.ndarray> X, (<cnp.ndarray> X).descr.type_num)
    else:
        X, out = round_bfloat16_args(X, out)
    _run_round_bfloat16(X, out)
    return out


cdef cnp.ndarray _rounded(cnp.ndarray X, object given):
    # X (checked float32) rounded to bfloat16 values: in place when the checks made X a copy of
    # the caller's array `given` (not merely a view of it), else into a new array.
    cdef bint copy = X is not given and cnp.PyArray_CHKFLAGS(X, cnp.NPY_ARRAY_OWNDATA)
    cdef cnp.ndarray out = X if copy else _empty_like(X, cnp.NPY_FLOAT)
    _run_round_bfloat16(X, out)
    return out


def matmul_bf16(A, B, *, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (+)= op(A) @ op(B) with A and B rounded to bfloat16 and the products summed in
    float32: what a bfloat16 GEMM with float32 accumulation computes, emulated by a float32
    GEMM of the rounded operands. Returns out.

    A and B are 2-D real arrays (converted to float32 first); op, out and accumulate are as in
    matmul; out is float32.
    """
    a, b, out = matmul_bf16_args(A, B, out, trans_a, trans_b, accumulate)
    matmul_into(_rounded(a, A), bool(trans_a), _rounded(b, B), bool(trans_b), out,
                bool(accumulate))
    return out
