# The C-level entry point of loss.pyx that step.pyx (the compiled training step) calls too.
cimport numpy as cnp

cdef double _multiclass_loss(cnp.ndarray scores, cnp.ndarray y, cnp.ndarray dscores,
                             bint softmax) noexcept
