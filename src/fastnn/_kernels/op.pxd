# The base of the compiled training step's ops (op.pyx). Each layer type's op subclasses it
# beside that layer's kernels (DenseOp in dense.pyx, ...); step.pyx's Plan runs them through
# these methods.
cimport numpy as cnp


cdef class Op:
    cdef public cnp.ndarray input, output, grad_input
    cdef public object layer

    cdef int set_input(self, cnp.ndarray X) except -1
    cdef int forward(self) except -1
    cdef int backward(self, cnp.ndarray grad_output) except -1
    cdef double penalize(self, double l1, double l2) noexcept
