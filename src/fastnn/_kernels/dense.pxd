# The C-level entry points of dense.pyx that step.pyx (the compiled training step) calls too.
cimport numpy as cnp

cdef _run_bias_act_forward(cnp.ndarray Z, object b, cnp.ndarray out, int code, double alpha,
                           bint round_bf16)
cdef _run_bias_act_backward(cnp.ndarray dA, cnp.ndarray A, cnp.ndarray dZ, object db, int code,
                            double alpha, bint accumulate, bint round_bf16)
