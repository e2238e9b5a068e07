# The C-level entry point of penalty.pyx that step.pyx (the compiled training step) calls too.
cimport numpy as cnp

cdef double _run_elastic_net(cnp.ndarray W, cnp.ndarray grad, double l1, double l2) noexcept
