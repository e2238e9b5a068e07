# The C-level entry points of batchnorm.pyx that step.pyx (the compiled training step) calls too.
cimport numpy as cnp

cdef _run_forward(cnp.ndarray X, cnp.ndarray gamma, cnp.ndarray beta, cnp.ndarray running_mean,
                  cnp.ndarray running_var, cnp.ndarray out, cnp.ndarray mean, cnp.ndarray inv_std,
                  bint training, double momentum, double eps)
cdef _run_backward(cnp.ndarray dY, cnp.ndarray X, cnp.ndarray gamma, cnp.ndarray mean,
                   cnp.ndarray inv_std, cnp.ndarray dX, cnp.ndarray dgamma, cnp.ndarray dbeta,
                   bint training, bint accumulate)
