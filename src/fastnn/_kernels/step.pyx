# The compiled training step: forward, loss and backward of a whole Sequential in one call.
#
# Why: in a small network a step's arithmetic takes microseconds, and calling a dozen kernels
# from Python (each checking its arguments, each np.matmul dispatching through NumPy) costs
# several times that. A Plan is built once per batch size (fastnn/_step.py) from the ops the
# model's layers make of their own parameters, buffers and gradients (each layer's _step_op),
# already checked. Running it calls, per layer, the same C-level entry points as that layer's
# kernels (dense.pxd, dropout.pxd, batchnorm.pxd, loss.pxd), so there is one implementation of
# each computation; only the loop over layers moved from Python to here.
#
# GEMMs go through the GEMM module (gemm.pxd), as the dense kernels' do.
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport uint64_t

from .batchnorm cimport _run_backward as _batchnorm_backward
from .batchnorm cimport _run_forward as _batchnorm_forward
from .dense cimport _run_bias_act_backward, _run_bias_act_forward
from .dropout cimport _dropout_key
from .dropout cimport _run_backward as _dropout_backward
from .dropout cimport _run_forward as _dropout_forward
from .gemm cimport matmul_into
from .loss cimport _multiclass_loss
from .penalty cimport _run_elastic_net

import numpy as np


cnp.import_array()

cdef class Op:
    """One layer of a plan. forward() reads `input` and writes `output`; backward(grad_output)
    writes the parameter gradients and, when `grad_input` is not None, dL/d input into it."""
    cdef public cnp.ndarray input, output, grad_input
    cdef public object layer

    cdef int set_input(self, cnp.ndarray X) except -1:
        # The first op's input is each run's batch; an op whose layer keeps its input (for its
        # own backward, kink_pattern) hands it on.
        self.input = X
        return 0

    def penalized(self):
        """The weight arrays penalize() covers."""
        return []

    cdef int forward(self) except -1:
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        return 0

    cdef double penalize(self, double l1, double l2) noexcept:
        # The elastic-net penalty of this op's trainable weights, its gradient added to theirs
        # (regularization.ElasticNet's arithmetic); 0 when it has none.
        return 0.0


cdef class DenseOp(Op):
    cdef cnp.ndarray W, b, dW, db, dZ
    cdef int code
    cdef double alpha

    def __init__(self, layer, input, output, grad_input, W, b, dW, db, dZ, int code, double alpha):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.W, self.b, self.dW, self.db, self.dZ = W, b, dW, db, dZ
        self.code, self.alpha = code, alpha

    cdef int set_input(self, cnp.ndarray X) except -1:
        self.input = self.layer._X = X
        return 0

    def penalized(self):
        return [] if self.dW is None else [self.W]

    cdef int forward(self) except -1:
        matmul_into(self.input, False, self.W, False, self.output, False)
        _run_bias_act_forward(self.output, self.b, self.output, self.code, self.alpha, False)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        # A frozen W or b (fastnn.Parameter.requires_grad) comes as None: no gradient for it.
        _run_bias_act_backward(grad_output, self.output, self.dZ, self.db, self.code, self.alpha,
                               False, False)
        if self.dW is not None:
            matmul_into(self.input, True, self.dZ, False, self.dW, False)
        if self.grad_input is not None:
            matmul_into(self.dZ, False, self.W, True, self.grad_input, False)
        return 0

    cdef double penalize(self, double l1, double l2) noexcept:
        if self.dW is None:  # a frozen W carries no penalty
            return 0.0
        return _run_elastic_net(self.W, self.dW, l1, l2)


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


def dropout_key_of(seed, index, step):
    """The key DropoutOp draws its mask with (for tests: it must be _checks.dropout_key's)."""
    return _dropout_key(seed, index, step)


