"""Layers: small objects that own their parameters and buffers and call one kernel each.

The protocol (Sequential relies on nothing else):
    parameters()                      -> list of Parameter, weight before bias
    reset_parameters(dtype, rng)      (re)initialize parameters in the given dtype
    forward(X, training)              -> output (N, out_features); keeps what backward needs
    backward(dA, need_dX=True)        accumulates parameter gradients; returns dL/dX or None
    buffers()                         -> dict of non-learnable state arrays (BatchNorm's running
                                         statistics), saved by Sequential.state_dict()
    bind(index, seed)                 called by Sequential after reset_parameters with the layer's
                                         position and an integer seed, for layers that draw
                                         random numbers (Dropout)
    config()                          -> JSON-able dict of constructor arguments:
                                         type(layer)(**layer.config()) rebuilds an equivalent layer
                                         (an unnamed callable init is stored as None: the saved
                                         weights are what counts)
    get_extra_state() / set_extra_state(state)
                                      JSON-able non-array state that resuming a run needs
                                         (Dropout's seed, index and step); {} for most layers
Buffers are grown to the largest batch seen and reused through row views, so a training loop
allocates nothing per step once it has seen its batch size. That is for training-mode forwards
and backward only: an inference-mode forward (training=False) writes fresh arrays, so that
several threads can run inference on one layer at once (see Sequential).
"""
import contextvars
import numbers

import numpy as np

from . import _backend
from ._kernels._checks import ACTIVATIONS, MASK64, batchnorm_options, dropout_key
from ._validation import _is_bool, check_float
from .init import check_init, default_init, initialize

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def as_dtype(dtype):
    try:
        key = np.dtype(dtype).name if dtype is not None else "float32"
    except (TypeError, ValueError):
        key = None
    if key not in DTYPES:
        raise TypeError(f"fastnn computes in float32 or float64, got dtype {dtype!r}")
    return DTYPES[key]


