# The one GEMM of fastnn's compiled kernels (gemm.pyx): every kernel file cimports it.
cimport numpy as cnp
from cython cimport floating

# Engines the core can run on; ENGINE_NONE: no BLAS found, callers fall back to np.matmul.
cdef enum:
    ENGINE_NONE = 0
    ENGINE_OPENBLAS = 1
    ENGINE_EXTERNAL = 2

# A second engine's row-major GEMM: C = op(A) @ op(B) + beta * C; returns 0, or -1 when it
# cannot run this call (the core then falls back to the BLAS).
ctypedef int (*sgemm_engine_t)(bint, bint, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*,
                               Py_ssize_t, const float*, Py_ssize_t, float, float*,
                               Py_ssize_t) noexcept nogil
ctypedef int (*dgemm_engine_t)(bint, bint, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*,
                               Py_ssize_t, const double*, Py_ssize_t, double, double*,
                               Py_ssize_t) noexcept nogil

cdef int gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
              floating beta, floating* C, Py_ssize_t ldc) noexcept nogil
cdef int matmul_into(cnp.ndarray A, bint trans_a, cnp.ndarray B, bint trans_b, cnp.ndarray C,
                     bint accumulate) except -1
cdef object weight_gradients(str kernel, cnp.ndarray X, cnp.ndarray W, cnp.ndarray dZ,
                             cnp.ndarray dW, object db, object dX, bint need_dX,
                             bint accumulate)
cdef void set_external_engine(sgemm_engine_t sgemm, dgemm_engine_t dgemm) noexcept
