# Compiled optimizer updates; optim_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design: an update is one pass over the flat parameter, gradient and state arrays, in place: each
# element is read once, its new state and value computed in registers, and written once. The flat
# range is cut into CHUNK-sized pieces that go to threads above FNN_PARALLEL_MIN_WORK; each piece
# runs a `*_chunk` function whose hyperparameters are by-value arguments, so the compiler sees
# them as loop invariants and vectorizes the loop (read from a struct inside the OpenMP loop,
# they are reloaded every element). Hyperparameters travel in one struct per optimizer; per-step
# scalars (bias corrections, decayed learning rate, 1 - beta) are computed once, in float64.
#
# bf16_copy (float32 only) is the bfloat16 GEMM operand of mixed-precision training. With one,
# the update runs in CHUNK-sized pieces, threaded or not, and each piece is rounded into the copy
# right after its update (_round_into), while it is still in cache: the copy costs its rounding
# and one more write stream, not a second read of the parameter from memory. The update loops themselves are the same with or
# without it: a store to the copy under `if copy != NULL` inside them is control flow that GCC
# does not vectorize (-fopt-info-vec: "control flow in loop").
#
# The argument checks are the twin's (_optim_checks.py). Before running them, each update asks
# _plain() whether its arguments are already what those checks would accept unchanged
# (ndarrays of one float dtype and one shape, C-contiguous, the written ones writeable; plain
# int or float hyperparameters): an optimizer calls these every step with the same arrays, and
# for a small model the Python checks took longer than the update itself. Anything else goes
# through the checks, so both backends still accept, convert and reject alike.
cimport numpy as cnp
from cpython.float cimport PyFloat_CheckExact
from cpython.long cimport PyLong_CheckExact
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

from ._fastpath cimport like as _like, like_typed as _like_typed, numbers as _numbers
from .bf16 cimport _round_bf16_f32
from ._optim_checks import (adagrad_update_args, adam_update_args, rmsprop_update_args,
                      sgd_update_args)

cnp.import_array()

