# The one GEMM module: every matrix multiply of fastnn's compiled kernels goes through here;
# gemm_numpy.py is its NumPy twin (np.matmul).
#
# Design (scikit-learn's _cython_blas pattern):
# - `gemm` is the core: a row-major C = op(A) @ op(B) + beta * C over raw pointers, fused over
#   float/double, `noexcept nogil`, cimported by the kernel files (dense, units, bf16). The
#   row-major to column-major swap happens in one place, inside the BLAS's CBLAS interface.
# - The BLAS is NumPy's own: its CBLAS sgemm/dgemm, found with ctypes when this module is
#   imported and checked against np.matmul once. When they cannot be found (or fail that check),
#   the core returns -1 and `matmul_into` multiplies with np.matmul instead: slower per call,
#   same results.
# - Engines: the core consults one module-level selector (`_engine`); a second engine registers
#   its GEMMs with set_external_engine and is called in place of the BLAS.
# - `matmul_into` is the ndarray entry point for kernels (operands already checked: C-contiguous,
#   2-D, one float dtype); `matmul` is the checked def wrapper for Python and tests.
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.string cimport memset

import ctypes

import numpy as np

from ._checks import as_output
from ._gemm_checks import matmul_args

cnp.import_array()

__all__ = ["matmul"]

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112

ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                           const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*,
                           int64_t, const double*, int64_t, double, double*,
                           int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int, const float*,
                           int, float, float*, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int) noexcept nogil

cdef void* _sgemm = NULL
cdef void* _dgemm = NULL
cdef bint _ilp64 = False
cdef int _engine = ENGINE_NONE
cdef int _blas_engine = ENGINE_NONE  # what _engine is without an external engine
cdef sgemm_engine_t _external_sgemm = NULL
cdef dgemm_engine_t _external_dgemm = NULL
cdef Py_ssize_t _INT32_MAX = 2147483647


cdef int gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
              floating beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    # C (m, n) = op(A) @ op(B) + beta * C, row-major; op(A) is (m, k), op(B) is (k, n); lda, ldb,
    # ldc are the stored row lengths. beta is 0 (overwrite) or 1 (accumulate). Returns 0, or -1
    # when no engine can run it (the caller falls back to np.matmul).
    cdef Py_ssize_t i
    if m == 0 or n == 0:
        return 0
    if k == 0:  # an empty sum (BLASes disagree on whether they read ld < 1)
        if beta == 0:
            for i in range(m):
                memset(C + i * ldc, 0, n * sizeof(floating))
        return 0
    cdef sgemm_engine_t sgemm_engine
    cdef dgemm_engine_t dgemm_engine
    if _engine == ENGINE_EXTERNAL:
        # read once and checked: another thread may unregister the engine meanwhile
        if floating is float:
            sgemm_engine = _external_sgemm
            if sgemm_engine != NULL and \
                    sgemm_engine(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta, C, ldc) == 0:
                return 0
        else:
            dgemm_engine = _external_dgemm
            if dgemm_engine != NULL and \
                    dgemm_engine(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta, C, ldc) == 0:
                return 0
        if _blas_engine == ENGINE_NONE:
            return -1
    elif _engine == ENGINE_NONE:
        return -1
    cdef int ta = TRANS if trans_a else NO_TRANS
    cdef int tb = TRANS if trans_b else NO_TRANS
    if _ilp64:
        if floating is float:
            (<sgemm64_t> _sgemm)(ROW_MAJOR, ta, tb, m, n, k, 1, A, lda, B, ldb, beta, C, ldc)
        else:
            (<dgemm64_t> _dgemm)(ROW_MAJOR, ta, tb, m, n, k, 1, A, lda, B, ldb, beta, C, ldc)
        return 0
    if m > _INT32_MAX or n > _INT32_MAX or k > _INT32_MAX or lda > _INT32_MAX \
            or ldb > _INT32_MAX or ldc > _INT32_MAX:
        return -1
    if floating is float:
        (<sgemm32_t> _sgemm)(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, 1, A, <int> lda, B,
                             <int> ldb, beta, C, <int> ldc)
    else:
        (<dgemm32_t> _dgemm)(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, 1, A, <int> lda, B,
                             <int> ldb, beta, C, <int> ldc)
    return 0


cdef int matmul_into(cnp.ndarray A, bint trans_a, cnp.ndarray B, bint trans_b, cnp.ndarray C,
                     bint accumulate) except -1:
    # C (+)= op(A) @ op(B) for C-contiguous 2-D arrays of one float dtype and matching shapes
    # (not checked: callers have).
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t lda = A.shape[1], ldb = B.shape[1], ldc = n
    cdef void* a = cnp.PyArray_DATA(A)
    cdef void* b = cnp.PyArray_DATA(B)
    cdef void* c = cnp.PyArray_DATA(C)
    cdef bint single = C.descr.type_num == cnp.NPY_FLOAT
    cdef int status
    with nogil:
        if single:
            status = gemm[float](trans_a, trans_b, m, n, k, <float*> a, lda, <float*> b, ldb,
                                 1 if accumulate else 0, <float*> c, ldc)
        else:
            status = gemm[double](trans_a, trans_b, m, n, k, <double*> a, lda, <double*> b, ldb,
                                  1 if accumulate else 0, <double*> c, ldc)
    if status != 0:
        _matmul_numpy(A.T if trans_a else A, B.T if trans_b else B, C, accumulate)
    return 0


def _matmul_numpy(a, b, out, accumulate):
    # The fallback when no BLAS GEMM was found (or a size exceeds its 32-bit indices).
    if accumulate:
        out += np.matmul(a, b)
    else:
        np.matmul(a, b, out=out)


