# Compiled batch-normalization kernels; batchnorm_numpy.py is their NumPy twin (same names,
# signatures, results).
#
# Design:
# - Forward, training mode: one pass over X accumulates, per feature, the sums of x - K and
#   (x - K)**2 with the shift K = the first row, in float64. Since |mean - K| is of the order of
#   the standard deviation, var = s2/N - (s1/N)**2 does not cancel catastrophically even for
#   features around 1e4 with std 1 (the textbook E[x^2] - E[x]^2 would). A second pass writes
#   out = (x - mean) * (gamma * inv_std) + beta: centred before it is scaled, never
#   x * scale + shift, which cancels for large means.
# - Backward in the compact closed form, two passes: column sums of dY and dY * xhat, then
#   dX = gamma * inv_std * (dY - sum(dY)/N - xhat * sum(dY * xhat)/N). xhat = (x - mean) * inv_std
#   is recomputed from X in both passes rather than stored.
# - Threads split the rows above FNN_PARALLEL_MIN_WORK; no two threads write the same element.
#   Column sums go into one float64 row of partial sums per thread, added up at the end (so the
#   statistics may differ in the last bits between thread counts, like any parallel reduction).
# - Argument checks are the twin's (_batchnorm_checks.py), so both backends accept and reject alike.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free, malloc

from .op cimport Op

from ._batchnorm_checks import batchnorm_backward_args, batchnorm_forward_args

cnp.import_array()

__all__ = ["batchnorm_forward", "batchnorm_backward"]

cdef extern from "kernels.h" nogil:
    int omp_get_max_threads()
    const long FNN_PARALLEL_MIN_WORK


cdef inline void _shifted_sums_row(const floating* x, const floating* k, double* s1, double* s2,
                                   Py_ssize_t d) noexcept nogil:
    # s1 += x - k, s2 += (x - k)**2 for one row.
    cdef Py_ssize_t j
    cdef double v
    for j in range(d):
        v = <double> x[j] - <double> k[j]
        s1[j] += v
        s2[j] += v * v


cdef inline void _shifted_sums_4rows(const floating* x, const floating* k, double* s1,
                                     double* s2, Py_ssize_t d) noexcept nogil:
    # _shifted_sums_row for rows x[0:4] (row stride d): the sums stay in memory, so adding four
    # rows at a time loads and stores them a quarter as often (that traffic, not the arithmetic,
    # bounded the one-row loop).
    cdef Py_ssize_t j
    cdef double kj, v0, v1, v2, v3
    for j in range(d):
        kj = k[j]
        v0 = x[j] - kj
        v1 = x[d + j] - kj
        v2 = x[2 * d + j] - kj
        v3 = x[3 * d + j] - kj
        s1[j] += (v0 + v1) + (v2 + v3)
        s2[j] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)


