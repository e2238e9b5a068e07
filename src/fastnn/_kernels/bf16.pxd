# The C-level entries of bf16.pyx, for kernels that write a bfloat16 copy in the same pass as
# their float32 result (the optimizer updates, the dense epilogue): the per-element conversions
# are inline (bf16.h), the array-level ones run on already-checked arrays.
cimport numpy as cnp
from libc.stdint cimport uint16_t

cdef extern from "bf16.h" nogil:
    uint16_t fnn_bf16_bits(float x)
    float fnn_bf16_to_float(uint16_t b)
    float fnn_bf16_round(float x)


cdef inline uint16_t _bf16_bits_f32(float x) noexcept nogil:
    # x rounded to the nearest bfloat16 (ties to even), as its bit pattern.
    return fnn_bf16_bits(x)


cdef inline float _round_bf16_f32(float x) noexcept nogil:
    # x rounded to the nearest bfloat16 (ties to even), as a float32.
    return fnn_bf16_round(x)


cdef void _to_bf16_f32(const float* x, uint16_t* out, Py_ssize_t size,
                       bint threaded) noexcept nogil
cdef void _from_bf16_f32(const uint16_t* b, float* out, Py_ssize_t size,
                         bint threaded) noexcept nogil
cdef void _run_to_bfloat16(cnp.ndarray X, cnp.ndarray out) noexcept
cdef void _run_round_bfloat16(cnp.ndarray X, cnp.ndarray out) noexcept
