"""Dense: the fully-connected layer with a fused activation."""

import numpy as np

from .. import _backend
from .._activations import CODES as ACTIVATIONS
from ..init import check_init, default_init, initialize
from ._base import (Buffer, Layer, as_dtype, bf16_compute, gradient_outputs, gradients_written,
                    _init_config, positive_config, register, renewed)
from .activations import Activation, _activation_alpha, _kinks


@register
class Dense(Layer):
    """Fully-connected layer with a fused activation: A = act(X @ W + b).

    W has shape (in_features, out_features), so that X @ W needs no transpose; b starts at zero.
    activation: "identity" (default), "relu", "leaky_relu" (alpha, default 0.01), "elu" (alpha,
    default 1.0), "sigmoid" or "tanh". init: "he" (default for the relu family), "xavier"
    (default otherwise), a float scale s for s * randn, or any name in fastnn.init.

    In a Sequential, an identity Dense followed by an activation layer (ReLU(), Tanh(), ...) runs
    that activation inside this layer's fused kernel: the model's forward gives it as
    `epilogue` and skips the activation layer (the layers themselves keep their settings).
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
        self.reset_parameters(dtype, np.random.default_rng(seed))

    def reset_parameters(self, dtype="float32", rng=None, init=None):
        """New W from `init` (default: this layer's) and zero b, in `dtype`."""
        dtype = as_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        shape = (self.in_features, self.out_features)
        init = self.init if init is None else init
        self.W = renewed(getattr(self, "W", None),
                         initialize(init, shape, rng, dtype, self._label()), "W", True)
        self.b = renewed(getattr(self, "b", None), np.zeros(self.out_features, dtype=dtype), "b")
        self._out = Buffer(self.out_features, dtype)
        self._dZ = Buffer(self.out_features, dtype)
        self._dX = Buffer(self.in_features, dtype)
        self._Xb = None  # the bf16-rounded input of a bf16 forward (made at the first)
        self._X = self._A = None
        self._bf16 = False  # whether the saved forward ran on bf16 operands
        self.epilogue = (self.activation, self.alpha)  # the activation the last forward ran

    @property
    def dtype(self):
        return self.W.dtype

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    activation=self.activation,
                    init=None if self.init_is_default else _init_config(self.init),
                    alpha=self.alpha,
                    dtype=self.dtype.name)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, X, training=False, epilogue=None):
        """act(X @ W + b) with this layer's activation, or (activation, alpha) `epilogue`'s."""
        X = self._check_input(X, self.dtype)
        self.epilogue = epilogue = (self.activation, self.alpha) if epilogue is None else epilogue
        activation, alpha = epilogue
        kernels, n = _backend.kernels, X.shape[0]
        W = self.W._data
        self._bf16 = bf16 = bf16_compute.get()
        if bf16:  # a bfloat16 Sequential: bf16 operands (its copy of W), bf16-valued output
            if training and self._Xb is None:
                self._Xb = Buffer(self.in_features, self.dtype)
            X = kernels.round_bfloat16(X, out=self._Xb.rows(n) if training else None)
            W = self.W._bf16
        self._X = X
        self._A = A = kernels.dense_forward(
            X, W, self.b._data, activation=activation, alpha=alpha,
            out=self._out.rows(n) if training else None, **_rounded(bf16))
        return A

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._A is None else self._A.shape, self.dtype)
        n = dA.shape[0]
        params = (self.W, self.b)
        accumulate, (dW, db) = gradient_outputs(params)
        activation, alpha = self.epilogue
        dX, _, _ = _backend.kernels.dense_backward(
            dA, self._X, self.W._bf16 if self._bf16 else self.W._data, self._A,
            activation=activation, alpha=alpha, dZ=self._dZ.rows(n), dW=dW, db=db,
            dX=self._dX.rows(n) if need_dX else None, need_dX=need_dX, accumulate=accumulate,
            **_rounded(self._bf16))
        gradients_written(params)
        return dX

    def _step_held(self):
        """What this layer's op in a compiled step is made of (fastnn._step: the op stays valid
        while each is the same object)."""
        W, b = self.W, self.b
        bf16 = bf16_compute.get()  # (set by the model while it builds and checks its plan)
        return (W._data, W._grad, b._data, b._grad, self._out._array, self._dZ._array,
                self._dX._array, self.activation, self.alpha, W._requires_grad,
                b._requires_grad, bf16, W._bf16 if bf16 else None,
                self._Xb._array if bf16 and self._Xb is not None else None)

    def _step_op(self, step, n, features, previous, need_dX, epilogue=None):
        """(the step.DenseOp that does this layer's forward and backward on batches
        of n rows from `previous`, the op's output, the saved state it leaves here): forward
        and backward's arithmetic on forward and backward's arrays. previous is the output of
        the op before, None for the batch itself (given to the op at each run). epilogue: as
        forward's. In a bfloat16 model (bf16_compute) the op multiplies as forward does: the
        input rounded into this layer's Xb buffer, the bf16 copy of W, rounded outputs."""
        epilogue = (self.activation, self.alpha) if epilogue is None else epilogue
        activation, alpha = epilogue
        W, b = self.W, self.b
        out = self._out.rows(n)
        bf16 = bf16_compute.get()
        if bf16 and self._Xb is None:
            self._Xb = Buffer(self.in_features, self.dtype)
        rounded = self._Xb.rows(n) if bf16 else None
        op = step.DenseOp(self, previous, out, self._dX.rows(n) if need_dX else None,
                          W._bf16 if bf16 else W._data, b._data,
                          W._grad if W.requires_grad else None,
                          b._grad if b.requires_grad else None, self._dZ.rows(n),
                          ACTIVATIONS[activation], float(alpha), W._data, rounded)
        return op, out, self._leave(_X=rounded if bf16 else previous, _A=out, epilogue=epilogue,
                                    _bf16=bf16)

    def kink_pattern(self):
        return _kinks(self.epilogue[0], self._A)

    def __repr__(self):
        act = "" if self.activation == "identity" else f", {self.activation}"
        return f"Dense({self.in_features} -> {self.out_features}{act})"


def _rounded(bf16):
    return {"round_bf16": True} if bf16 else {}


def fused_activations(layers):
    """{index of a Dense: (activation, alpha)} for each identity Dense followed by an activation
    layer: the model runs that activation in the Dense's kernel (its epilogue) and skips the
    activation layer. The layers themselves are left as they are (either can be used alone, or
    in another model, as what it is)."""
    return {i: (after.activation, after.alpha)
            for i, (before, after) in enumerate(zip(layers, layers[1:]))
            if type(before) is Dense and before.activation == "identity"
            and isinstance(after, Activation) and type(after).forward is Activation.forward
            and type(after).backward is Activation.backward}
