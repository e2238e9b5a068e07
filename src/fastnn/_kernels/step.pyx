# The compiled training step: forward, loss and backward of a whole Sequential in one call.
#
# Why: in a small network a step's arithmetic takes microseconds, and calling a dozen kernels
# from Python (each checking its arguments, each np.matmul dispatching through NumPy) costs
# several times that. A Plan is built once per batch size (fastnn/_step.py) from the ops the
# model's layers make of their own parameters, buffers and gradients (each layer's _step_op),
# already checked. Each layer type's op (an op.Op) is defined beside that layer's kernels
# (DenseOp and ActivationOp in dense.pyx, DropoutOp in dropout.pyx, BatchNormOp in
# batchnorm.pyx) and calls their C-level entry points, so there is one implementation of each
# computation; only the loop over layers moved from Python to here, with the loss (loss.pxd).
cimport numpy as cnp
from cython cimport floating

from .loss cimport _multiclass_loss
from .op cimport Op

import numpy as np


cnp.import_array()


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
