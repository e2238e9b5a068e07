# Compiled loss kernels; loss_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design: one pass per row computes the row maximum, exp(s - max) into dscores, the log-sum-exp
# and the row's loss, then scales dscores into the softmax gradient. Rows are independent, so they
# are split across threads above FNN_PARALLEL_MIN_WORK; the batch loss is a float64 reduction.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log

from ._checks import as_input, as_labels, as_output, float_dtype

cnp.import_array()

__all__ = ["softmax_cross_entropy"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK
    float fnn_expf_nonpos(float x)


cdef inline floating _exp_nonpos(floating x) noexcept nogil:
    if floating is float:
        return fnn_expf_nonpos(x)
    else:
        return exp(x)


cdef inline double _softmax_ce_row(const floating* s, floating* d, Py_ssize_t c, Py_ssize_t label,
                                   double inv_n) noexcept nogil:
    # Writes d = (softmax(s) - onehot(label)) * inv_n; returns the row's loss. d may be s.
    cdef Py_ssize_t j
    cdef floating mx = s[0]
    cdef floating correct
    cdef double total = 0
    cdef floating scale
    for j in range(1, c):
        if s[j] > mx:
            mx = s[j]
    correct = s[label] - mx
    for j in range(c):
        d[j] = _exp_nonpos(s[j] - mx)
        total = total + d[j]
    scale = <floating> (inv_n / total)
    for j in range(c):
        d[j] = d[j] * scale
    d[label] = d[label] - <floating> inv_n
    return log(total) - correct


cdef double _softmax_ce(const floating* scores, floating* dscores, const cnp.int64_t* y,
                        Py_ssize_t n, Py_ssize_t c, bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    cdef double inv_n = 1.0 / n
    for i in prange(n, schedule="static", use_threads_if=threaded):
        total += _softmax_ce_row(scores + i * c, dscores + i * c, c, y[i], inv_n)
    return total * inv_n


def softmax_cross_entropy(scores, y, *, dscores=None):
    """Mean softmax cross-entropy over the batch and its gradient d loss / d scores.

    Stable: the row maximum is subtracted before exponentiating, and log-sum-exp replaces
    log(softmax), so no exp overflows and no log(0) occurs. dscores may be scores itself.
    Returns (loss as a Python float, dscores (N, C)).
    """
    kernel = "softmax_cross_entropy"
    dtype = float_dtype(kernel, "scores", scores)
    scores = as_input(kernel, "scores", scores, dtype, 2)
    n, c = scores.shape
    if n == 0:
        raise ValueError(f"{kernel}: empty batch (scores has shape {scores.shape})")
    y = as_labels(kernel, y, n, c)
    dscores = as_output(kernel, "dscores", dscores, (n, c), dtype)
    return _run(scores, y, dscores), dscores


cdef double _run(cnp.ndarray scores, cnp.ndarray y, cnp.ndarray dscores):
    cdef Py_ssize_t n = scores.shape[0], c = scores.shape[1]
    cdef bint threaded = n > 1 and n * c * 4 >= FNN_PARALLEL_MIN_WORK
    cdef bint single = scores.descr.type_num == cnp.NPY_FLOAT
    cdef void* s = cnp.PyArray_DATA(scores)
    cdef void* d = cnp.PyArray_DATA(dscores)
    cdef const cnp.int64_t* labels = <const cnp.int64_t*> cnp.PyArray_DATA(y)
    cdef double loss
    with nogil:
        if single:
            loss = _softmax_ce[float](<float*> s, <float*> d, labels, n, c, threaded)
        else:
            loss = _softmax_ce[double](<double*> s, <double*> d, labels, n, c, threaded)
    return loss
