"""Elementwise activations as layers of their own (and PReLU, with learnable slopes)."""

import numbers

import numpy as np

from .. import _backend
from .._activations import CODES, DEFAULT_ALPHA, SPECS
from .._validation import _is_bool, check_float
from ._base import (LAYERS, Buffer, Layer, as_dtype, gradient_outputs, gradients_written,
                    positive_config, register, renewed)



def _kinks(activation, A):
    return None if A is None or not SPECS[activation].kinks else A > 0


@register
class Activation(Layer):
    """An elementwise activation as a layer of its own: A = act(X). Any shape (N, D) passes.

    Prefer the fused form Dense(..., activation=...); a Sequential runs an activation layer that
    follows an identity Dense inside the Dense's kernel by itself (see Dense).
    """

    activation = "identity"

    def __init__(self, alpha=None, dtype="float32"):
        self.alpha = _activation_alpha(type(self).__name__, self.activation, alpha)
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        self.dtype = as_dtype(dtype)
        self._out = self._dX = None
        self._A = None

    def config(self):
        return dict(alpha=self.alpha, dtype=self.dtype.name)

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        n, d = X.shape
        if training:
            self._size_buffers(d)
        self._A = A = _backend.kernels.bias_act_forward(
            X, None, activation=self.activation, alpha=self.alpha,
            out=self._out.rows(n) if training else None)
        return A

    def _size_buffers(self, d):
        """Output and gradient buffers for inputs of d features (made at the first forward)."""
        if self._out is None or self._out.cols != d:
            self._out, self._dX = Buffer(d, self.dtype), Buffer(d, self.dtype)

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._A is None else self._A.shape, self.dtype)
        if not need_dX:
            return None
        self._size_buffers(dA.shape[1])  # (an inference forward does not make them)
        dX, _ = _backend.kernels.bias_act_backward(
            dA, self._A, activation=self.activation, alpha=self.alpha,
            dZ=self._dX.rows(dA.shape[0]))
        return dX

    def _step_held(self):
        """See Dense._step_held."""
        out = self._out
        return (self.activation, self.alpha, out and out._array,
                out and self._dX._array)

    def _step_op(self, step, n, features, previous, need_dX):
        """See Dense._step_op."""
        self._size_buffers(features)
        out = self._out.rows(n)
        op = step.ActivationOp(self, previous, out, self._dX.rows(n) if need_dX else None,
                               CODES[self.activation], float(self.alpha))
        return op, out, self._leave(_A=out)

    def kink_pattern(self):
        return _kinks(self.activation, self._A)

    def __repr__(self):
        alpha = f"alpha={self.alpha:g}" if self.activation in DEFAULT_ALPHA else ""
        return f"{type(self).__name__}({alpha})"


def _activation_alpha(where, activation, alpha):
    """The activation's alpha as a float: its default for None; refused for an activation that
    has none (0.0 is accepted there: it is what config() records for them)."""
    if activation not in DEFAULT_ALPHA:
        if alpha is not None and (_is_bool(alpha) or not isinstance(alpha, numbers.Real)
                                  or alpha != 0):
            raise ValueError(f"{where}: alpha {alpha!r} given, but the {activation} activation "
                             f"takes no alpha (only {' and '.join(DEFAULT_ALPHA)} do)")
        return 0.0
    if alpha is None:
        return float(DEFAULT_ALPHA[activation])
    spec = SPECS[activation]
    bound, open_ = spec.alpha_min
    return check_float(f"{where}: {spec.alpha_name}", alpha, bound, low_open=open_)


@register
class Identity(Activation):
    activation = "identity"


@register
class ReLU(Activation):
    """max(0, x)."""
    activation = "relu"


@register
class LeakyReLU(Activation):
    """x for x > 0, alpha * x otherwise (alpha: the negative slope, default 0.01)."""
    activation = "leaky_relu"


@register
class ELU(Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (default alpha 1.0)."""
    activation = "elu"


@register
class Sigmoid(Activation):
    """1 / (1 + exp(-x))."""
    activation = "sigmoid"


@register
class Tanh(Activation):
    """tanh(x)."""
    activation = "tanh"


@register
class PReLU(Layer):
    """Parametric ReLU: x for x > 0, a_j * x otherwise, with a learnable slope a_j per feature
    (initialized to `init`, 0.25 as in PyTorch). Slopes are not weights: no weight decay."""

    @classmethod
    def declared_arrays(cls, config, invalid):
        return [("a", (positive_config(config, "num_features", invalid),))], []

    def __init__(self, num_features, init=0.25, dtype="float32"):
        if (isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer))
                or num_features < 1):
            raise ValueError(f"PReLU: num_features must be a positive integer, got "
                             f"{num_features!r}")
        self.in_features = self.out_features = int(num_features)
        self.init = check_float("PReLU: init (the initial slope)", init)
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        self.a = renewed(getattr(self, "a", None),
                         np.full(self.in_features, self.init, dtype=dtype), "a")
        self._out = Buffer(self.in_features, dtype)
        self._dX = Buffer(self.in_features, dtype)
        self._X = None

    @property
    def dtype(self):
        return self.a.dtype

    def config(self):
        return dict(num_features=self.in_features, init=self.init, dtype=self.dtype.name)

    def parameters(self):
        return [self.a]

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        self._X = X
        return _backend.kernels.prelu_forward(
            X, self.a.data, out=self._out.rows(X.shape[0]) if training else None)

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._X is None else self._X.shape, self.dtype)
        accumulate, (da,) = gradient_outputs((self.a,))
        dX, _ = _backend.kernels.prelu_backward(
            dA, self._X, self.a.data, dX=self._dX.rows(dA.shape[0]), da=da,
            accumulate=accumulate)
        gradients_written((self.a,))
        return dX if need_dX else None

    def kink_pattern(self):
        return None if self._X is None else self._X > 0

    def __repr__(self):
        return f"PReLU({self.in_features})"


def activation_layers():
    """{activation name: its layer class} of the registered activation layers."""
    return {cls.activation: cls for cls in LAYERS.values()
            if issubclass(cls, Activation) and cls is not Activation}