cdef class DropoutOp(Op):
    # `layer` has the stream's seed, index and step (fastnn.Dropout); each forward draws the mask
    # of (seed, index, step) and advances step, as Dropout.forward does.
    cdef cnp.ndarray mask
    cdef uint64_t threshold
    cdef double scale

    def __init__(self, layer, input, output, grad_input, mask, uint64_t threshold, double scale):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.mask, self.threshold, self.scale = mask, threshold, scale

    cdef int forward(self) except -1:
        layer = self.layer
        cdef uint64_t key = _dropout_key(layer.seed, layer.index, layer.step)
        layer.step += 1
        _dropout_forward(self.input, self.output, self.mask, key, self.threshold, self.scale)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        if self.grad_input is not None:
            _dropout_backward(grad_output, self.mask, self.grad_input, self.scale)
        return 0


cdef class BatchNormOp(Op):
    cdef cnp.ndarray gamma, beta, running_mean, running_var, mean, inv_std, dgamma, dbeta, dX
    cdef double momentum, eps

    def __init__(self, layer, input, output, grad_input, gamma, beta, running_mean, running_var,
                 mean, inv_std, dgamma, dbeta, dX, double momentum, double eps):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.gamma, self.beta, self.running_mean, self.running_var = (gamma, beta, running_mean,
                                                                      running_var)
        self.mean, self.inv_std, self.dgamma, self.dbeta, self.dX = (mean, inv_std, dgamma, dbeta,
                                                                     dX)
        self.momentum, self.eps = momentum, eps

    cdef int set_input(self, cnp.ndarray X) except -1:
        self.input = self.layer._X = X
        return 0

    cdef int forward(self) except -1:
        _batchnorm_forward(self.input, self.gamma, self.beta, self.running_mean,
                           self.running_var, self.output, self.mean, self.inv_std, True,
                           self.momentum, self.eps)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        _batchnorm_backward(grad_output, self.input, self.gamma, self.mean, self.inv_std,
                            self.dX, self.dgamma, self.dbeta, True, False)
        return 0


