# Compiled loss kernels; loss_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design: every loss is one pass over the scores that writes d loss / d scores and reduces the mean
# loss in float64. Multiclass losses work row by row: rows are independent, so they are split
# across threads above FNN_PARALLEL_MIN_WORK. Softmax cross-entropy: one pass per row computes the
# row maximum, exp(s - max) into dscores, the log-sum-exp and the row's loss, then scales dscores
# into the softmax gradient.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log, log1p

from ._checks import binary_scores_args, class_scores_args, mse_args

cnp.import_array()

__all__ = ["softmax_cross_entropy", "multiclass_hinge", "binary_logistic", "binary_hinge", "mse"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK
    float fnn_expf_nonpos(float x)
    float fnn_row_max_f(const float* s, long c)
    double fnn_row_max_d(const double* s, long c)
    double fnn_row_sum_f(const float* d, long c)
    double fnn_row_sum_d(const double* d, long c)
    double fnn_binary_logistic_f(const float* s, const double* t, float* d, long n, float inv_n)
    double fnn_hinge_row_f(const float* s, float* d, long c, long label, double inv_n)
    double fnn_hinge_row_d(const double* s, double* d, long c, long label, double inv_n)
    double fnn_binary_hinge_f(const float* s, const double* t, float* d, long n, double inv_n)
    double fnn_binary_hinge_d(const double* s, const double* t, double* d, long n, double inv_n)


cdef inline floating _exp_nonpos(floating x) noexcept nogil:
    if floating is float:
        return fnn_expf_nonpos(x)
    else:
        return exp(x)


cdef inline double _softmax_ce_row(const floating* s, floating* d, Py_ssize_t c, Py_ssize_t label,
                                   double inv_n) noexcept nogil:
    # Writes d = (softmax(s) - onehot(label)) * inv_n; returns the row's loss. d may be s.
    cdef Py_ssize_t j
    cdef floating mx
    cdef floating correct
    cdef double total
    cdef floating scale
    if floating is float:
        mx = fnn_row_max_f(s, c)
    else:
        mx = fnn_row_max_d(s, c)
    correct = s[label] - mx
    for j in range(c):  # kept apart from the sum, which would stop this loop vectorizing
        d[j] = _exp_nonpos(s[j] - mx)
    if floating is float:
        total = fnn_row_sum_f(d, c)
    else:
        total = fnn_row_sum_d(d, c)
    scale = <floating> (inv_n / total)
    for j in range(c):
        d[j] = d[j] * scale
    d[label] = d[label] - <floating> inv_n
    return log(total) - correct


def softmax_cross_entropy(scores, y, *, dscores=None):
    """Mean softmax cross-entropy over the batch and its gradient d loss / d scores.

    Stable: the row maximum is subtracted before exponentiating, and log-sum-exp replaces
    log(softmax), so no exp overflows and no log(0) occurs. dscores may be scores itself.
    Returns (loss as a Python float, dscores (N, C)).
    """
    return _run_multiclass("softmax_cross_entropy", scores, y, dscores, True)


cdef enum:
    # Rows at least this long take the branch-free row function of kernels.h; shorter ones (10
    # classes: 1.8x faster) the plain loop, whose few branches cost less than the lanes' set-up.
    LONG_HINGE_ROW = 64


cdef inline double _hinge_row(const floating* s, floating* d, Py_ssize_t c, Py_ssize_t label,
                              double inv_n) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating correct = s[label]
    cdef floating margin
    cdef double total = 0
    cdef Py_ssize_t active = 0
    if c >= LONG_HINGE_ROW:
        if floating is float:
            return fnn_hinge_row_f(s, d, c, label, inv_n)
        else:
            return fnn_hinge_row_d(s, d, c, label, inv_n)
    for j in range(c):
        margin = s[j] - correct + 1
        if j != label and margin > 0:
            total = total + margin
            active = active + 1
            d[j] = <floating> inv_n
        else:
            d[j] = 0
    d[label] = <floating> (-active * inv_n)
    return total


def multiclass_hinge(scores, y, *, dscores=None):
    """Multiclass SVM (Weston-Watkins) loss: mean over samples of
    sum over j != y of max(0, s_j - s_y + 1). dscores may be scores itself.
    Returns (loss, dscores (N, C))."""
    return _run_multiclass("multiclass_hinge", scores, y, dscores, False)


cdef double _multiclass(const floating* scores, floating* dscores, const cnp.int64_t* y,
                        Py_ssize_t n, Py_ssize_t c, bint softmax, bint threaded) noexcept nogil:
    # The mean softmax cross-entropy (softmax) or multiclass hinge loss over the rows; writes
    # dscores row by row.
    cdef Py_ssize_t i
    cdef double total = 0
    cdef double inv_n = 1.0 / n
    if threaded:  # (both branches: see kernels.h)
        for i in prange(n, schedule="static"):
            if softmax:
                total += _softmax_ce_row(scores + i * c, dscores + i * c, c, y[i], inv_n)
            else:
                total += _hinge_row(scores + i * c, dscores + i * c, c, y[i], inv_n)
    else:
        for i in range(n):
            if softmax:
                total += _softmax_ce_row(scores + i * c, dscores + i * c, c, y[i], inv_n)
            else:
                total += _hinge_row(scores + i * c, dscores + i * c, c, y[i], inv_n)
    return total * inv_n


cdef _run_multiclass(kernel, scores, y, dscores, bint softmax):
    scores, y, dscores = class_scores_args(kernel, scores, y, dscores)
    return _multiclass_loss(scores, y, dscores, softmax), dscores


cdef double _multiclass_loss(cnp.ndarray scores, cnp.ndarray y, cnp.ndarray dscores,
                             bint softmax) noexcept:
    # softmax_cross_entropy (softmax) or multiclass_hinge on checked arguments (scores and
    # dscores C-contiguous (N, C) of one float dtype, y int64 labels in [0, C)). A softmax
    # element costs about 4 times as much, for the single-thread threshold.
    cdef Py_ssize_t n = scores.shape[0], c = scores.shape[1]
    cdef bint threaded = n > 1 and n * c * (4 if softmax else 1) >= FNN_PARALLEL_MIN_WORK
    cdef bint single = scores.descr.type_num == cnp.NPY_FLOAT
    cdef void* sp = cnp.PyArray_DATA(scores)
    cdef void* dp = cnp.PyArray_DATA(dscores)
    cdef const cnp.int64_t* labels = <const cnp.int64_t*> cnp.PyArray_DATA(y)
    cdef double loss
    with nogil:
        if single:
            loss = _multiclass[float](<float*> sp, <float*> dp, labels, n, c, softmax, threaded)
        else:
            loss = _multiclass[double](<double*> sp, <double*> dp, labels, n, c, softmax, threaded)
    return loss


cdef double _binary(const floating* s, const double* t, floating* d, Py_ssize_t n,
                    bint logistic) noexcept nogil:
    # Per sample: logistic loss max(s,0) - t s + log1p(exp(-|s|)), gradient sigmoid(s) - t;
    # hinge loss max(0, 1 - t s), gradient -t where the margin is positive.
    cdef Py_ssize_t i
    cdef double x, e, sigmoid, total = 0, inv_n = 1.0 / n
    if not logistic:
        if floating is float:
            return fnn_binary_hinge_f(s, t, d, n, inv_n) * inv_n
        else:
            return fnn_binary_hinge_d(s, t, d, n, inv_n) * inv_n
    if floating is float:  # libm's exp and log1p per sample would not vectorize
        return fnn_binary_logistic_f(s, t, d, n, <float> inv_n) * inv_n
    for i in range(n):
        x = s[i]
        e = exp(-fabs(x))
        total += (x if x > 0 else 0) - t[i] * x + log1p(e)
        sigmoid = 1 / (1 + e) if x >= 0 else e / (1 + e)
        d[i] = <floating> ((sigmoid - t[i]) * inv_n)
    return total * inv_n


cdef _run_binary(kernel, scores, y, dscores, bint logistic):
    s, t, dscores = binary_scores_args(kernel, scores, y, dscores, 0 if logistic else -1)
    cdef Py_ssize_t n = s.shape[0]
    cdef bint single = s.dtype.num == cnp.NPY_FLOAT
    cdef void* sp = cnp.PyArray_DATA(s)
    cdef const double* tp = <const double*> cnp.PyArray_DATA(t)
    cdef void* dp = cnp.PyArray_DATA(dscores)
    cdef double loss
    with nogil:
        if single:
            loss = _binary[float](<float*> sp, tp, <float*> dp, n, logistic)
        else:
            loss = _binary[double](<double*> sp, tp, <double*> dp, n, logistic)
    return loss, dscores


def binary_logistic(scores, y, *, dscores=None):
    """Binary logistic loss (sigmoid + cross-entropy) on one score per sample, labels in {0, 1}:
    mean of log(1 + exp(-s)) for y = 1 and log(1 + exp(s)) for y = 0, computed stably as
    max(s, 0) - y * s + log1p(exp(-|s|)). d/ds = (sigmoid(s) - y) / N.
    Returns (loss, dscores shaped like scores)."""
    return _run_binary("binary_logistic", scores, y, dscores, True)


def binary_hinge(scores, y, *, dscores=None):
    """Binary hinge (SVM) loss on one score per sample: mean of max(0, 1 - t * s) with t = +1 or -1.
    Labels are {-1, +1} or {0, 1} (0 is read as -1). Returns (loss, dscores shaped like scores)."""
    return _run_binary("binary_hinge", scores, y, dscores, False)


cdef double _mse(const floating* s, const floating* t, floating* d, Py_ssize_t size,
                 bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    cdef double diff, total = 0, scale = 2.0 / size
    if threaded:  # (both branches: see kernels.h)
        for i in prange(size, schedule="static"):
            diff = <double> s[i] - <double> t[i]
            total += diff * diff
            d[i] = <floating> (diff * scale)
    else:
        for i in range(size):
            diff = <double> s[i] - <double> t[i]
            total += diff * diff
            d[i] = <floating> (diff * scale)
    return total / size


def mse(scores, y, *, dscores=None):
    """Mean squared error for regression, as torch.nn.MSELoss: the mean over all elements of
    (scores - y)**2; y has the shape of scores. d/ds = 2 (scores - y) / scores.size.
    Returns (loss, dscores)."""
    scores, y, dscores = mse_args(scores, y, dscores)
    cdef Py_ssize_t size = scores.size
    cdef bint threaded = size >= FNN_PARALLEL_MIN_WORK
    cdef bint single = scores.dtype.num == cnp.NPY_FLOAT
    cdef void* sp = cnp.PyArray_DATA(scores)
    cdef void* tp = cnp.PyArray_DATA(y)
    cdef void* dp = cnp.PyArray_DATA(dscores)
    cdef double loss
    with nogil:
        if single:
            loss = _mse[float](<float*> sp, <float*> tp, <float*> dp, size, threaded)
        else:
            loss = _mse[double](<double*> sp, <double*> tp, <double*> dp, size, threaded)
    return loss, dscores
