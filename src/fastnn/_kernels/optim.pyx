# Compiled optimizer updates; optim_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design: an update is one pass over the flat parameter, gradient and state arrays, in place;
# chunks of the flat range go to threads above FNN_PARALLEL_MIN_WORK.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange

from ._checks import as_input, as_output, float_dtype

cnp.import_array()

__all__ = ["sgd_update"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK


cdef struct SGDConfig:
    double lr, momentum, dampening, weight_decay
    bint nesterov, first_step


cdef void _sgd(floating* p, const floating* grad, floating* buf, Py_ssize_t size, SGDConfig cfg,
               bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, b
    cdef floating lr = <floating> cfg.lr, wd = <floating> cfg.weight_decay
    cdef floating mu = <floating> cfg.momentum, keep = <floating> (1 - cfg.dampening)
    if mu == 0:
        for i in prange(size, schedule="static", use_threads_if=threaded):
            g = grad[i] + wd * p[i]
            p[i] = p[i] - lr * g
    elif cfg.first_step:
        for i in prange(size, schedule="static", use_threads_if=threaded):
            g = grad[i] + wd * p[i]
            buf[i] = g
            p[i] = p[i] - lr * (g + mu * g if cfg.nesterov else g)
    else:
        for i in prange(size, schedule="static", use_threads_if=threaded):
            g = grad[i] + wd * p[i]
            b = mu * buf[i] + keep * g
            buf[i] = b
            p[i] = p[i] - lr * (g + mu * b if cfg.nesterov else b)


def sgd_update(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, first_step=False):
    """One step of torch.optim.SGD on `param`, in place.

    g = grad + weight_decay * param
    with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
                   g = g + momentum * buf (Nesterov) or g = buf
    param -= lr * g
    momentum_buffer (same shape as param) is updated in place; it may be None when momentum is 0.
    """
    kernel = "sgd_update"
    dtype = float_dtype(kernel, "param", param)
    param = as_output(kernel, "param", param, param.shape, dtype)
    grad = as_input(kernel, "grad", grad, dtype, param.ndim)
    if grad.shape != param.shape:
        raise ValueError(f"{kernel}: grad must have shape {param.shape}, got {grad.shape}")
    cdef SGDConfig cfg = SGDConfig(lr=lr, momentum=momentum, dampening=dampening,
                                   weight_decay=weight_decay, nesterov=nesterov,
                                   first_step=first_step)
    buf = param
    if momentum != 0:
        buf = as_output(kernel, "momentum_buffer", momentum_buffer, param.shape, dtype)
    _run_sgd(param, grad, buf, cfg)


cdef _run_sgd(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray buf, SGDConfig cfg):
    cdef Py_ssize_t size = param.size
    cdef bint threaded = size >= FNN_PARALLEL_MIN_WORK
    cdef bint single = param.descr.type_num == cnp.NPY_FLOAT
    cdef void* p = cnp.PyArray_DATA(param)
    cdef void* g = cnp.PyArray_DATA(grad)
    cdef void* b = cnp.PyArray_DATA(buf)
    with nogil:
        if single:
            _sgd[float](<float*> p, <float*> g, <float*> b, size, cfg, threaded)
        else:
            _sgd[double](<double*> p, <double*> g, <double*> b, size, cfg, threaded)