cdef class Plan:
    """The ops of a model's layers in order, the loss (softmax cross-entropy or multiclass hinge)
    and the buffer its gradient goes to. run(X, y) is one forward, loss and backward; the first
    op's input is X, the others' inputs are their predecessors' outputs (fixed when built).
    Backward runs the ops from the last down to ops[first_backward] (the ops below it only lead
    to frozen parameters)."""
    cdef list ops
    cdef cnp.ndarray dscores
    cdef bint softmax
    cdef Py_ssize_t first_backward
    cdef readonly double penalty
    cdef readonly Py_ssize_t correct
    cdef double[::1] values

    def __init__(self, ops, dscores, bint softmax, Py_ssize_t first_backward=0):
        if not ops:
            raise ValueError("Plan: no ops")
        if not 0 <= first_backward <= len(ops):
            raise ValueError("Plan: first_backward must lie in [0, len(ops)]")
        self.ops, self.dscores, self.softmax = list(ops), dscores, softmax
        self.first_backward = first_backward
        self.values = np.zeros(len(self.ops))

    def all_finite(self, cnp.ndarray X):
        """Whether X (checked as for run) holds no NaN or inf: one pass that vectorizes (x - x
        is 0 exactly when x is finite)."""
        cdef Py_ssize_t size = X.size, i
        cdef const float* xf = <const float*> cnp.PyArray_DATA(X)
        cdef const double* xd = <const double*> cnp.PyArray_DATA(X)
        cdef int bad = 0
        cdef bint single = X.descr.type_num == cnp.NPY_FLOAT
        with nogil:
            if single:
                for i in range(size):
                    bad = bad | (xf[i] - xf[i] != 0)
            else:
                for i in range(size):
                    bad = bad | (xd[i] - xd[i] != 0)
        return bad == 0

    def labels_ok(self, y):
        """Whether y can be passed to run as it is: a C-contiguous int64 vector of the batch's
        length with every label in [0, classes). Otherwise fastnn's label checks convert it or
        say what is wrong."""
        cdef cnp.ndarray labels
        cdef Py_ssize_t n = self.dscores.shape[0], c = self.dscores.shape[1], i
        cdef const cnp.int64_t* v
        cdef int ok = 1
        if not isinstance(y, cnp.ndarray):
            return False
        labels = <cnp.ndarray> y
        if (labels.descr.type_num != cnp.NPY_INT64 or labels.ndim != 1
                or labels.shape[0] != n or not cnp.PyArray_IS_C_CONTIGUOUS(labels)):
            return False
        v = <const cnp.int64_t*> cnp.PyArray_DATA(labels)
        with nogil:
            for i in range(n):
                ok = ok & (v[i] >= 0) & (v[i] < c)
        return ok

    @property
    def scores(self):
        """The model's output buffer, which run() fills with the scores."""
        return (<Op> self.ops[len(self.ops) - 1]).output

    def run(self, cnp.ndarray X, cnp.ndarray y, double l1=0.0, double l2=0.0,
            bint count=False):
        """Forward with X (checked: C-contiguous (N, in) of the model's dtype), the loss
        against y (checked int64 labels), backward into the parameters' gradient arrays
        (overwritten). Returns the loss.

        With l1 or l2 (checked: finite, >= 0), each trainable Dense weight also gets the
        elastic-net penalty's gradient, added right after its own gradient GEMM while it is in
        cache; `penalty` is then the penalty's value, summed over the weights in layer order as
        fastnn.regularization.ElasticNet sums it. With count, `correct` is how many rows' scores
        have their largest entry at the label (np.argmax's rule: the first NaN counts as the
        largest), as fastnn.metrics.correct counts."""
        cdef Op op = <Op> self.ops[0]
        cdef Py_ssize_t i, last = len(self.ops) - 1  # (no negative indexing: wraparound is off)
        cdef bint penalized = l1 != 0.0 or l2 != 0.0
        cdef double penalty = 0.0
        op.set_input(X)
        for i in range(last + 1):
            (<Op> self.ops[i]).forward()
        cdef cnp.ndarray scores = (<Op> self.ops[last]).output
        cdef double loss = _multiclass_loss(scores, y, self.dscores, self.softmax)
        self.correct = _count_correct(scores, y) if count else 0
        cdef cnp.ndarray grad = self.dscores
        cdef double[::1] values = self.values  # per op, summed in layer order (ElasticNet's)
        for i in range(last, self.first_backward - 1, -1):
            op = <Op> self.ops[i]
            op.backward(grad)
            if penalized:
                values[i] = op.penalize(l1, l2)
            grad = op.grad_input
        if penalized:
            for i in range(self.first_backward, last + 1):
                penalty += values[i]
        self.penalty = penalty
        return loss


cdef Py_ssize_t _count_correct(cnp.ndarray scores, cnp.ndarray y) noexcept:
    # scores: C-contiguous (N, C) float32/float64; y: checked int64 labels.
    cdef Py_ssize_t n = scores.shape[0], c = scores.shape[1]
    cdef const cnp.int64_t* labels = <const cnp.int64_t*> cnp.PyArray_DATA(y)
    cdef Py_ssize_t right
    cdef bint single = scores.descr.type_num == cnp.NPY_FLOAT
    with nogil:
        if single:
            right = _count[float](<const float*> cnp.PyArray_DATA(scores), labels, n, c)
        else:
            right = _count[double](<const double*> cnp.PyArray_DATA(scores), labels, n, c)
    return right


cdef Py_ssize_t _count(const floating* s, const cnp.int64_t* labels, Py_ssize_t n,
                       Py_ssize_t c) noexcept nogil:
    # Branch-free selects (random scores mispredict a branch half the time); a row with a NaN
    # is redone with np.argmax's rule, the first NaN wins.
    cdef Py_ssize_t i, j, best, right = 0
    cdef floating top, v
    cdef bint nan, higher
    for i in range(n):
        best, top = 0, s[i * c]
        nan = top != top
        for j in range(1, c):
            v = s[i * c + j]
            higher = v > top
            best = j if higher else best
            top = v if higher else top
            nan = nan | (v != v)
        if nan:
            for j in range(c):
                if s[i * c + j] != s[i * c + j]:
                    best = j
                    break
        right += best == labels[i]
    return right
