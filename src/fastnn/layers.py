"""Layers: small objects that own their parameters and buffers and call one kernel each.

The protocol (Sequential relies on nothing else):
    parameters()                      -> list of Parameter, weight before bias
    reset_parameters(dtype, rng)      (re)initialize parameters in the given dtype
    forward(X, training)              -> output (N, out_features); keeps what backward needs
    backward(dA, need_dX=True)        accumulates parameter gradients; returns dL/dX or None
Buffers are grown to the largest batch seen and reused through row views, so a training loop
allocates nothing per step once it has seen its batch size.
"""
import numpy as np

from . import _backend
from ._kernels._checks import ACTIVATIONS
from .init import check_init, default_init, initialize

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def as_dtype(dtype):
    key = np.dtype(dtype).name if dtype is not None else "float32"
    if key not in DTYPES:
        raise TypeError(f"fastnn computes in float32 or float64, got dtype {dtype!r}")
    return DTYPES[key]


class Parameter:
    """A learnable array `.data` with its gradient `.grad` (same shape and dtype).

    Write into `.data` in place to change the model. `backward` accumulates into `.grad`;
    `zero_grad` clears it (and lets the next backward write gradients instead of adding them).
    """

    __slots__ = ("name", "data", "grad", "_grad_is_zero")

    def __init__(self, data, name):
        self.name = name
        self.data = data
        self.grad = np.zeros_like(data)
        self._grad_is_zero = True

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad.fill(0)
        self._grad_is_zero = True

    def __repr__(self):
        return f"Parameter({self.name}, shape={self.shape}, dtype={self.dtype})"


class Buffer:
    """A (rows, cols) work array grown to the largest batch seen; `rows(n)` is a C-contiguous view."""

    __slots__ = ("cols", "dtype", "_array")

    def __init__(self, cols, dtype):
        self.cols = cols
        self.dtype = dtype
        self._array = np.empty((0, cols), dtype=dtype)

    def rows(self, n):
        if n > self._array.shape[0]:
            self._array = np.empty((n, self.cols), dtype=self.dtype)
        return self._array[:n]


class Layer:
    """Base class: a layer without parameters that passes shapes through."""

    in_features = None
    out_features = None
    name = None  # set by Sequential ("layer 2 (Dense 128 -> 10)"), used in error messages

    def parameters(self):
        return []

    def reset_parameters(self, dtype="float32", rng=None):
        pass

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def __call__(self, X, training=False):
        return self.forward(X, training=training)

    def _label(self):
        return self.name or repr(self)

    def _check_input(self, X, dtype):
        """X as a C-contiguous (N, in_features) array of `dtype`, or a clear error."""
        try:
            X = np.asarray(X)
        except Exception as error:  # ragged lists and such
            raise TypeError(f"{self._label()}: input must be an array of numbers: {error}") from None
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{self._label()}: input must hold real numbers, got dtype {X.dtype}")
        if X.ndim != 2 or (self.in_features is not None and X.shape[1] != self.in_features):
            expected = f"(N, {self.in_features})" if self.in_features is not None else "(N, D)"
            raise ValueError(f"{self._label()}: expected input of shape {expected}, got shape "
                             f"{X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{self._label()}: empty batch (input of shape {X.shape})")
        return np.ascontiguousarray(X, dtype=dtype)

    def _check_grad(self, dA, expected_shape, dtype):
        if expected_shape is None:
            raise RuntimeError(f"{self._label()}: backward called before forward")
        dA = np.asarray(dA)
        if dA.shape != expected_shape:
            raise ValueError(f"{self._label()}: expected a gradient of shape {expected_shape} "
                             f"(the last forward's output), got {dA.shape}")
        if dA.dtype.kind not in "fiub":
            raise TypeError(f"{self._label()}: gradient must hold real numbers, got dtype "
                            f"{dA.dtype}")
        return np.ascontiguousarray(dA, dtype=dtype)


class Dense(Layer):
    """Fully-connected layer with a fused activation: A = act(X @ W + b).

    W has shape (in_features, out_features), so that X @ W needs no transpose; b starts at zero.
    activation: "identity" (default), "relu", "leaky_relu" (alpha, default 0.01), "elu" (alpha,
    default 1.0), "sigmoid" or "tanh". init: "he" (default for the relu family), "xavier"
    (default otherwise) or a float scale s for s * randn.
    """

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
        self.alpha = float(DEFAULT_ALPHA.get(activation, 0.0) if alpha is None else alpha)
        self.init = default_init(activation) if init is None else init
        check_init(self.init)
        self.reset_parameters(dtype, np.random.default_rng(seed))

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        shape = (self.in_features, self.out_features)
        self.W = Parameter(initialize(self.init, shape, rng, dtype), "W")
        self.b = Parameter(np.zeros(self.out_features, dtype=dtype), "b")
        self._out = Buffer(self.out_features, dtype)
        self._dZ = Buffer(self.out_features, dtype)
        self._dX = Buffer(self.in_features, dtype)
        self._X = self._A = None

    @property
    def dtype(self):
        return self.W.dtype

    def parameters(self):
        return [self.W, self.b]

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        self._X = X
        self._A = _backend.kernels.dense_forward(
            X, self.W.data, self.b.data, activation=self.activation, alpha=self.alpha,
            out=self._out.rows(X.shape[0]))
        return self._A

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._A is None else self._A.shape, self.dtype)
        n = dA.shape[0]
        accumulate = not (self.W._grad_is_zero and self.b._grad_is_zero)
        dX, _, _ = _backend.kernels.dense_backward(
            dA, self._X, self.W.data, self._A, activation=self.activation, alpha=self.alpha,
            dZ=self._dZ.rows(n), dW=self.W.grad, db=self.b.grad,
            dX=self._dX.rows(n) if need_dX else None, need_dX=need_dX, accumulate=accumulate)
        self.W._grad_is_zero = self.b._grad_is_zero = False
        return dX

    def __repr__(self):
        act = "" if self.activation == "identity" else f", {self.activation}"
        return f"Dense({self.in_features} -> {self.out_features}{act})"