class Parameter:
    """A learnable array `.data` with its gradient `.grad` (same shape and dtype).

    `.data` is the array the model computes with (in a Sequential, a view of the model's one
    flat parameter array, which optimizers update in one pass): assigning to it
    (`p.data = values`) copies the values into that array, which keeps its place, so that the
    model and any optimizer keep working on the same numbers. `backward` accumulates into `.grad`;
    `zero_grad` clears it (and lets the next backward write gradients instead of adding them).
    `is_weight` marks connection weights, the parameters that weight penalties (L2, L1) and
    max-norm constraints apply to; biases and normalization parameters are not weights.

    zero_grad() only marks the gradient as zero, as PyTorch's set_to_none does: the array is
    filled with zeros when `.grad` is next read, and a backward that finds it marked overwrites it
    without reading it, so a training step spends no pass over memory on clearing gradients. An
    array taken from `.grad` before zero_grad() keeps its old values. `grad=` makes an existing
    array the gradient, as it is (not marked zero).

    `requires_grad = False` freezes the parameter (transfer learning: keep the feature layers,
    retrain the top; `layer.freeze()` sets it for a layer's parameters): optimizers, penalties
    and constraints leave it alone (no update, no optimizer state), and backward does not
    compute gradients for the layers below the first one that has a trainable parameter. A
    frozen parameter's `.grad` is not meaningful.
    """

    __slots__ = ("name", "_data", "_grad", "is_weight", "_grad_is_zero", "replaced",
                 "_requires_grad")

    def __init__(self, data, name, is_weight=False, grad=None):
        self.name = name
        self._data = data
        self._grad = np.zeros_like(data) if grad is None else grad
        self.is_weight = is_weight
        self._grad_is_zero = grad is None
        self.replaced = False  # True once its layer holds another Parameter in its place
        self._requires_grad = True

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Parameter {self.name}: requires_grad must be True or False, got "
                            f"{value!r}")
        self._requires_grad = bool(value)

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        value = np.asarray(value)
        if value.shape != self._data.shape:
            raise ValueError(f"Parameter {self.name}: data must keep its shape "
                             f"{self._data.shape}, got {value.shape} (a layer of another size "
                             "is a new layer)")
        self._data[...] = value

    @property
    def grad(self):
        if self._grad_is_zero:
            self._grad.fill(0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is self._grad:  # `p.grad += g` has already updated the array in place
            return
        value = np.asarray(value)
        if value.shape != self._grad.shape:
            raise ValueError(f"Parameter {self.name}: grad must have shape {self._grad.shape}, "
                             f"got {value.shape}")
        self._grad[...] = value
        self._grad_is_zero = False

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
        self._grad_is_zero = True

    def __repr__(self):
        frozen = "" if self._requires_grad else ", frozen"
        return f"Parameter({self.name}, shape={self.shape}, dtype={self.dtype}{frozen})"


def renewed(old, data, name, is_weight=False):
    """The Parameter a layer's reset_parameters keeps: `old` with `data` copied into it when
    the shape and dtype allow (so that optimizers built on it keep updating the layer), else a
    new Parameter, and `old` is marked replaced (an optimizer holding it refuses to step)."""
    if isinstance(old, Parameter):
        if old.shape == data.shape and old.dtype == data.dtype:
            old._data[...] = data
            old.zero_grad()
            return old
        old.replaced = True
        old._data = old._data.view()  # another object: optimizers holding `old` look again
    return Parameter(data, name, is_weight=is_weight)


def flat_view(arrays):
    """The flat array that `arrays` (C-contiguous views of one 1-D array, of one dtype, one
    after another) together make up, or None if they are not laid out so."""
    first = arrays[0]
    base = first.base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    itemsize = base.itemsize
    start, rest = divmod(first.ctypes.data - base.ctypes.data, itemsize)
    end = start
    for a in arrays:
        if (a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous
                or a.ctypes.data != base.ctypes.data + end * itemsize):
            return None
        end += a.size
    return None if rest or start < 0 or end > base.size else base[start:end]


def gradient_outputs(params):
    """(accumulate, arrays) for a backward kernel that writes the gradients of `params`: it may
    overwrite the arrays only when every one of them is marked zero, else it must add to them
    (and any marked zero are cleared first)."""
    if all(p._grad_is_zero for p in params):
        return False, [p._grad for p in params]
    return True, [p.grad for p in params]


def first_trainable(layers):
    """The index of the first layer with a trainable parameter (len(layers) if none): backward
    need not go below it."""
    for i, layer in enumerate(layers):
        if any(p._requires_grad for p in layer.parameters()):
            return i
    return len(layers)


def gradients_written(params):
    for p in params:
        p._grad_is_zero = False


class Buffer:
    """A (rows, cols) work array grown to the largest batch seen; `rows(n)` is a C-contiguous
    view of its first n rows."""

    __slots__ = ("cols", "dtype", "_array")

    def __init__(self, cols, dtype):
        self.cols = cols
        self.dtype = dtype
        self._array = np.empty((0, cols), dtype=dtype)

    def rows(self, n):
        if n > self._array.shape[0]:
            self._array = np.empty((n, self.cols), dtype=self.dtype)
        return self._array[:n]


def all_finite(X):
    """Whether X holds no NaN or inf: one cheap reduction, and a full check only when the sum
    overflows or is NaN."""
    return bool(np.isfinite(np.add.reduce(X, axis=None)) or np.isfinite(X).all())


# True while a Sequential runs its layers: it checked the batch once, and what flows between its
# layers is their own output, so the layers' forwards skip the scan for NaN/inf.
input_checked = contextvars.ContextVar("fastnn_input_checked", default=False)


class Layer:
    """Base class: a layer without parameters that passes shapes through."""

    in_features = None
    out_features = None
    name = None  # set by Sequential ("layer 2 (Dense 128 -> 10)"), used in error messages

    def parameters(self):
        return []

    def buffers(self):
        return {}

    def reset_parameters(self, dtype="float32", rng=None):
        pass

    def bind(self, index, seed):
        pass

    def config(self):
        raise NotImplementedError(f"{type(self).__name__} does not define config()")

    def get_extra_state(self):
        return {}

    def set_extra_state(self, state):
        pass

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def freeze(self):
        """Freeze every parameter of the layer (requires_grad = False); returns the layer."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self):
        """Make every parameter of the layer trainable again; returns the layer."""
        for p in self.parameters():
            p.requires_grad = True
        return self

    @property
    def frozen(self):
        """Whether the layer has parameters and none of them is trainable."""
        params = self.parameters()
        return bool(params) and not any(p.requires_grad for p in params)

    def __call__(self, X, training=False):
        return self.forward(X, training=training)

    def _label(self):
        return self.name or repr(self)

    def kink_pattern(self):
        """Which side of its kinks (relu's 0, maxout's winning piece) the last forward was on, or
        None for a smooth layer. gradcheck compares it before and after a perturbation."""
        return None

    def _check_input(self, X, dtype, finite=True):
        """X as a C-contiguous (N, in_features) array of `dtype`, or a clear error; finite=False
        leaves the NaN/inf check to the caller."""
        try:
            X = np.asarray(X)
        except Exception as error:  # ragged lists and such
            raise TypeError(f"{self._label()}: input must be an array of numbers: "
                            f"{error}") from None
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{self._label()}: input must hold real numbers, got dtype {X.dtype}")
        if X.ndim != 2 or (self.in_features is not None and X.shape[1] != self.in_features):
            expected = f"(N, {self.in_features})" if self.in_features is not None else "(N, D)"
            raise ValueError(f"{self._label()}: expected input of shape {expected}, got shape "
                             f"{X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{self._label()}: empty batch (input of shape {X.shape})")
        X = np.ascontiguousarray(X, dtype=dtype)
        if finite and not input_checked.get() and not all_finite(X):
            raise ValueError(f"{self._label()}: input contains NaN or inf")
        return X

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
    (default otherwise), a float scale s for s * randn, or any name in fastnn.init.

    In a Sequential, an identity Dense followed by an activation layer (ReLU(), Tanh(), ...) runs
    the activation inside this layer's fused kernel (`epilogue`); the activation layer then
    passes values through.
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

    def kink_pattern(self):
        return _kinks(self.epilogue[0], self._A)

    def __repr__(self):
        act = "" if self.activation == "identity" else f", {self.activation}"
        return f"Dense({self.in_features} -> {self.out_features}{act})"


def _init_config(init):
    """`init` as a JSON value: a name or a float scale; None for a callable (the weights are
    saved, so the model does not need to draw them again)."""
    if isinstance(init, str) or init is None:
        return init
    return None if callable(init) else float(init)


def _kinks(activation, A):
    # elu's derivative jumps at 0 too (from alpha to 1) unless alpha = 1; treat it as a kink.
    return None if A is None or activation not in ("relu", "leaky_relu", "elu") else A > 0


class Activation(Layer):
    """An elementwise activation as a layer of its own: A = act(X). Any shape (N, D) passes.

    Prefer the fused form Dense(..., activation=...); a Sequential fuses an identity Dense
    followed by an activation layer by itself (the layer then passes values through).
    """

    activation = "identity"

    def __init__(self, alpha=None, dtype="float32"):
        self.alpha = _activation_alpha(type(self).__name__, self.activation, alpha)
        self.fused = False
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        self.dtype = as_dtype(dtype)
        self._out = self._dX = None
        self._A = None

    def config(self):
        return dict(alpha=self.alpha, dtype=self.dtype.name)

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        if self.fused:
            self._A = X
            return X
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
        if self.fused:
            return dA
        self._size_buffers(dA.shape[1])  # (an inference forward does not make them)
        dX, _ = _backend.kernels.bias_act_backward(
            dA, self._A, activation=self.activation, alpha=self.alpha,
            dZ=self._dX.rows(dA.shape[0]))
        return dX

    def kink_pattern(self):
        return None if self.fused else _kinks(self.activation, self._A)

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
                             "takes no alpha (only leaky_relu and elu do)")
        return 0.0
    if alpha is None:
        return float(DEFAULT_ALPHA[activation])
    if activation == "leaky_relu":
        return check_float(f"{where}: alpha (the negative slope)", alpha, 0.0)
    return check_float(f"{where}: alpha", alpha, 0.0, low_open=True)


class Identity(Activation):
    activation = "identity"


class ReLU(Activation):
    """max(0, x)."""
    activation = "relu"


class LeakyReLU(Activation):
    """x for x > 0, alpha * x otherwise (alpha: the negative slope, default 0.01)."""
    activation = "leaky_relu"


class ELU(Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (default alpha 1.0)."""
    activation = "elu"


class Sigmoid(Activation):
    """1 / (1 + exp(-x))."""
    activation = "sigmoid"


class Tanh(Activation):
    """tanh(x)."""
    activation = "tanh"


def stream_seed(seed):
    """The integer seed of a counter-based random stream: `seed` itself (a non-negative integer,
    taken mod 2**64), or fresh entropy from the operating system when it is None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) & MASK64
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed) & MASK64


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

    def __repr__(self):
        return f"Dropout(p={self.p:g})"


class BatchNorm(Layer):
    """Batch normalization of (N, D) activations, with torch.nn.BatchNorm1d's semantics.

    Training mode: out = (X - mean) / sqrt(var + eps) * gamma + beta with the batch mean and the
    biased batch variance, and the running statistics are updated as
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * N / (N - 1)
    (the unbiased variance). Inference mode normalizes with running_mean and running_var.
    momentum weights the *new* batch statistic, as in PyTorch; the CS231n notes and Keras call
    the weight of the *old* value momentum (their 0.9 is our 0.1). gamma (ones) and beta (zeros)
    are the learnable parameters; running_mean (zeros) and running_var (ones) are buffers, saved
    by Sequential.state_dict(). A batch of one in training mode is an error (no variance to
    estimate); constant features are fine (eps keeps 1/sqrt(var + eps) finite).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype="float32"):
        if (isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer))
                or num_features < 1):
            raise ValueError(f"BatchNorm: num_features must be a positive integer, got "
                             f"{num_features!r}")
        momentum = check_float("BatchNorm: momentum", momentum, 0.0, 1.0)
        eps = check_float("BatchNorm: eps", eps, 0.0, low_open=True)
        self.momentum, self.eps = batchnorm_options("BatchNorm", 2, False, momentum, eps)
        self.in_features = self.out_features = int(num_features)
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        d = self.in_features
        self.gamma = renewed(getattr(self, "gamma", None), np.ones(d, dtype=dtype), "gamma")
        self.beta = renewed(getattr(self, "beta", None), np.zeros(d, dtype=dtype), "beta")
        self.running_mean = np.zeros(d, dtype=dtype)
        self.running_var = np.ones(d, dtype=dtype)
        self._mean = np.empty(d, dtype=dtype)  # statistics of a training forward, for backward
        self._inv_std = np.empty(d, dtype=dtype)
        self._stats = (self._mean, self._inv_std)  # those of the last forward
        self._out = Buffer(d, dtype)
        self._dX = Buffer(d, dtype)
        self._X = self._training = None

    @property
    def dtype(self):
        return self.gamma.dtype

    def config(self):
        return dict(num_features=self.in_features, eps=self.eps, momentum=self.momentum,
                    dtype=self.dtype.name)

    def parameters(self):
        return [self.gamma, self.beta]

    def buffers(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        training = bool(training)
        if training and X.shape[0] == 1:
            raise ValueError(f"{self._label()}: training mode needs more than one sample per "
                             "batch to compute batch statistics, got a batch of 1 (use "
                             "training=False / model.eval() for single samples)")
        if training:
            out, stats = self._out.rows(X.shape[0]), (self._mean, self._inv_std)
        else:
            out, stats = None, (np.empty_like(self._mean), np.empty_like(self._inv_std))
        out = _backend.kernels.batchnorm_forward(
            X, self.gamma.data, self.beta.data, self.running_mean, self.running_var,
            training=training, momentum=self.momentum, eps=self.eps, out=out, mean=stats[0],
            inv_std=stats[1])
        self._X, self._training, self._stats = X, training, stats
        return out

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._X is None else self._X.shape, self.dtype)
        params = (self.gamma, self.beta)
        accumulate, (dgamma, dbeta) = gradient_outputs(params)
        dX, _, _ = _backend.kernels.batchnorm_backward(
            dA, self._X, self.gamma.data, *self._stats, training=self._training,
            dX=self._dX.rows(dA.shape[0]), dgamma=dgamma, dbeta=dbeta, accumulate=accumulate)
        gradients_written(params)
        return dX if need_dX else None

    def __repr__(self):
        return f"BatchNorm({self.in_features})"