__all__ = ["sgd_update", "adagrad_update", "rmsprop_update", "adam_update"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK


cdef inline void* _data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


cdef bint _plain(object param, object grad, tuple states):
    # Whether the update's arrays pass its checks unchanged (see the top of this file).
    cdef cnp.ndarray p
    cdef object state
    if not cnp.PyArray_Check(param):
        return False
    p = <cnp.ndarray> param
    if p.descr.type_num != cnp.NPY_FLOAT and p.descr.type_num != cnp.NPY_DOUBLE:
        return False
    if not (cnp.PyArray_IS_C_CONTIGUOUS(p) and cnp.PyArray_ISWRITEABLE(p)) or \
            not _like(grad, p, False):
        return False
    for state in states:
        if not _like(state, p, True):
            return False
    return True


cdef bint _plain_copy(object copy, cnp.ndarray param, object grad, tuple states):
    # Whether bf16_copy passes its checks unchanged: None, or a float32 param's shape,
    # C-contiguous and writeable, its memory apart from param's, grad's and the states'
    # (all C-contiguous here, so comparing address ranges is exact).
    cdef char* lo
    cdef char* hi
    cdef char* a
    cdef object other
    if copy is None:
        return True
    if param.descr.type_num != cnp.NPY_FLOAT or not _like_typed(copy, param, cnp.NPY_FLOAT,
                                                                True):
        return False
    lo = <char*> cnp.PyArray_DATA(<cnp.ndarray> copy)
    hi = lo + cnp.PyArray_NBYTES(<cnp.ndarray> copy)
    for other in (param, grad) + states:
        a = <char*> cnp.PyArray_DATA(<cnp.ndarray> other)
        if a < hi and lo < a + cnp.PyArray_NBYTES(<cnp.ndarray> other):
            return False
    return True


cdef inline void _round_into(const floating* p, float* copy, Py_ssize_t n) noexcept nogil:
    # The piece of the param just updated, rounded to bfloat16 into its copy, if there is one
    # (float32 only: the checks refuse bf16_copy with a float64 param, which passes NULL).
    cdef Py_ssize_t i
    if copy != NULL:
        for i in range(n):
            copy[i] = _round_bf16_f32(<float> p[i])


cdef inline float* _at(float* copy, Py_ssize_t at) noexcept nogil:
    return NULL if copy == NULL else copy + at


cdef inline floating _sqrt(floating x) noexcept nogil:
    # sqrtf for float32: libc's sqrt would widen the whole update expression to float64, which
    # halves the vector width and made Adam's pass 4x slower than SGD's.
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline bint _threaded(Py_ssize_t size):
    return size >= FNN_PARALLEL_MIN_WORK


cdef enum:
    CHUNK = 8192  # elements per piece of work: a few L1-sized blocks of each array


cdef inline Py_ssize_t _piece(Py_ssize_t size, bint threaded, const float* copy) noexcept nogil:
    # Elements per call of a *_chunk function: CHUNK when threaded or writing a bf16 copy (see
    # the top of this file), else the whole array in one call.
    return CHUNK if threaded or copy != NULL or size == 0 else size


cdef inline Py_ssize_t _pieces(Py_ssize_t size, Py_ssize_t piece) noexcept nogil:
    return (size + piece - 1) // piece


cdef inline Py_ssize_t _length(Py_ssize_t c, Py_ssize_t piece, Py_ssize_t size) noexcept nogil:
    return piece if (c + 1) * piece <= size else size - c * piece


cdef struct SGDConfig:
    double lr, momentum, dampening, weight_decay
    bint nesterov, first_step


cdef void _sgd_chunk(floating* p, const floating* grad, floating* buf, float* copy, Py_ssize_t n,
                     floating lr, floating wd, floating mu, floating keep, bint nesterov,
                     bint first_step) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, b
    if mu == 0:
        for i in range(n):
            g = grad[i] + wd * p[i]
            p[i] = p[i] - lr * g
    elif first_step:
        for i in range(n):
            g = grad[i] + wd * p[i]
            buf[i] = g
            p[i] = p[i] - lr * (g + mu * g if nesterov else g)
    else:
        for i in range(n):
            g = grad[i] + wd * p[i]
            b = mu * buf[i] + keep * g
            buf[i] = b
            p[i] = p[i] - lr * (g + mu * b if nesterov else b)
    _round_into(p, copy, n)


cdef void _sgd(floating* p, const floating* grad, floating* buf, float* copy, Py_ssize_t size,
               SGDConfig cfg, bint threaded) noexcept nogil:
    cdef Py_ssize_t c, at, piece = _piece(size, threaded, copy)
    if threaded:  # (both branches: see kernels.h)
        for c in prange(_pieces(size, piece), schedule="static"):
            at = c * piece
            _sgd_chunk(p + at, grad + at, buf + at, _at(copy, at), _length(c, piece, size),
                       <floating> cfg.lr, <floating> cfg.weight_decay, <floating> cfg.momentum,
                       <floating> (1 - cfg.dampening), cfg.nesterov, cfg.first_step)
    else:
        for c in range(_pieces(size, piece)):
            at = c * piece
            _sgd_chunk(p + at, grad + at, buf + at, _at(copy, at), _length(c, piece, size),
                       <floating> cfg.lr, <floating> cfg.weight_decay, <floating> cfg.momentum,
                       <floating> (1 - cfg.dampening), cfg.nesterov, cfg.first_step)


def sgd_update(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, first_step=False, bf16_copy=None):
    """One step of torch.optim.SGD on `param`, in place.

    g = grad + weight_decay * param
    with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
                   g = g + momentum * buf (Nesterov) or g = buf
    param -= lr * g
    momentum_buffer (same shape as param) is updated in place; it may be None when momentum is 0.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    cdef tuple states = (momentum_buffer,) if momentum != 0 else ()
    if not (_numbers((lr, momentum, dampening, weight_decay)) and _plain(param, grad, states)
            and _plain_copy(bf16_copy, param, grad, states)):
        _, param, grad = sgd_update_args(param, grad, momentum_buffer, lr, momentum, dampening,
                                         weight_decay, bf16_copy)
    cdef SGDConfig cfg = SGDConfig(lr=lr, momentum=momentum, dampening=dampening,
                                   weight_decay=weight_decay, nesterov=nesterov,
                                   first_step=first_step)
    buf = momentum_buffer if momentum != 0 else param
    _run_sgd(param, grad, buf, bf16_copy, cfg)


cdef _run_sgd(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray buf, object bf16_copy,
              SGDConfig cfg):
    cdef Py_ssize_t size = param.size
    cdef bint threaded = _threaded(size)
    cdef bint single = param.descr.type_num == cnp.NPY_FLOAT
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* b = _data(buf)
    cdef float* copy = <float*> _data(bf16_copy)
    with nogil:
        if single:
            _sgd[float](<float*> p, <float*> g, <float*> b, copy, size, cfg, threaded)
        else:
            _sgd[double](<double*> p, <double*> g, <double*> b, NULL, size, cfg, threaded)


cdef struct AdagradConfig:
    double clr, weight_decay, eps


cdef void _adagrad_chunk(floating* p, const floating* grad, floating* state_sum, float* copy,
                         Py_ssize_t n, floating clr, floating wd, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, s
    for i in range(n):
        g = grad[i] + wd * p[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        p[i] = p[i] - clr * g / (_sqrt(s) + eps)
    _round_into(p, copy, n)


cdef void _adagrad(floating* p, const floating* grad, floating* state_sum, float* copy,
                   Py_ssize_t size, AdagradConfig cfg, bint threaded) noexcept nogil:
    cdef Py_ssize_t c, at, piece = _piece(size, threaded, copy)
    if threaded:  # (both branches: see kernels.h)
        for c in prange(_pieces(size, piece), schedule="static"):
            at = c * piece
            _adagrad_chunk(p + at, grad + at, state_sum + at, _at(copy, at),
                           _length(c, piece, size),
                           <floating> cfg.clr, <floating> cfg.weight_decay, <floating> cfg.eps)
    else:
        for c in range(_pieces(size, piece)):
            at = c * piece
            _adagrad_chunk(p + at, grad + at, state_sum + at, _at(copy, at),
                           _length(c, piece, size),
                           <floating> cfg.clr, <floating> cfg.weight_decay, <floating> cfg.eps)


def adagrad_update(param, grad, state_sum, *, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   step, bf16_copy=None):
    """One step of torch.optim.Adagrad on `param`, in place (step counts from 1).

    g = grad + weight_decay * param; state_sum += g * g
    param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    if not (_numbers((lr, lr_decay, weight_decay, eps, step)) and step >= 1
            and _plain(param, grad, (state_sum,))
            and _plain_copy(bf16_copy, param, grad, (state_sum,))):
        _, param, grad = adagrad_update_args(param, grad, state_sum, lr, lr_decay, weight_decay,
                                             eps, step, bf16_copy)
    cdef AdagradConfig cfg = AdagradConfig(clr=lr / (1 + (step - 1) * lr_decay),
                                           weight_decay=weight_decay, eps=eps)
    cdef Py_ssize_t size = param.size
    cdef bint threaded = _threaded(size)
    cdef bint single = param.dtype.num == cnp.NPY_FLOAT
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* s = _data(state_sum)
    cdef float* copy = <float*> _data(bf16_copy)
    with nogil:
        if single:
            _adagrad[float](<float*> p, <float*> g, <float*> s, copy, size, cfg, threaded)
        else:
            _adagrad[double](<double*> p, <double*> g, <double*> s, NULL, size, cfg, threaded)


cdef struct RMSpropConfig:
    double lr, alpha, eps, weight_decay, momentum
    bint centered


cdef void _rmsprop_chunk(floating* p, const floating* grad, floating* square_avg,
                         floating* grad_avg, floating* buf, float* copy, Py_ssize_t n, floating lr,
                         floating alpha, floating one_minus_alpha, floating eps, floating wd,
                         floating mu, bint centered) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, sq, ga, step
    for i in range(n):
        g = grad[i] + wd * p[i]
        sq = alpha * square_avg[i] + one_minus_alpha * g * g
        square_avg[i] = sq
        if centered:
            ga = alpha * grad_avg[i] + one_minus_alpha * g
            grad_avg[i] = ga
            sq = sq - ga * ga
        step = g / (_sqrt(sq) + eps)
        if mu > 0:
            step = mu * buf[i] + step
            buf[i] = step
        p[i] = p[i] - lr * step
    _round_into(p, copy, n)


cdef void _rmsprop(floating* p, const floating* grad, floating* square_avg, floating* grad_avg,
                   floating* buf, float* copy, Py_ssize_t size, RMSpropConfig cfg,
                   bint threaded) noexcept nogil:
    cdef Py_ssize_t c, at, piece = _piece(size, threaded, copy)
    if threaded:  # (both branches: see kernels.h)
        for c in prange(_pieces(size, piece), schedule="static"):
            at = c * piece
            _rmsprop_chunk(p + at, grad + at, square_avg + at,
                           grad_avg + at if cfg.centered else NULL,
                           buf + at if cfg.momentum > 0 else NULL, _at(copy, at),
                           _length(c, piece, size),
                           <floating> cfg.lr, <floating> cfg.alpha, <floating> (1 - cfg.alpha),
                           <floating> cfg.eps, <floating> cfg.weight_decay, <floating> cfg.momentum,
                           cfg.centered)
    else:
        for c in range(_pieces(size, piece)):
            at = c * piece
            _rmsprop_chunk(p + at, grad + at, square_avg + at,
                           grad_avg + at if cfg.centered else NULL,
                           buf + at if cfg.momentum > 0 else NULL, _at(copy, at),
                           _length(c, piece, size),
                           <floating> cfg.lr, <floating> cfg.alpha, <floating> (1 - cfg.alpha),
                           <floating> cfg.eps, <floating> cfg.weight_decay, <floating> cfg.momentum,
                           cfg.centered)


def rmsprop_update(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha=0.99,
                   eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, bf16_copy=None):
    """One step of torch.optim.RMSprop on `param`, in place.

    g = grad + weight_decay * param; square_avg = alpha * square_avg + (1 - alpha) * g * g
    centered: grad_avg = alpha * grad_avg + (1 - alpha) * g; avg = sqrt(square_avg - grad_avg**2) + eps
    otherwise avg = sqrt(square_avg) + eps
    momentum > 0: buf = momentum * buf + g / avg; param -= lr * buf; otherwise param -= lr * g / avg
    grad_avg may be None unless centered; momentum_buffer may be None unless momentum > 0.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    cdef tuple states = ((square_avg,) + ((grad_avg,) if centered else ())
                         + ((momentum_buffer,) if momentum > 0 else ()))
    if not (_numbers((lr, alpha, eps, weight_decay, momentum)) and _plain(param, grad, states)
            and _plain_copy(bf16_copy, param, grad, states)):
        _, param, grad = rmsprop_update_args(param, grad, square_avg, grad_avg, momentum_buffer,
                                             lr, alpha, eps, weight_decay, momentum, centered,
                                             bf16_copy)
    cdef RMSpropConfig cfg = RMSpropConfig(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                           momentum=momentum, centered=centered)
    cdef Py_ssize_t size = param.size
    cdef bint threaded = _threaded(size)
    cdef bint single = param.dtype.num == cnp.NPY_FLOAT
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* sq = _data(square_avg)
    cdef void* ga = _data(grad_avg) if centered else NULL
    cdef void* b = _data(momentum_buffer) if momentum > 0 else NULL
    cdef float* copy = <float*> _data(bf16_copy)
    with nogil:
        if single:
            _rmsprop[float](<float*> p, <float*> g, <float*> sq, <float*> ga, <float*> b, copy,
                            size, cfg, threaded)
        else:
            _rmsprop[double](<double*> p, <double*> g, <double*> sq, <double*> ga, <double*> b,
                             NULL, size, cfg, threaded)


cdef struct AdamConfig:
    double lr, beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt
    bint decoupled, amsgrad


cdef void _adam_chunk(floating* p, const floating* grad, floating* m, floating* v,
                      floating* vmax, float* copy, Py_ssize_t n, floating beta1, floating beta2,
                      floating one_minus_b1, floating one_minus_b2, floating eps,
                      floating step_size, floating bc2_sqrt, floating wd, floating shrink,
                      bint amsgrad) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, mi, vi, w
    for i in range(n):
        w = p[i] * shrink
        g = grad[i] + wd * w
        mi = beta1 * m[i] + one_minus_b1 * g
        vi = beta2 * v[i] + one_minus_b2 * g * g
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = vmax[i] if vmax[i] > vi else vi
            vmax[i] = vi
        p[i] = w - step_size * mi / (_sqrt(vi) / bc2_sqrt + eps)
    _round_into(p, copy, n)


cdef void _adam(floating* p, const floating* grad, floating* m, floating* v, floating* vmax,
                float* copy, Py_ssize_t size, AdamConfig cfg, bint threaded) noexcept nogil:
    cdef Py_ssize_t c, at, piece = _piece(size, threaded, copy)
    cdef floating b1 = <floating> cfg.beta1, b2 = <floating> cfg.beta2
    cdef floating keep1 = <floating> (1 - cfg.beta1), keep2 = <floating> (1 - cfg.beta2)
    cdef floating eps = <floating> cfg.eps, step = <floating> cfg.step_size
    cdef floating bc2 = <floating> cfg.bias_correction2_sqrt
    cdef floating wd = 0 if cfg.decoupled else <floating> cfg.weight_decay
    cdef floating shrink = <floating> (1 - cfg.lr * cfg.weight_decay) if cfg.decoupled else 1
    if threaded:  # (both branches: see kernels.h)
        for c in prange(_pieces(size, piece), schedule="static"):
            at = c * piece
            _adam_chunk(p + at, grad + at, m + at, v + at, vmax + at if cfg.amsgrad else NULL,
                        _at(copy, at), _length(c, piece, size), b1, b2, keep1, keep2, eps, step,
                        bc2, wd, shrink, cfg.amsgrad)
    else:
        for c in range(_pieces(size, piece)):
            at = c * piece
            _adam_chunk(p + at, grad + at, m + at, v + at, vmax + at if cfg.amsgrad else NULL,
                        _at(copy, at), _length(c, piece, size), b1, b2, keep1, keep2, eps, step,
                        bc2, wd, shrink, cfg.amsgrad)


def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, step, decoupled_weight_decay=False, amsgrad=False,
                bf16_copy=None):
    """One step of torch.optim.Adam (or AdamW with decoupled_weight_decay) on `param`, in place.

    Adam: g = grad + weight_decay * param.  AdamW: param *= 1 - lr * weight_decay; g = grad.
    m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g (amsgrad: vmax = max(vmax, v))
    param -= lr / (1 - beta1**step) * m / (sqrt(v or vmax) / sqrt(1 - beta2**step) + eps)
    step counts from 1; max_exp_avg_sq may be None unless amsgrad.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    cdef tuple states = (exp_avg, exp_avg_sq) + ((max_exp_avg_sq,) if amsgrad else ())
    if not (_numbers((lr, beta1, beta2, eps, weight_decay, step)) and step >= 1
            and 0 <= beta1 < 1 and 0 <= beta2 < 1 and _plain(param, grad, states)
            and _plain_copy(bf16_copy, param, grad, states)):
        _, param, grad = adam_update_args(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr,
                                          beta1, beta2, eps, weight_decay, step, amsgrad,
                                          bf16_copy)
    cdef AdamConfig cfg = AdamConfig(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
        step_size=lr / (1 - beta1 ** step), bias_correction2_sqrt=(1 - beta2 ** step) ** 0.5,
        decoupled=decoupled_weight_decay, amsgrad=amsgrad)
    cdef Py_ssize_t size = param.size
    cdef bint threaded = _threaded(size)
    cdef bint single = param.dtype.num == cnp.NPY_FLOAT
    cdef void* p = _data(param)
    cdef void* g = _data(grad)
    cdef void* m = _data(exp_avg)
    cdef void* v = _data(exp_avg_sq)
    cdef void* vmax = _data(max_exp_avg_sq) if amsgrad else NULL
    cdef float* copy = <float*> _data(bf16_copy)
    with nogil:
        if single:
            _adam[float](<float*> p, <float*> g, <float*> m, <float*> v, <float*> vmax, copy,
                         size, cfg, threaded)
        else:
            _adam[double](<double*> p, <double*> g, <double*> m, <double*> v, <double*> vmax,
                          NULL, size, cfg, threaded)
