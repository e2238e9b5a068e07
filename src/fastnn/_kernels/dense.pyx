# Compiled dense kernels; dense_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design:
# - GEMMs go through the GEMM module (gemm.pxd: NumPy's own BLAS); this file never multiplies
#   matrices itself.
# - Everything around a GEMM is one fused pass over rows: bias + activation after the forward GEMM,
#   activation derivative + bias-gradient reduction before the backward GEMMs.
# - Activation derivatives are written in terms of the activation's output A, so the
#   pre-activation Z is never stored.
# - Rows are split across OpenMP threads only when the pass is large enough to pay for waking them
#   (FNN_PARALLEL_MIN_WORK in kernels.h); no two threads write the same element. The bias gradient
#   is reduced into one float64 row of partial sums per thread, added up at the end.
# - round_bf16 (float32 only) makes the epilogue store its output rounded to bfloat16 (the
#   operand of the next bfloat16 GEMM) in the same loop that computes it; the backward then sums
#   db from the unrounded dZ and stores dZ rounded. Each row function takes the option as a
#   compile-time constant (every call passes a literal), so the plain loops stay as they were.
# - Argument checks are the twin's (_checks.py), so both backends accept and reject alike.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport tanh
from libc.stdlib cimport calloc, free

from .bf16 cimport _round_bf16_f32, _run_round_bfloat16
from .gemm cimport matmul_into, weight_gradients
from .op cimport Op
from .penalty cimport _run_elastic_net

import numpy as np

from ._checks import (ACTIVATION_COST, bias_act_backward_args, bias_act_forward_args,
                      dense_backward_args, dense_forward_args)

cnp.import_array()

__all__ = ["bias_act_forward", "bias_act_backward", "dense_forward", "dense_backward"]

cdef extern from "kernels.h" nogil:
    int omp_get_max_threads()
    const long FNN_PARALLEL_MIN_WORK
    float fnn_eluf(float z, float alpha)
    double fnn_elu(double z, double alpha)
    float fnn_sigmoidf(float z)
    float fnn_tanhf(float z)
    double fnn_sigmoid(double z)

# Same numbering as _checks.ACTIVATIONS.
cdef enum:
    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    ELU = 3
    SIGMOID = 4
    TANH = 5


cdef inline floating _elu(floating z, floating alpha) noexcept nogil:
    if floating is float:
        return fnn_eluf(z, alpha)
    else:
        return fnn_elu(z, alpha)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    if floating is float:
        return fnn_sigmoidf(z)
    else:
        return fnn_sigmoid(z)


cdef inline floating _tanh(floating z) noexcept nogil:
    if floating is float:
        return fnn_tanhf(z)
    else:
        return tanh(z)


cdef inline floating _stored(floating v, bint rnd) noexcept nogil:
    # v as the kernel stores it: rounded to bfloat16 when `rnd` (float32 only; the checks refuse
    # round_bf16 for float64, so the double copy never rounds).
    if floating is float:
        if rnd:
            return _round_bf16_f32(v)
    return v


cdef inline void _bias_act_row(const floating* z, const floating* b, floating* a, Py_ssize_t m,
                               int act, floating alpha, bint rnd) noexcept nogil:
    # a = act(z + b) for one row, rounded to bfloat16 when `rnd`; a may be z.
    cdef Py_ssize_t j
    cdef floating v
    if act == IDENTITY:
        for j in range(m):
            a[j] = _stored(z[j] + b[j], rnd)
    elif act == RELU:
        for j in range(m):
            v = z[j] + b[j]
            a[j] = _stored(0 if v <= 0 else v, rnd)  # NaN stays NaN
    elif act == LEAKY_RELU:
        for j in range(m):
            v = z[j] + b[j]
            a[j] = _stored(alpha * v if v <= 0 else v, rnd)
    elif act == ELU:
        for j in range(m):
            a[j] = _stored(_elu(z[j] + b[j], alpha), rnd)
    elif act == SIGMOID:
        for j in range(m):
            a[j] = _stored(_sigmoid(z[j] + b[j]), rnd)
    elif act == TANH:
        for j in range(m):
            a[j] = _stored(_tanh(z[j] + b[j]), rnd)


