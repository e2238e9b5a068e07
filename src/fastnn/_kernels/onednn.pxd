# oneDNN's matmul for other compiled modules (onednn.pyx): a bfloat16 GEMM with float32
# accumulation, for callers that keep bf16 copies of their operands.
from libc.stdint cimport uint16_t

cdef int gemm_bf16(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   const uint16_t* A, Py_ssize_t lda, const uint16_t* B, Py_ssize_t ldb,
                   float beta, float* C, Py_ssize_t ldc) noexcept nogil