class PReLU(Layer):
    """Parametric ReLU: x for x > 0, a_j * x otherwise, with a learnable slope a_j per feature
    (initialized to `init`, 0.25 as in PyTorch). Slopes are not weights: no weight decay."""

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


class Maxout(Layer):
    """Maxout units: out_j = max over k pieces of (X @ W_k + b_k)_j (Goodfellow et al.).

    W has shape (in_features, out_features * pieces): the pieces of unit j are the columns
    j * pieces ... j * pieces + pieces - 1. Backward routes each unit's gradient to its winning
    piece. init as for Dense (default "xavier"; fan_in = in_features).
    """

    def __init__(self, in_features, out_features, pieces=2, init="xavier", dtype="float32",
                 seed=None):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Maxout: {name} must be a positive integer, got {value!r}")
        if isinstance(pieces, bool) or not isinstance(pieces, (int, np.integer)) or not (
                2 <= pieces <= 255):
            raise ValueError(f"Maxout: pieces must be an integer in [2, 255], got {pieces!r}")
        self.in_features, self.out_features, self.pieces = int(in_features), int(out_features), \
            int(pieces)
        self.init = "xavier" if init is None else init
        check_init(self.init)
        self.reset_parameters(dtype, np.random.default_rng(seed))

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        width = self.out_features * self.pieces
        self.W = renewed(getattr(self, "W", None), initialize(
            self.init, (self.in_features, width), rng, dtype, self._label()), "W", True)
        self.b = renewed(getattr(self, "b", None), np.zeros(width, dtype=dtype), "b")
        self._Z, self._dZ = Buffer(width, dtype), Buffer(width, dtype)
        self._out, self._dX = Buffer(self.out_features, dtype), Buffer(self.in_features, dtype)
        self._argmax = Buffer(self.out_features, np.uint8)
        self._X = self._winners = None

    @property
    def dtype(self):
        return self.W.dtype

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    pieces=self.pieces, init=_init_config(self.init), dtype=self.dtype.name)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        n = X.shape[0]
        self._X = X
        if training:
            buffers = dict(Z=self._Z.rows(n), out=self._out.rows(n), argmax=self._argmax.rows(n))
        else:
            buffers = {}
        out, self._winners = _backend.kernels.maxout_forward(
            X, self.W.data, self.b.data, pieces=self.pieces, **buffers)
        return out

    def backward(self, dA, need_dX=True):
        expected = None if self._X is None else (self._X.shape[0], self.out_features)
        dA = self._check_grad(dA, expected, self.dtype)
        n = dA.shape[0]
        params = (self.W, self.b)
        accumulate, (dW, db) = gradient_outputs(params)
        dX, _, _ = _backend.kernels.maxout_backward(
            dA, self._X, self.W.data, self._winners, pieces=self.pieces, dZ=self._dZ.rows(n),
            dW=dW, db=db, dX=self._dX.rows(n) if need_dX else None, need_dX=need_dX,
            accumulate=accumulate)
        gradients_written(params)
        return dX

    def kink_pattern(self):
        return None if self._winners is None else self._winners.copy()

    def __repr__(self):
        return f"Maxout({self.in_features} -> {self.out_features}, pieces={self.pieces})"