cdef inline void _grad_act_row(const floating* da, const floating* a, floating* dz, double* db_acc,
                               Py_ssize_t m, int act, floating alpha, bint sums,
                               bint rnd) noexcept nogil:
    # dz = da * act'(a) for one row, and db_acc += dz when `sums`; dz is stored rounded to
    # bfloat16 when `rnd` (db_acc sums it unrounded); dz may be da. Every call passes `sums` and
    # `rnd` as constants, so the compiler drops the tests from the loops.
    cdef Py_ssize_t j
    cdef floating g
    if act == IDENTITY:
        for j in range(m):
            g = da[j]
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g
    elif act == RELU:
        for j in range(m):
            g = da[j] * (a[j] > 0)
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g
    elif act == LEAKY_RELU:
        for j in range(m):
            g = da[j] * (1 if a[j] > 0 else alpha)
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g
    elif act == ELU:
        for j in range(m):
            g = da[j] * (1 if a[j] > 0 else a[j] + alpha)
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g
    elif act == SIGMOID:
        for j in range(m):
            g = da[j] * a[j] * (1 - a[j])
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g
    elif act == TANH:
        for j in range(m):
            g = da[j] * (1 - a[j] * a[j])
            dz[j] = _stored(g, rnd)
            if sums:
                db_acc[j] += g


cdef inline void _forward_row(const floating* z, const floating* b, floating* a, Py_ssize_t m,
                              int act, floating alpha, bint rnd) noexcept nogil:
    # _bias_act_row with `rnd` passed as a constant: one branch per row, none per element.
    if rnd:
        _bias_act_row(z, b, a, m, act, alpha, True)
    else:
        _bias_act_row(z, b, a, m, act, alpha, False)


cdef inline void _backward_row(const floating* da, const floating* a, floating* dz,
                               double* db_acc, Py_ssize_t m, int act, floating alpha, bint sums,
                               bint rnd) noexcept nogil:
    # _grad_act_row with `sums` and `rnd` passed as constants.
    if sums and rnd:
        _grad_act_row(da, a, dz, db_acc, m, act, alpha, True, True)
    elif sums:
        _grad_act_row(da, a, dz, db_acc, m, act, alpha, True, False)
    elif rnd:
        _grad_act_row(da, a, dz, db_acc, m, act, alpha, False, True)
    else:
        _grad_act_row(da, a, dz, db_acc, m, act, alpha, False, False)


cdef void _bias_act_forward(const floating* Z, const floating* b, floating* out, Py_ssize_t n,
                            Py_ssize_t m, int act, floating alpha, bint rnd,
                            bint threaded) noexcept nogil:
    cdef Py_ssize_t i
    if threaded:  # (both branches: see kernels.h)
        for i in prange(n, schedule="static"):
            _forward_row(Z + i * m, b, out + i * m, m, act, alpha, rnd)
    else:
        for i in range(n):
            _forward_row(Z + i * m, b, out + i * m, m, act, alpha, rnd)


cdef int _bias_act_backward(const floating* dA, const floating* A, floating* dZ, floating* db,
                            Py_ssize_t n, Py_ssize_t m, int act, floating alpha, bint accumulate,
                            bint rnd, bint threaded) noexcept nogil:
    cdef int n_threads = omp_get_max_threads() if threaded else 1
    cdef double* partial
    cdef double* acc
    cdef double total
    cdef Py_ssize_t i, j
    cdef int t
    if db == NULL:  # an activation layer's backward: no bias, so no column sums
        if threaded:
            for i in prange(n, schedule="static"):
                _backward_row(dA + i * m, A + i * m, dZ + i * m, NULL, m, act, alpha, False, rnd)
        else:
            _backward_row(dA, A, dZ, NULL, n * m, act, alpha, False, rnd)
        return 0
    partial = <double*> calloc(n_threads * m, sizeof(double))
    if partial == NULL:
        return -1
    if threaded:
        with parallel(num_threads=n_threads):
            acc = partial + threadid() * m
            for i in prange(n, schedule="static"):
                _backward_row(dA + i * m, A + i * m, dZ + i * m, acc, m, act, alpha, True, rnd)
    else:
        for i in range(n):
            _backward_row(dA + i * m, A + i * m, dZ + i * m, partial, m, act, alpha, True, rnd)
    for j in range(m):
        total = 0
        for t in range(n_threads):
            total = total + partial[t * m + j]
        db[j] = <floating>(db[j] + total) if accumulate else <floating>total
    free(partial)
    return 0