cdef object weight_gradients(str kernel, cnp.ndarray X, cnp.ndarray W, cnp.ndarray dZ,
                             cnp.ndarray dW, object db, object dX, bint need_dX,
                             bint accumulate):
    # The end of a dense or maxout backward, given dZ = dL/d(X @ W + b): dW (+)= X.T @ dZ, then
    # dX = dZ @ W.T unless need_dX is False (dX is checked only then, after dW is written).
    # Returns (dX or None, dW, db).
    matmul_into(X, True, dZ, False, dW, accumulate)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (X.shape[0], W.shape[0]), dW.dtype)
    matmul_into(dZ, False, W, True, dX, False)
    return dX, dW, db


def matmul(A, B, *, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (+)= op(A) @ op(B), op transposing when trans_a / trans_b. Returns out.

    A and B are 2-D real arrays, converted to A's float dtype (float32 or float64) and C order
    when needed; out (op(A).shape[0], op(B).shape[1]) is allocated when None, else a writeable
    C-contiguous array of that dtype; accumulate adds to out (which must then be given).
    """
    A, B, out = matmul_args(A, B, out, trans_a, trans_b, accumulate)
    matmul_into(A, bool(trans_a), B, bool(trans_b), out, bool(accumulate))
    return out


def engine():
    """The engine the compiled GEMM runs on: "openblas" (NumPy's BLAS, through its CBLAS),
    "external" (one registered with set_external_engine) or "numpy" (np.matmul: no CBLAS GEMM
    of NumPy's BLAS was found)."""
    return {ENGINE_NONE: "numpy", ENGINE_OPENBLAS: "openblas",
            ENGINE_EXTERNAL: "external"}[_engine]


cdef void set_external_engine(sgemm_engine_t sgemm, dgemm_engine_t dgemm) noexcept:
    """Run the core's GEMMs on these functions (both given), or on the BLAS again (NULL)."""
    global _engine, _external_sgemm, _external_dgemm
    if sgemm != NULL and dgemm != NULL:
        _external_sgemm, _external_dgemm, _engine = sgemm, dgemm, ENGINE_EXTERNAL
    else:
        _external_sgemm, _external_dgemm, _engine = NULL, NULL, _blas_engine


# ---- Finding NumPy's CBLAS GEMMs (Linux): dlsym on NumPy's core extension searches the
# libraries it links, then every OpenBLAS listed in /proc/self/maps. Found once, at import.

# (sgemm, dgemm, 64-bit integers): the CBLAS names NumPy's BLAS may export. NumPy's wheels bundle
# OpenBLAS with 64-bit integers and the scipy_ prefix and 64_ suffix; builds against a system
# BLAS use the plain names.
_GEMM_NAMES = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
               ("cblas_sgemm64_", "cblas_dgemm64_", True),
               ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
               ("cblas_sgemm", "cblas_dgemm", None)]


def _loaded_openblas_paths():
    try:
        with open("/proc/self/maps") as maps:
            lines = [line for line in maps if "openblas" in line.lower()]
    except OSError:
        return []
    # the path is the sixth field (no [-1]: wraparound is off)
    return sorted({line.split(None, 5)[5].strip() for line in lines if "/" in line})


def _numpy_blas_uses_64bit_integers():
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return "64BITINT" in str(blas.get("openblas configuration", "")).upper() or \
            "ilp64" in str(blas.get("name", "")).lower()
    except Exception:
        return False


def _libraries_to_search():
    handles = []
    try:
        import numpy._core._multiarray_umath as core
    except ImportError:
        try:
            import numpy.core._multiarray_umath as core
        except ImportError:
            core = None
    for path in ([core.__file__] if core is not None else []) + _loaded_openblas_paths():
        try:
            handles.append(ctypes.CDLL(path))
        except OSError:
            continue
    return handles


def _find_gemms():
    """(address of cblas_sgemm, of cblas_dgemm, whether they take 64-bit integers), or None."""
    for lib in _libraries_to_search():
        for s_name, d_name, ilp64 in _GEMM_NAMES:
            sgemm, dgemm = getattr(lib, s_name, None), getattr(lib, d_name, None)
            if sgemm is not None and dgemm is not None:
                if ilp64 is None:
                    ilp64 = _numpy_blas_uses_64bit_integers()
                return (ctypes.cast(sgemm, ctypes.c_void_p).value,
                        ctypes.cast(dgemm, ctypes.c_void_p).value, ilp64)
    return None


def _gemms_agree():
    """Whether the core multiplies like np.matmul, with every transpose and accumulation."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        A, B = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
        C0 = rng.standard_normal((5, 4)).astype(dtype)
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = np.ascontiguousarray(A.T) if trans_a else A
                b = np.ascontiguousarray(B.T) if trans_b else B
                for accumulate in (False, True):
                    C = C0.copy()
                    matmul_into(a, trans_a, b, trans_b, C, accumulate)
                    expected = A @ B + C0 if accumulate else A @ B
                    if not np.allclose(C, expected, rtol=1e-5, atol=1e-5):
                        return False
    return True


def _use_blas(found):
    """Point the core at these GEMM addresses (None: none) and keep them if they pass the
    self-test. Returns whether the BLAS engine is in use."""
    global _sgemm, _dgemm, _ilp64, _engine, _blas_engine
    _engine = _blas_engine = ENGINE_NONE
    if found:
        _sgemm, _dgemm, _ilp64 = <void*> <size_t> found[0], <void*> <size_t> found[1], found[2]
        _engine = _blas_engine = ENGINE_OPENBLAS
        if not _gemms_agree():
            _engine = _blas_engine = ENGINE_NONE
    if _engine == ENGINE_NONE:
        _sgemm = _dgemm = NULL
    return _engine == ENGINE_OPENBLAS


_use_blas(_find_gemms())
