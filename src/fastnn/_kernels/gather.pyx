# Compiled row gather; gather_numpy.py is its NumPy twin (same name, signature, results).
#
# A training step's minibatch is rows of the data set at shuffled row numbers. NumPy's fancy
# indexing allocates the batch every step, and np.take into a reused buffer is slower still;
# here it is one bounds pass and one memcpy per row into a buffer the Trainer keeps.
cimport numpy as cnp
from libc.string cimport memcpy

from ._gather_checks import take_rows_args

cnp.import_array()

__all__ = ["take_rows"]


def take_rows(X, index, out=None):
    """X[index] (the rows of a 1-D or 2-D X at the row numbers in index, each in
    [0, len(X))) written into out ((len(index),) + X.shape[1:], X's dtype; None allocates).
    Returns out."""
    if not _plain(X, index, out):
        X, index, out = take_rows_args(X, index, out)
        if not (<cnp.ndarray> X).flags.c_contiguous:
            out[...] = X[index]
            return out
    if _run_take_rows(X, index, out) < 0:
        take_rows_args(X, index, out)  # says which row number is out of range
    return out


cdef bint _plain(object X, object index, object out):
    # Whether the checks would accept the arguments unchanged (row numbers are checked in the
    # copy's own pass).
    cdef cnp.ndarray x, i, o
    if not (cnp.PyArray_Check(X) and cnp.PyArray_Check(index) and cnp.PyArray_Check(out)):
        return False
    x, i, o = <cnp.ndarray> X, <cnp.ndarray> index, <cnp.ndarray> out
    if (x.ndim not in (1, 2) or i.ndim != 1 or i.descr.type_num != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_IS_C_CONTIGUOUS(i)
            or not cnp.PyArray_IS_C_CONTIGUOUS(o) or not cnp.PyArray_ISWRITEABLE(o)
            or o.descr.type_num != x.descr.type_num or o.ndim != x.ndim
            or x.descr.kind not in b"fiub" or o.shape[0] != i.shape[0]):
        return False
    return x.ndim == 1 or o.shape[1] == x.shape[1]


cdef int _run_take_rows(cnp.ndarray X, cnp.ndarray index, cnp.ndarray out) noexcept:
    # On checked arrays (X and out C-contiguous of one dtype and row length); -1, with nothing
    # copied, when a row number is out of range.
    cdef Py_ssize_t n = index.shape[0], rows = X.shape[0], i, bad = 0
    # (not X.strides[0]: a C-contiguous array of one row may carry any stride there)
    cdef Py_ssize_t row_bytes = X.descr.itemsize * (X.shape[1] if X.ndim == 2 else 1)
    cdef const Py_ssize_t* at = <const Py_ssize_t*> cnp.PyArray_DATA(index)
    cdef const char* src = <const char*> cnp.PyArray_DATA(X)
    cdef char* dst = <char*> cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            bad = bad | (at[i] < 0) | (at[i] >= rows)
        if bad:
            return -1
        for i in range(n):
            memcpy(dst + i * row_bytes, src + at[i] * row_bytes, row_bytes)
    return 0