cdef inline bint _threaded(Py_ssize_t n, Py_ssize_t m, int act):
    return n > 1 and n * m * <long>ACTIVATION_COST[act] >= FNN_PARALLEL_MIN_WORK


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def bias_act_forward(Z, b, *, activation="identity", alpha=0.0, out=None, round_bf16=False):
    """out = act(Z + b). Z is (N, M), b is (M,) or None; out may be Z itself. Returns out.

    round_bf16 (float32 only): out holds act(Z + b) rounded to bfloat16 (nearest even).
    """
    code, alpha, Z, b, out = bias_act_forward_args(Z, b, activation, alpha, out, round_bf16)
    _run_bias_act_forward(Z, b, out, code, alpha, round_bf16)
    return out


cdef _run_bias_act_forward(cnp.ndarray Z, object b, cnp.ndarray out, int code, double alpha,
                           bint round_bf16):
    # out = act(Z + b), rounded to bfloat16 when round_bf16 (float32 only); b=None adds zeros.
    cdef Py_ssize_t n = Z.shape[0], m = Z.shape[1]
    if b is None:
        b = np.zeros(m, dtype=Z.dtype)
    cdef bint threaded = _threaded(n, m, code)
    cdef bint single = Z.descr.type_num == cnp.NPY_FLOAT
    cdef void* z = _data(Z)
    cdef void* bias = _data(b)
    cdef void* a = _data(out)
    with nogil:
        if single:
            _bias_act_forward[float](<float*> z, <float*> bias, <float*> a, n, m, code,
                                     <float> alpha, round_bf16, threaded)
        else:
            _bias_act_forward[double](<double*> z, <double*> bias, <double*> a, n, m, code,
                                      alpha, False, threaded)


def bias_act_backward(dA, A, *, activation="identity", alpha=0.0, dZ=None, db=None,
                      accumulate=False, round_bf16=False):
    """dZ = dA * act'(A); db = sum of dZ over rows (+= when accumulate). Returns (dZ, db).

    dA and A are (N, M); dZ may be dA itself. db=None skips the bias gradient.
    round_bf16 (float32 only): db sums the unrounded dZ, dZ is stored rounded to bfloat16.
    """
    code, alpha, dA, A, dZ, db = bias_act_backward_args(dA, A, activation, alpha, dZ, db,
                                                        round_bf16)
    _run_bias_act_backward(dA, A, dZ, db, code, alpha, accumulate, round_bf16)
    return dZ, db


cdef _run_bias_act_backward(cnp.ndarray dA, cnp.ndarray A, cnp.ndarray dZ, object db, int code,
                            double alpha, bint accumulate, bint round_bf16):
    cdef Py_ssize_t n = A.shape[0], m = A.shape[1]
    cdef bint threaded = _threaded(n, m, code)
    cdef bint single = A.descr.type_num == cnp.NPY_FLOAT
    cdef void* da = _data(dA)
    cdef void* a = _data(A)
    cdef void* dz = _data(dZ)
    cdef void* bias_grad = NULL if db is None else _data(db)
    cdef int status
    with nogil:
        if single:
            status = _bias_act_backward[float](<float*> da, <float*> a, <float*> dz,
                                               <float*> bias_grad, n, m, code, <float> alpha,
                                               accumulate, round_bf16, threaded)
        else:
            status = _bias_act_backward[double](<double*> da, <double*> a, <double*> dz,
                                                <double*> bias_grad, n, m, code, alpha,
                                                accumulate, False, threaded)
    if status != 0:
        raise MemoryError("bias_act_backward: could not allocate the bias-gradient partial sums")


def dense_forward(X, W, b, *, activation="identity", alpha=0.0, out=None, round_bf16=False):
    """out = act(X @ W + b) for X (N, K), W (K, M), b (M,) or None. Returns out (N, M).

    round_bf16 (float32 only): out is rounded to bfloat16 after the activation, in the same pass.
    """
    code, alpha, X, W, b, out = dense_forward_args(X, W, b, activation, alpha, out, round_bf16)
    matmul_into(X, False, W, False, out, False)
    _run_bias_act_forward(out, b, out, code, alpha, round_bf16)
    return out


