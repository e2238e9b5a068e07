# Compiled PReLU and Maxout kernels; units_numpy.py is their NumPy twin (same names, signatures,
# results).
#
# Design: as in dense.pyx, GEMMs go through the GEMM module (gemm.pxd) and everything around them
# is one fused pass over rows, split across threads above FNN_PARALLEL_MIN_WORK. Column sums (the
# slope and bias gradients) go into one float64 row of partial sums per thread, added up at the
# end, so no two threads write the same element. Maxout keeps the winning piece of each unit as
# one byte for backward.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from .gemm cimport matmul_into, weight_gradients

from ._checks import (maxout_backward_args, maxout_forward_args, prelu_backward_args,
                      prelu_forward_args)

cnp.import_array()

__all__ = ["prelu_forward", "prelu_backward", "maxout_forward", "maxout_backward"]

cdef extern from "kernels.h" nogil:
    int omp_get_max_threads()
    const long FNN_PARALLEL_MIN_WORK


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline bint _threaded(Py_ssize_t n, Py_ssize_t m):
    return n > 1 and n * m >= FNN_PARALLEL_MIN_WORK


cdef inline void _add_partials(const double* partial, int n_threads, Py_ssize_t width,
                               floating* out, bint accumulate) noexcept nogil:
    # out (+)= the sum of the n_threads rows of partial column sums (n_threads, width).
    cdef Py_ssize_t j
    cdef int t
    cdef double total
    for j in range(width):
        total = 0
        for t in range(n_threads):
            total = total + partial[t * width + j]
        out[j] = <floating> (out[j] + total) if accumulate else <floating> total


