# The C-level entry point of penalty.pyx that the Dense op (dense.pyx, the compiled training
# step's) calls too.
cimport numpy as cnp

cdef double _run_elastic_net(cnp.ndarray W, cnp.ndarray grad, double l1, double l2) noexcept
