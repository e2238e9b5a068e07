# Compiled weight penalty; penalty_numpy.py is its NumPy twin (same name, signature, results).
#
# One pass over a weight array computes the penalty's value (summed in float64) and, when a
# gradient array is given, adds the penalty's gradient to it: the compiled training step calls
# it on each Dense weight after that layer's gradient GEMM, instead of a separate Python pass.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from cpython.float cimport PyFloat_CheckExact
from libc.math cimport INFINITY, fabs

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
    cdef cnp.ndarray w, g
    cdef int i
    if not (PyFloat_CheckExact(l1) and PyFloat_CheckExact(l2)):
        return False
    if not (0 <= <double> l1 < INFINITY and 0 <= <double> l2 < INFINITY):
        return False
    if not cnp.PyArray_Check(W):
        return False
    w = <cnp.ndarray> W
    if (w.descr.type_num != cnp.NPY_FLOAT and w.descr.type_num != cnp.NPY_DOUBLE) or \
            not cnp.PyArray_IS_C_CONTIGUOUS(w):
        return False
    if grad is None:
        return True
    if not cnp.PyArray_Check(grad):
        return False
    g = <cnp.ndarray> grad
    if (g.descr.type_num != w.descr.type_num or cnp.PyArray_NDIM(g) != cnp.PyArray_NDIM(w)
            or not cnp.PyArray_IS_C_CONTIGUOUS(g) or not cnp.PyArray_ISWRITEABLE(g)):
        return False
    for i in range(cnp.PyArray_NDIM(w)):
        if cnp.PyArray_DIM(g, i) != cnp.PyArray_DIM(w, i):
            return False
    return True


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


cdef double _elastic_net(const floating* w, floating* g, Py_ssize_t n, double l1, double l2,
                         bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    cdef double squares = 0, absolutes = 0, v
    cdef floating l1c = <floating> l1, l2c = <floating> l2, x
    if threaded:
        for i in prange(n, schedule="static"):
            v = w[i]
            squares += v * v
            absolutes += fabs(v)
    else:
        for i in range(n):
            v = w[i]
            squares += v * v
            absolutes += fabs(v)
    if g != NULL and l2 != 0:
        for i in range(n):
            g[i] = g[i] + l2c * w[i]
    if g != NULL and l1 != 0:
        for i in range(n):
            x = w[i]  # sign(w), NaN for NaN as np.sign
            g[i] = g[i] + l1c * (x if x != x else <floating> ((x > 0) - (x < 0)))
    return (0.5 * l2 * squares if l2 != 0 else 0.0) + (l1 * absolutes if l1 != 0 else 0.0)