cdef inline void _prelu_row(const floating* x, const floating* a, floating* out,
                            Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(d):
        out[j] = a[j] * x[j] if x[j] <= 0 else x[j]


cdef void _prelu_forward(const floating* X, const floating* a, floating* out, Py_ssize_t n,
                         Py_ssize_t d, bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    if threaded:  # (both branches: see kernels.h)
        for i in prange(n, schedule="static"):
            _prelu_row(X + i * d, a, out + i * d, d)
    else:
        for i in range(n):
            _prelu_row(X + i * d, a, out + i * d, d)


cdef inline void _prelu_grad_row(const floating* dA, const floating* X, const floating* a,
                                 floating* dX, double* acc, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating x, g
    for j in range(d):
        x = X[j]
        g = dA[j]
        dX[j] = g if x > 0 else a[j] * g
        acc[j] += 0 if x > 0 else g * x


cdef int _prelu_backward(const floating* dA, const floating* X, const floating* a, floating* dX,
                         floating* da, Py_ssize_t n, Py_ssize_t d, bint accumulate,
                         bint threaded) noexcept nogil:
    cdef int n_threads = omp_get_max_threads() if threaded else 1
    cdef double* partial = <double*> calloc(n_threads * d, sizeof(double))
    cdef double* acc
    cdef Py_ssize_t i
    if partial == NULL:
        return -1
    if threaded:
        with parallel(num_threads=n_threads):
            acc = partial + threadid() * d
            for i in prange(n, schedule="static"):
                _prelu_grad_row(dA + i * d, X + i * d, a, dX + i * d, acc, d)
    else:
        for i in range(n):
            _prelu_grad_row(dA + i * d, X + i * d, a, dX + i * d, partial, d)
    _add_partials(partial, n_threads, d, da, accumulate)
    free(partial)
    return 0


def prelu_forward(X, a, *, out=None):
    """out = X where X > 0, a * X elsewhere, with one learnable slope a_j per feature.
    Returns out (N, D); out may be X itself."""
    X, a, out = prelu_forward_args(X, a, out)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint threaded = _threaded(n, d), single = X.dtype.num == cnp.NPY_FLOAT
    cdef void* x = _data(X)
    cdef void* slopes = _data(a)
    cdef void* o = _data(out)
    with nogil:
        if single:
            _prelu_forward[float](<float*> x, <float*> slopes, <float*> o, n, d, threaded)
        else:
            _prelu_forward[double](<double*> x, <double*> slopes, <double*> o, n, d, threaded)
    return out


def prelu_backward(dA, X, a, *, dX=None, da=None, accumulate=False):
    """dX = dA where X > 0, a * dA elsewhere; da = sum over rows of dA * X where X <= 0
    (+= when accumulate). Returns (dX, da)."""
    dA, X, a, dX, da = prelu_backward_args(dA, X, a, dX, da, accumulate)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint threaded = _threaded(n, d), single = X.dtype.num == cnp.NPY_FLOAT
    cdef void* g = _data(dA)
    cdef void* x = _data(X)
    cdef void* slopes = _data(a)
    cdef void* gx = _data(dX)
    cdef void* ga = _data(da)
    cdef bint add = accumulate
    cdef int status
    with nogil:
        if single:
            status = _prelu_backward[float](<float*> g, <float*> x, <float*> slopes, <float*> gx,
                                            <float*> ga, n, d, add, threaded)
        else:
            status = _prelu_backward[double](<double*> g, <double*> x, <double*> slopes,
                                             <double*> gx, <double*> ga, n, d, add, threaded)
    if status != 0:
        raise MemoryError("prelu_backward: could not allocate the slope-gradient partial sums")
    return dX, da


cdef inline void _maxout_row(floating* z, const floating* b, floating* out,
                             cnp.uint8_t* argmax, Py_ssize_t m, Py_ssize_t pieces) noexcept nogil:
    # z += b, then the maximum over each unit's pieces and its index (the first on ties).
    cdef Py_ssize_t j, p
    cdef floating best, v
    cdef int winner
    for j in range(m * pieces):
        z[j] = z[j] + b[j]
    for j in range(m):
        best = z[j * pieces]
        winner = 0
        for p in range(1, pieces):
            v = z[j * pieces + p]
            if v > best or (v != v and best == best):  # the first NaN wins, as np.argmax
                best = v
                winner = p
        out[j] = best
        argmax[j] = <cnp.uint8_t> winner


cdef void _maxout_forward(floating* Z, const floating* b, floating* out, cnp.uint8_t* argmax,
                          Py_ssize_t n, Py_ssize_t m, Py_ssize_t pieces,
                          bint threaded) noexcept nogil:
    cdef Py_ssize_t i, width = m * pieces
    if threaded:  # (both branches: see kernels.h)
        for i in prange(n, schedule="static"):
            _maxout_row(Z + i * width, b, out + i * m, argmax + i * m, m, pieces)
    else:
        for i in range(n):
            _maxout_row(Z + i * width, b, out + i * m, argmax + i * m, m, pieces)


cdef inline void _maxout_route_row(const floating* dA, const cnp.uint8_t* argmax, floating* dZ,
                                   double* acc, Py_ssize_t m, Py_ssize_t pieces) noexcept nogil:
    cdef Py_ssize_t j, column
    memset(dZ, 0, m * pieces * sizeof(floating))
    for j in range(m):
        column = j * pieces + argmax[j]
        dZ[column] = dA[j]
        acc[column] += dA[j]


cdef int _maxout_route(const floating* dA, const cnp.uint8_t* argmax, floating* dZ, floating* db,
                       Py_ssize_t n, Py_ssize_t m, Py_ssize_t pieces, bint accumulate,
                       bint threaded) noexcept nogil:
    # dZ: dA of each unit at its winning piece, zeros elsewhere; db (+)= column sums of dZ.
    cdef Py_ssize_t width = m * pieces
    cdef int n_threads = omp_get_max_threads() if threaded else 1
    cdef double* partial = <double*> calloc(n_threads * width, sizeof(double))
    cdef double* acc
    cdef Py_ssize_t i
    if partial == NULL:
        return -1
    if threaded:
        with parallel(num_threads=n_threads):
            acc = partial + threadid() * width
            for i in prange(n, schedule="static"):
                _maxout_route_row(dA + i * m, argmax + i * m, dZ + i * width, acc, m, pieces)
    else:
        for i in range(n):
            _maxout_route_row(dA + i * m, argmax + i * m, dZ + i * width, partial, m, pieces)
    _add_partials(partial, n_threads, width, db, accumulate)
    free(partial)
    return 0


def maxout_forward(X, W, b, *, pieces, Z=None, out=None, argmax=None):
    """out[:, j] = max over p of Z[:, j * pieces + p] with Z = X @ W + b; argmax (uint8) records
    the winning piece (the first on ties). Z is a (N, M * pieces) work buffer.
    Returns (out (N, M), argmax (N, M))."""
    X, W, b, Z, out, argmax = maxout_forward_args(X, W, b, pieces, Z, out, argmax)
    matmul_into(X, False, W, False, Z, False)
    cdef Py_ssize_t rows = out.shape[0], units = out.shape[1], k_pieces = pieces
    cdef bint threaded = _threaded(rows, Z.shape[1]), single = Z.dtype.num == cnp.NPY_FLOAT
    cdef void* z = _data(Z)
    cdef void* bias = _data(b)
    cdef void* o = _data(out)
    cdef cnp.uint8_t* winners = <cnp.uint8_t*> _data(argmax)
    with nogil:
        if single:
            _maxout_forward[float](<float*> z, <float*> bias, <float*> o, winners, rows, units,
                                   k_pieces, threaded)
        else:
            _maxout_forward[double](<double*> z, <double*> bias, <double*> o, winners, rows,
                                    units, k_pieces, threaded)
    return out, argmax


def maxout_backward(dA, X, W, argmax, *, pieces, dZ=None, dW=None, db=None, dX=None,
                    need_dX=True, accumulate=False):
    """Gradients of maxout: dZ routes dA[:, j] to the winning piece of unit j (zeros elsewhere);
    dW = X.T @ dZ, db = sum of dZ over rows (+= when accumulate), dX = dZ @ W.T unless need_dX is
    False. Returns (dX or None, dW, db)."""
    dA, X, W, argmax, dZ, dW, db = maxout_backward_args(dA, X, W, argmax, pieces, dZ, dW, db,
                                                        accumulate)
    cdef Py_ssize_t rows = dA.shape[0], units = dA.shape[1], k_pieces = pieces
    cdef bint threaded = _threaded(rows, dZ.shape[1]), single = dZ.dtype.num == cnp.NPY_FLOAT
    cdef void* g = _data(dA)
    cdef cnp.uint8_t* winners = <cnp.uint8_t*> _data(argmax)
    cdef void* dz = _data(dZ)
    cdef void* gb = _data(db)
    cdef bint add = accumulate
    cdef int status
    with nogil:
        if single:
            status = _maxout_route[float](<float*> g, winners, <float*> dz, <float*> gb, rows,
                                          units, k_pieces, add, threaded)
        else:
            status = _maxout_route[double](<double*> g, winners, <double*> dz, <double*> gb, rows,
                                           units, k_pieces, add, threaded)
    if status != 0:
        raise MemoryError("maxout_backward: could not allocate the bias-gradient partial sums")
    return weight_gradients("maxout_backward", X, W, dZ, dW, db, dX, need_dX, accumulate)
