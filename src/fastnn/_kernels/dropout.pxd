# The C-level entry points of dropout.pyx that step.pyx (the compiled training step) calls too.
cimport numpy as cnp
from libc.stdint cimport uint64_t

cdef _run_forward(cnp.ndarray X, cnp.ndarray out, cnp.ndarray mask, uint64_t key,
                  uint64_t threshold, double scale)
cdef _run_backward(cnp.ndarray dA, cnp.ndarray mask, cnp.ndarray dX, double scale)
cdef uint64_t _dropout_key(object seed, object index, object step) except? 0