cdef inline void _normalize_row(const floating* x, const floating* mean, const floating* scale,
                                const floating* beta, floating* out, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(d):
        out[j] = (x[j] - mean[j]) * scale[j] + beta[j]


cdef inline void _grad_sums_row(const floating* dy, const floating* x, const floating* mean,
                                const floating* inv_std, double* s1, double* s2,
                                Py_ssize_t d) noexcept nogil:
    # s1 += dy, s2 += dy * xhat for one row.
    cdef Py_ssize_t j
    cdef floating g
    for j in range(d):
        g = dy[j]
        s1[j] += g
        s2[j] += g * ((x[j] - mean[j]) * inv_std[j])


cdef inline void _grad_sums_4rows(const floating* dy, const floating* x, const floating* mean,
                                  const floating* inv_std, double* s1, double* s2,
                                  Py_ssize_t d) noexcept nogil:
    # _grad_sums_row for rows 0:4 of dy and x (row stride d), as in _shifted_sums_4rows.
    cdef Py_ssize_t j
    cdef floating mj, sj, g0, g1, g2, g3
    for j in range(d):
        mj = mean[j]
        sj = inv_std[j]
        g0 = dy[j]
        g1 = dy[d + j]
        g2 = dy[2 * d + j]
        g3 = dy[3 * d + j]
        s1[j] += (<double> g0 + <double> g1) + (<double> g2 + <double> g3)
        s2[j] += ((<double> (g0 * ((x[j] - mj) * sj)) + <double> (g1 * ((x[d + j] - mj) * sj)))
                  + (<double> (g2 * ((x[2 * d + j] - mj) * sj))
                     + <double> (g3 * ((x[3 * d + j] - mj) * sj))))


cdef inline void _grad_input_row(const floating* dy, const floating* x, const floating* mean,
                                 const floating* inv_std, const floating* scale,
                                 const floating* mean_dy, const floating* mean_dy_xhat,
                                 floating* dx, Py_ssize_t d) noexcept nogil:
    # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)) for one row; dx may be dy.
    cdef Py_ssize_t j
    for j in range(d):
        dx[j] = (dy[j] - mean_dy[j] - ((x[j] - mean[j]) * inv_std[j]) * mean_dy_xhat[j]) * scale[j]


cdef inline void _scale_row(const floating* dy, const floating* scale, floating* dx,
                            Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(d):
        dx[j] = dy[j] * scale[j]


cdef inline void _sums_4rows(const floating* A, const floating* X, const floating* X0,
                             const floating* mean, const floating* inv_std, double* acc,
                             Py_ssize_t d) noexcept nogil:
    # Four rows of _column_sums: A and X point at the block's first row, X0 at X's first row.
    if mean == NULL:
        _shifted_sums_4rows(A, X0, acc, acc + d, d)
    else:
        _grad_sums_4rows(A, X, mean, inv_std, acc, acc + d, d)


cdef double* _column_sums(const floating* A, const floating* X, const floating* mean,
                          const floating* inv_std, Py_ssize_t n, Py_ssize_t d,
                          bint threaded) noexcept nogil:
    # Two float64 rows (2, D) of column sums: those of A - X[0] and (A - X[0])**2 when mean is
    # NULL (the forward statistics; A is X), else those of A and A * xhat (the backward pass;
    # A is dY). Returns NULL when out of memory; the caller frees the result.
    cdef int n_threads = omp_get_max_threads() if threaded else 1
    cdef double* partial = <double*> calloc(n_threads * 2 * d, sizeof(double))
    cdef double* acc
    cdef Py_ssize_t blocks = n // 4, i, j
    cdef int t
    if partial == NULL:
        return NULL
    if threaded:  # (both branches: see kernels.h)
        with parallel(num_threads=n_threads):
            acc = partial + threadid() * 2 * d
            for i in prange(blocks, schedule="static"):
                _sums_4rows(A + 4 * i * d, X + 4 * i * d, X, mean, inv_std, acc, d)
    else:
        for i in range(blocks):
            _sums_4rows(A + 4 * i * d, X + 4 * i * d, X, mean, inv_std, partial, d)
    for i in range(4 * blocks, n):
        if mean == NULL:
            _shifted_sums_row(A + i * d, X, partial, partial + d, d)
        else:
            _grad_sums_row(A + i * d, X + i * d, mean, inv_std, partial, partial + d, d)
    for t in range(1, n_threads):
        for j in range(2 * d):
            partial[j] += partial[t * 2 * d + j]
    return partial


cdef int _batchnorm_forward(const floating* X, const floating* gamma, const floating* beta,
                            floating* running_mean, floating* running_var, floating* out,
                            floating* mean, floating* inv_std, Py_ssize_t n, Py_ssize_t d,
                            bint training, double momentum, double eps,
                            bint threaded) noexcept nogil:
    cdef floating* scale = <floating*> malloc(d * sizeof(floating))
    cdef double* sums = NULL
    cdef double m1, var, batch_mean
    cdef Py_ssize_t i, j
    if scale == NULL:
        return -1
    if training:
        sums = _column_sums(X, X, <floating*> NULL, <floating*> NULL, n, d, threaded)
        if sums == NULL:
            free(scale)
            return -1
        for j in range(d):
            m1 = sums[j] / n
            var = sums[d + j] / n - m1 * m1
            if var < 0:  # rounding can leave -tiny for a constant feature
                var = 0
            batch_mean = X[j] + m1
            mean[j] = <floating> batch_mean
            inv_std[j] = <floating> (1.0 / sqrt(var + eps))
            running_mean[j] = <floating> ((1.0 - momentum) * running_mean[j]
                                          + momentum * batch_mean)
            running_var[j] = <floating> ((1.0 - momentum) * running_var[j]
                                         + momentum * (var * (<double> n / (n - 1))))
        free(sums)
    else:
        for j in range(d):
            mean[j] = running_mean[j]
            inv_std[j] = <floating> (1.0 / sqrt(<double> running_var[j] + eps))
    for j in range(d):
        scale[j] = gamma[j] * inv_std[j]
    if threaded:
        for i in prange(n, schedule="static"):
            _normalize_row(X + i * d, mean, scale, beta, out + i * d, d)
    else:
        for i in range(n):
            _normalize_row(X + i * d, mean, scale, beta, out + i * d, d)
    free(scale)
    return 0


cdef int _batchnorm_backward(const floating* dY, const floating* X, const floating* gamma,
                             const floating* mean, const floating* inv_std, floating* dX,
                             floating* dgamma, floating* dbeta, Py_ssize_t n, Py_ssize_t d,
                             bint training, bint accumulate, bint threaded) noexcept nogil:
    cdef floating* coef = <floating*> malloc(3 * d * sizeof(floating))
    cdef floating* scale = coef
    cdef floating* mean_dy = coef + d
    cdef floating* mean_dy_xhat = coef + 2 * d
    cdef double* sums
    cdef Py_ssize_t i, j
    if coef == NULL:
        return -1
    # Pass 1: sums[j] = sum of dY, sums[d + j] = sum of dY * xhat.
    sums = _column_sums(dY, X, mean, inv_std, n, d, threaded)
    if sums == NULL:
        free(coef)
        return -1
    for j in range(d):
        if accumulate:
            dbeta[j] = <floating> (dbeta[j] + sums[j])
            dgamma[j] = <floating> (dgamma[j] + sums[d + j])
        else:
            dbeta[j] = <floating> sums[j]
            dgamma[j] = <floating> sums[d + j]
        scale[j] = gamma[j] * inv_std[j]
        mean_dy[j] = <floating> (sums[j] / n)
        mean_dy_xhat[j] = <floating> (sums[d + j] / n)
    free(sums)
    # Pass 2: dX.
    if training and threaded:
        for i in prange(n, schedule="static"):
            _grad_input_row(dY + i * d, X + i * d, mean, inv_std, scale, mean_dy, mean_dy_xhat,
                            dX + i * d, d)
    elif training:
        for i in range(n):
            _grad_input_row(dY + i * d, X + i * d, mean, inv_std, scale, mean_dy, mean_dy_xhat,
                            dX + i * d, d)
    elif threaded:
        for i in prange(n, schedule="static"):
            _scale_row(dY + i * d, scale, dX + i * d, d)
    else:
        for i in range(n):
            _scale_row(dY + i * d, scale, dX + i * d, d)
    free(coef)
    return 0


cdef inline bint _threaded(Py_ssize_t n, Py_ssize_t d):
    return n > 1 and n * d >= FNN_PARALLEL_MIN_WORK


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def batchnorm_forward(X, gamma, beta, running_mean, running_var, *, training, momentum, eps,
                      out=None, mean=None, inv_std=None):
    """Batch norm: out = (X - mean) * (gamma * inv_std) + beta, with inv_std = 1/sqrt(var + eps).

    X is (N, D); gamma, beta, running_mean and running_var are (D,). Training mode normalizes
    with the batch mean and biased variance (one pass over X), writes them to mean and inv_std
    (D,) for the backward pass, and updates running_mean and running_var in place:
    r = (1 - momentum) * r + momentum * batch statistic, the unbiased variance N/(N-1) * var for
    running_var (torch.nn.BatchNorm1d's rule). It needs N > 1. Inference mode normalizes with the
    running statistics (and writes them to mean and inv_std the same way). out may be X itself.
    Returns out.
    """
    (X, gamma, beta, running_mean, running_var, momentum, eps, out, mean,
     inv_std) = batchnorm_forward_args(X, gamma, beta, running_mean, running_var, training,
                                       momentum, eps, out, mean, inv_std)
    _run_forward(X, gamma, beta, running_mean, running_var, out, mean, inv_std, bool(training),
                 momentum, eps)
    return out


cdef _run_forward(cnp.ndarray X, cnp.ndarray gamma, cnp.ndarray beta, cnp.ndarray running_mean,
                  cnp.ndarray running_var, cnp.ndarray out, cnp.ndarray mean, cnp.ndarray inv_std,
                  bint training, double momentum, double eps):
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint threaded = _threaded(n, d)
    cdef bint single = X.descr.type_num == cnp.NPY_FLOAT
    cdef void* x = _data(X)
    cdef void* g = _data(gamma)
    cdef void* b = _data(beta)
    cdef void* rm = _data(running_mean)
    cdef void* rv = _data(running_var)
    cdef void* o = _data(out)
    cdef void* mu = _data(mean)
    cdef void* inv = _data(inv_std)
    cdef int status
    with nogil:
        if single:
            status = _batchnorm_forward[float](<float*> x, <float*> g, <float*> b, <float*> rm,
                                               <float*> rv, <float*> o, <float*> mu,
                                               <float*> inv, n, d, training, momentum, eps,
                                               threaded)
        else:
            status = _batchnorm_forward[double](<double*> x, <double*> g, <double*> b,
                                                <double*> rm, <double*> rv, <double*> o,
                                                <double*> mu, <double*> inv, n, d, training,
                                                momentum, eps, threaded)
    if status != 0:
        raise MemoryError("batchnorm_forward: could not allocate the per-feature work arrays")


def batchnorm_backward(dY, X, gamma, mean, inv_std, *, training, dX=None, dgamma=None,
                       dbeta=None, accumulate=False):
    """Gradients of batchnorm_forward, given dY = dL/dout and its saved mean and inv_std (D,).

    With xhat = (X - mean) * inv_std (recomputed, not stored): dbeta = sum of dY over rows,
    dgamma = sum of dY * xhat; training mode (batch statistics depend on X):
    dX = gamma * inv_std * (dY - sum(dY)/N - xhat * sum(dY * xhat)/N), in two passes;
    inference mode (fixed running statistics): dX = dY * gamma * inv_std.
    With accumulate, dgamma and dbeta are added to instead of overwritten. dX may be dY itself.
    Returns (dX, dgamma, dbeta).
    """
    dY, X, gamma, mean, inv_std, dX, dgamma, dbeta = batchnorm_backward_args(
        dY, X, gamma, mean, inv_std, dX, dgamma, dbeta)
    _run_backward(dY, X, gamma, mean, inv_std, dX, dgamma, dbeta, bool(training),
                  bool(accumulate))
    return dX, dgamma, dbeta


cdef _run_backward(cnp.ndarray dY, cnp.ndarray X, cnp.ndarray gamma, cnp.ndarray mean,
                   cnp.ndarray inv_std, cnp.ndarray dX, cnp.ndarray dgamma, cnp.ndarray dbeta,
                   bint training, bint accumulate):
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint threaded = _threaded(n, d)
    cdef bint single = X.descr.type_num == cnp.NPY_FLOAT
    cdef void* dy = _data(dY)
    cdef void* x = _data(X)
    cdef void* g = _data(gamma)
    cdef void* mu = _data(mean)
    cdef void* inv = _data(inv_std)
    cdef void* dx = _data(dX)
    cdef void* dg = _data(dgamma)
    cdef void* db = _data(dbeta)
    cdef int status
    with nogil:
        if single:
            status = _batchnorm_backward[float](<float*> dy, <float*> x, <float*> g,
                                                <float*> mu, <float*> inv, <float*> dx,
                                                <float*> dg, <float*> db, n, d, training,
                                                accumulate, threaded)
        else:
            status = _batchnorm_backward[double](<double*> dy, <double*> x, <double*> g,
                                                 <double*> mu, <double*> inv, <double*> dx,
                                                 <double*> dg, <double*> db, n, d, training,
                                                 accumulate, threaded)
    if status != 0:
        raise MemoryError("batchnorm_backward: could not allocate the per-feature work arrays")


# The BatchNorm layer's op in the compiled training step (op.pxd, step.pyx): these kernels'
# entry points on the layer's own, already checked arrays.
cdef class BatchNormOp(Op):
    cdef cnp.ndarray gamma, beta, running_mean, running_var, mean, inv_std, dgamma, dbeta, dX
    cdef double momentum, eps

    def __init__(self, layer, input, output, grad_input, gamma, beta, running_mean, running_var,
                 mean, inv_std, dgamma, dbeta, dX, double momentum, double eps):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.gamma, self.beta, self.running_mean, self.running_var = (gamma, beta, running_mean,
                                                                      running_var)
        self.mean, self.inv_std, self.dgamma, self.dbeta, self.dX = (mean, inv_std, dgamma, dbeta,
                                                                     dX)
        self.momentum, self.eps = momentum, eps

    cdef int set_input(self, cnp.ndarray X) except -1:
        self.input = self.layer._X = X
        return 0

    cdef int forward(self) except -1:
        _run_forward(self.input, self.gamma, self.beta, self.running_mean, self.running_var,
                     self.output, self.mean, self.inv_std, True, self.momentum, self.eps)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        _run_backward(grad_output, self.input, self.gamma, self.mean, self.inv_std, self.dX,
                      self.dgamma, self.dbeta, True, False)
        return 0
