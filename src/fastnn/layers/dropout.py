"""Dropout, drawing its mask from a counter-based stream (seed, layer index, step)."""

import numpy as np

from .. import _backend
from .._hash import MASK64, dropout_key
from .._validation import check_float
from ._base import Buffer, Layer, as_dtype, register


def stream_seed(seed):
    """The integer seed of a counter-based random stream: `seed` itself (a non-negative integer,
    taken mod 2**64), or fresh entropy from the operating system when it is None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) & MASK64
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed) & MASK64


@register
class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability p and the kept ones are
    scaled by 1/(1 - p), so that inference is the identity (and costs nothing).

    p is the probability of *dropping* a unit (the PyTorch/Keras convention); the CS231n notes' p
    is the probability of keeping one, 1 - p here. p = 0 is the identity; p must lie in [0, 1).

    Masks come from a counter-based generator: the mask of a training forward is a pure function of
    (seed, layer index, step, element), so both backends and every thread count draw the same
    masks and a run is reproducible from its seed. In a Sequential, the seed is the model's (see
    Sequential) and the index the layer's position; used on its own, the layer takes `seed`
    (None: fresh entropy) and index 0. The step counts the training forwards since the layer was
    (re)initialized. The mask is kept for backward as one byte per unit.
    """

    def __init__(self, p=0.5, dtype="float32", seed=None):
        self.p = check_float("Dropout: p (the probability of dropping a unit)", p, 0.0, 1.0,
                             high_open=True)
        self.seed = stream_seed(seed)
        self.index = 0
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        self.dtype = as_dtype(dtype)
        self.step = 0
        self._out = self._dX = self._masks = None
        self._shape = self._mask = None

    def bind(self, index, seed):
        self.index = int(index)
        self.seed = stream_seed(seed)
        self.step = 0

    def config(self):
        return dict(p=self.p, dtype=self.dtype.name, seed=self.seed)

    def get_extra_state(self):
        """Where the mask stream stands: the next training forward draws the mask of
        (seed, index, step)."""
        return dict(seed=self.seed, index=self.index, step=self.step)

    def set_extra_state(self, state):
        self.seed = stream_seed(state["seed"])
        self.index, self.step = int(state["index"]), int(state["step"])

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        self._shape = X.shape
        self._mask = None
        if not training or self.p == 0.0:
            return X
        n, d = X.shape
        self._size_buffers(d)
        key = dropout_key(self.seed, self.index, self.step)
        self.step += 1
        out, self._mask = _backend.kernels.dropout_forward(
            X, p=self.p, key=key, out=self._out.rows(n), mask=self._masks.rows(n))
        return out

    def _size_buffers(self, d):
        """Output, gradient and mask buffers for inputs of d features (made at the first
        training forward)."""
        if self._out is None or self._out.cols != d:
            self._out, self._dX = Buffer(d, self.dtype), Buffer(d, self.dtype)
            self._masks = Buffer(d, np.uint8)

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, self._shape, self.dtype)
        if not need_dX:
            return None
        if self._mask is None:  # the last forward was the identity
            return dA
        return _backend.kernels.dropout_backward(dA, self._mask, p=self.p,
                                                 dX=self._dX.rows(dA.shape[0]))

    def _step_held(self):
        """See Dense._step_held."""
        out = self._out
        return (self.p, out and out._array, out and self._dX._array,
                out and self._masks._array)

    def _step_op(self, step, n, features, previous, need_dX):
        """See Dense._step_op; with p = 0 there is no op (the input passes through)."""
        if self.p == 0.0:
            return None, previous, self._leave(_shape=(n, features), _mask=None)
        self._size_buffers(features)
        p, threshold = _backend.drop_probability("Dropout", self.p)
        out, mask = self._out.rows(n), self._masks.rows(n)
        op = step.DropoutOp(self, previous, out, self._dX.rows(n) if need_dX else None, mask,
                            threshold, 1.0 / (1.0 - p))
        return op, out, self._leave(_shape=(n, features), _mask=mask)

    def __repr__(self):
        return f"Dropout(p={self.p:g})"
