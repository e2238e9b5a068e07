# The base class of the compiled training step's ops (declared in op.pxd, which the kernel files
# defining ops and step.pyx cimport). An op is one layer of a Plan: forward() reads `input` and
# writes `output`; backward(grad_output) writes the parameter gradients and, when `grad_input` is
# not None, dL/d input into it. The defaults are an op with no parameters that does nothing.
cimport numpy as cnp

cnp.import_array()


cdef class Op:
    """One layer of a compiled-step plan (see op.pxd)."""

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
