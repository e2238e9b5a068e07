# Compiled weight penalty; penalty_numpy.py is its NumPy twin (same name, signature, results).
#
# One pass over a weight array computes the penalty's value (summed in float64) and, when a
# gradient array is given, adds the penalty's gradient to it: the compiled training step calls
# it on each Dense weight after that layer's gradient GEMM, instead of a separate Python pass.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, fabs

from ._fastpath cimport like, numbers

from ._penalty_checks import elastic_net_args

cnp.import_array()

__all__ = ["elastic_net"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK


def elastic_net(W, grad=None, *, l1=0.0, l2=0.0):
    """l1 * sum(|W|) + 0.5 * l2 * sum(W**2), summed in float64; with grad (W's shape and
    dtype), also adds the penalty's gradient to it in place, in W's dtype:
    grad += l2 * W, then grad += l1 * sign(W)."""
    # A training step calls this on the same checked arrays every time: skip the Python checks
    # when they would accept the arguments unchanged (they cost more than the pass itself).
    if not _plain(W, grad, l1, l2):
        W, grad, l1, l2 = elastic_net_args(W, grad, l1, l2)
        if not (<cnp.ndarray> W).flags.c_contiguous:
            W = cnp.PyArray_GETCONTIGUOUS(<cnp.ndarray> W)
    return _run_elastic_net(W, grad, l1, l2)


cdef bint _plain(object W, object grad, object l1, object l2):
    cdef cnp.ndarray w
    if not (numbers((l1, l2)) and 0 <= l1 < INFINITY and 0 <= l2 < INFINITY
            and cnp.PyArray_Check(W)):
        return False
    w = <cnp.ndarray> W
    if w.descr.type_num != cnp.NPY_FLOAT and w.descr.type_num != cnp.NPY_DOUBLE:
        return False
    return cnp.PyArray_IS_C_CONTIGUOUS(w) and (grad is None or like(grad, w, True))


cdef double _run_elastic_net(cnp.ndarray W, cnp.ndarray grad, double l1, double l2) noexcept:
    # On checked arguments: W C-contiguous float32/float64, grad None or C-contiguous of W's
    # shape and dtype.
    cdef Py_ssize_t size = W.size
    cdef bint threaded = size >= FNN_PARALLEL_MIN_WORK
    cdef void* w = cnp.PyArray_DATA(W)
    cdef void* g = NULL if grad is None else cnp.PyArray_DATA(grad)
    cdef bint single = W.descr.type_num == cnp.NPY_FLOAT
    cdef double total
    with nogil:
        if single:
            total = _elastic_net[float](<const float*> w, <float*> g, size, l1, l2, threaded)
        else:
            total = _elastic_net[double](<const double*> w, <double*> g, size, l1, l2, threaded)
    return total


cdef struct Sums:
    double squares, absolutes


cdef enum:
    CHUNK = 8192  # elements per piece of work for the threads
    LANES = 8  # independent partial sums: a single float64 sum is one long chain of adds


cdef Sums _chunk(const floating* w, floating* g, Py_ssize_t n, floating l1c, floating l2c,
                 bint with_l1, bint with_l2) noexcept nogil:
    # One simple loop per sum and per gradient term, each of which vectorizes (the lanes are
    # independent float64 partial sums).
    cdef double sq[LANES]
    cdef double ab[LANES]
    cdef double v
    cdef Py_ssize_t i, j, body = n - n % LANES
    cdef floating x
    cdef Sums sums
    for j in range(LANES):
        sq[j] = 0
        ab[j] = 0
    if with_l2:
        for i in range(body // LANES):
            for j in range(LANES):
                v = w[i * LANES + j]
                sq[j] += v * v
        for i in range(body, n):
            v = w[i]
            sq[0] += v * v
    if with_l1:
        for i in range(body // LANES):
            for j in range(LANES):
                ab[j] += fabs(<double> w[i * LANES + j])
        for i in range(body, n):
            ab[0] += fabs(<double> w[i])
    sums.squares = sums.absolutes = 0
    for j in range(LANES):
        sums.squares += sq[j]
        sums.absolutes += ab[j]
    # The gradient in the twin's order (grad + l2 w, then + l1 sign(w)), each term only when its
    # strength is nonzero (0 * inf would be NaN).
    if g != NULL and with_l2:
        for i in range(n):
            g[i] = g[i] + l2c * w[i]
    if g != NULL and with_l1:
        for i in range(n):
            x = w[i]
            g[i] = g[i] + l1c * (x if x != x else <floating> ((x > 0) - (x < 0)))  # np.sign
    return sums


cdef double _elastic_net(const floating* w, floating* g, Py_ssize_t n, double l1, double l2,
                         bint threaded) noexcept nogil:
    cdef Py_ssize_t c, at, chunks = (n + CHUNK - 1) // CHUNK
    cdef double squares = 0, absolutes = 0
    cdef bint with_l1 = l1 != 0, with_l2 = l2 != 0
    cdef Sums part
    # (a prange that runs serially still enters an OpenMP region: the serial loop stays apart)
    if threaded:
        for c in prange(chunks, schedule="static"):
            at = c * CHUNK
            part = _chunk(w + at, NULL if g == NULL else g + at, min(CHUNK, n - at),
                          <floating> l1, <floating> l2, with_l1, with_l2)
            squares += part.squares
            absolutes += part.absolutes
    else:
        for c in range(chunks):
            at = c * CHUNK
            part = _chunk(w + at, NULL if g == NULL else g + at, min(CHUNK, n - at),
                          <floating> l1, <floating> l2, with_l1, with_l2)
            squares += part.squares
            absolutes += part.absolutes
    return (0.5 * l2 * squares if with_l2 else 0.0) + (l1 * absolutes if with_l1 else 0.0)
