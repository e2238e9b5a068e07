"""Dense: the fully-connected layer with a fused activation."""

import numpy as np

from .. import _backend
from .._activations import CODES as ACTIVATIONS
from ..init import check_init, default_init, initialize
from ._base import (Buffer, Layer, as_dtype, gradient_outputs, gradients_written, _init_config,
                    positive_config, register, renewed)
from .activations import _activation_alpha, _kinks


@register
class Dense(Layer):
    """Fully-connected layer with a fused activation: A = act(X @ W + b).

    W has shape (in_features, out_features), so that X @ W needs no transpose; b starts at zero.
    activation: "identity" (default), "relu", "leaky_relu" (alpha, default 0.01), "elu" (alpha,
    default 1.0), "sigmoid" or "tanh". init: "he" (default for the relu family), "xavier"
    (default otherwise), a float scale s for s * randn, or any name in fastnn.init.

    In a Sequential, an identity Dense followed by an activation layer (ReLU(), Tanh(), ...) runs
    the activation inside this layer's fused kernel (`epilogue`); the activation layer then
    passes values through.
    """

    @classmethod
    def declared_arrays(cls, config, invalid):
        n, m = positive_config(config, "in_features", invalid), positive_config(
            config, "out_features", invalid)
        return [("W", (n, m)), ("b", (m,))], []

    def __init__(self, in_features, out_features, activation="identity", init=None, alpha=None,
                 dtype="float32", seed=None):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Dense: {name} must be a positive integer, got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Dense: unknown activation {activation!r}; expected one of "
                             f"{sorted(ACTIVATIONS)}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.alpha = _activation_alpha("Dense", activation, alpha)
        self.init = default_init(activation) if init is None else init
        self.init_is_default = init is None
        check_init(self.init)
        self.epilogue = (activation, self.alpha)
        self.reset_parameters(dtype, np.random.default_rng(seed))

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        shape = (self.in_features, self.out_features)
        self.W = renewed(getattr(self, "W", None),
                         initialize(self.init, shape, rng, dtype, self._label()), "W", True)
        self.b = renewed(getattr(self, "b", None), np.zeros(self.out_features, dtype=dtype), "b")
        self._out = Buffer(self.out_features, dtype)
        self._dZ = Buffer(self.out_features, dtype)
        self._dX = Buffer(self.in_features, dtype)
        self._X = self._A = None

    @property
    def dtype(self):
        return self.W.dtype

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    activation=self.activation, init=_init_config(self.init), alpha=self.alpha,
                    dtype=self.dtype.name)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        self._X = X
        activation, alpha = self.epilogue
        self._A = A = _backend.kernels.dense_forward(
            X, self.W.data, self.b.data, activation=activation, alpha=alpha,
            out=self._out.rows(X.shape[0]) if training else None)
        return A

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._A is None else self._A.shape, self.dtype)
        n = dA.shape[0]
        params = (self.W, self.b)
        accumulate, (dW, db) = gradient_outputs(params)
        activation, alpha = self.epilogue
        dX, _, _ = _backend.kernels.dense_backward(
            dA, self._X, self.W.data, self._A, activation=activation, alpha=alpha,
            dZ=self._dZ.rows(n), dW=dW, db=db, dX=self._dX.rows(n) if need_dX else None,
            need_dX=need_dX, accumulate=accumulate)
        gradients_written(params)
        return dX

    def _step_held(self):
        """What this layer's op in a compiled step is made of (fastnn._step: the op stays valid
        while each is the same object)."""
        W, b = self.W, self.b
        return (W._data, W._grad, b._data, b._grad, self._out._array, self._dZ._array,
                self._dX._array, self.epilogue, W._requires_grad, b._requires_grad)

    def _step_op(self, step, n, features, previous, need_dX):
        """(the step.DenseOp that does this layer's forward and backward on batches
        of n rows from `previous`, the op's output, the saved state it leaves here): forward
        and backward's arithmetic on forward and backward's arrays. previous is the output of
        the op before, None for the batch itself (given to the op at each run)."""
        activation, alpha = self.epilogue
        W, b = self.W, self.b
        out = self._out.rows(n)
        op = step.DenseOp(self, previous, out, self._dX.rows(n) if need_dX else None, W.data,
                          b.data, W._grad if W.requires_grad else None,
                          b._grad if b.requires_grad else None, self._dZ.rows(n),
                          ACTIVATIONS[activation], float(alpha))
        return op, out, self._leave(_X=previous, _A=out)

    def kink_pattern(self):
        return _kinks(self.epilogue[0], self._A)

    def __repr__(self):
        act = "" if self.activation == "identity" else f", {self.activation}"
        return f"Dense({self.in_features} -> {self.out_features}{act})"