def dense_backward(dA, X, W, A, *, activation="identity", alpha=0.0, dZ=None, dW=None, db=None,
                   dX=None, need_dX=True, accumulate=False, round_bf16=False):
    """Gradients of a dense layer A = act(X @ W + b), given dA = dL/dA.

    dZ = dA * act'(A) (dZ may be dA itself); dW = X.T @ dZ; db = sum of dZ over rows;
    dX = dZ @ W.T, skipped when need_dX is False (a network's first layer).
    With accumulate, dW and db are added to instead of overwritten; dX is always overwritten.
    round_bf16 (float32 only): db sums the unrounded dZ; dZ is stored rounded to bfloat16, and
    dW and dX are computed from that rounded dZ.
    Returns (dX or None, dW, db).
    """
    code, alpha, dA, X, W, A, dZ, dW, db = dense_backward_args(dA, X, W, A, activation, alpha, dZ,
                                                               dW, db, accumulate, round_bf16)
    _run_bias_act_backward(dA, A, dZ, db, code, alpha, accumulate, round_bf16)
    return weight_gradients("dense_backward", X, W, dZ, dW, db, dX, need_dX, accumulate)


# The Dense and activation layers' ops in the compiled training step (op.pxd, step.pyx): these
# kernels' entry points on the layers' own, already checked arrays.
cdef class DenseOp(Op):
    # W is the GEMM operand: the layer's weights, or in a bfloat16 model their bf16-valued copy,
    # with `master` the float32 weights (the penalty's) and `rounded` the buffer the input is
    # rounded into before the GEMMs; outputs and dZ are rounded as the layer's round_bf16 does.
    cdef cnp.ndarray W, master, rounded, b, dW, db, dZ
    cdef int code
    cdef double alpha
    cdef bint bf16

    def __init__(self, layer, input, output, grad_input, W, b, dW, db, dZ, int code, double alpha,
                 master=None, rounded=None):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.W, self.b, self.dW, self.db, self.dZ = W, b, dW, db, dZ
        self.master = W if master is None else master
        self.rounded, self.bf16 = rounded, rounded is not None
        self.code, self.alpha = code, alpha

    cdef int set_input(self, cnp.ndarray X) except -1:
        self.input = X
        self.layer._X = self.rounded if self.bf16 else X
        return 0

    def penalized(self):
        return [] if self.dW is None else [self.master]

    cdef int forward(self) except -1:
        cdef cnp.ndarray X = self.input
        if self.bf16:
            _run_round_bfloat16(X, self.rounded)
            X = self.rounded
        matmul_into(X, False, self.W, False, self.output, False)
        _run_bias_act_forward(self.output, self.b, self.output, self.code, self.alpha, self.bf16)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        # A frozen W or b (fastnn.Parameter.requires_grad) comes as None: no gradient for it.
        _run_bias_act_backward(grad_output, self.output, self.dZ, self.db, self.code, self.alpha,
                               False, self.bf16)
        if self.dW is not None:
            matmul_into(self.rounded if self.bf16 else self.input, True, self.dZ, False, self.dW,
                        False)
        if self.grad_input is not None:
            matmul_into(self.dZ, False, self.W, True, self.grad_input, False)
        return 0

    cdef double penalize(self, double l1, double l2) noexcept:
        if self.dW is None:  # a frozen W carries no penalty
            return 0.0
        return _run_elastic_net(self.master, self.dW, l1, l2)


cdef class ActivationOp(Op):
    cdef cnp.ndarray zeros
    cdef int code
    cdef double alpha

    def __init__(self, layer, input, output, grad_input, int code, double alpha):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.zeros = np.zeros(output.shape[1], dtype=output.dtype)
        self.code, self.alpha = code, alpha

    cdef int forward(self) except -1:
        _run_bias_act_forward(self.input, self.zeros, self.output, self.code, self.alpha, False)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        if self.grad_input is not None:
            _run_bias_act_backward(grad_output, self.output, self.grad_input, None, self.code,
                                   self.alpha, False, False)
        return 0
