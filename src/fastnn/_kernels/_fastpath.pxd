# Fast-path tests shared by kernels that a training step calls every time with the same,
# already checked arguments: whether the Python checks would accept them unchanged.
cimport numpy as cnp
from cpython.float cimport PyFloat_CheckExact
from cpython.long cimport PyLong_CheckExact


cdef inline bint numbers(tuple values):
    # Whether every value is an exact Python float or int.
    cdef object v
    for v in values:
        if not (PyFloat_CheckExact(v) or PyLong_CheckExact(v)):
            return False
    return True


cdef inline bint like(object a, cnp.ndarray ref, bint written):
    # Whether `a` is an ndarray of ref's dtype and shape, C-contiguous (and writeable if
    # written).
    return like_typed(a, ref, ref.descr.type_num, written)


cdef inline bint like_typed(object a, cnp.ndarray ref, int type_num, bint written):
    # Whether `a` is an ndarray of dtype `type_num` and ref's shape, C-contiguous (and writeable
    # if written).
    cdef cnp.ndarray b
    cdef int i, ndim = cnp.PyArray_NDIM(ref)
    if not cnp.PyArray_Check(a):
        return False
    b = <cnp.ndarray> a
    if (b.descr.type_num != type_num or cnp.PyArray_NDIM(b) != ndim
            or not cnp.PyArray_IS_C_CONTIGUOUS(b) or (written and not cnp.PyArray_ISWRITEABLE(b))):
        return False
    for i in range(ndim):
        if cnp.PyArray_DIM(b, i) != cnp.PyArray_DIM(ref, i):
            return False
    return True
