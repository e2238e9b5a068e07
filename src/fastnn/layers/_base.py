"""The layer protocol (Layer), Parameter, and the buffers and helpers layers share."""

import contextvars

import numpy as np

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


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
                 "_requires_grad", "_place", "_bf16", "_bf16_fresh")

    def __init__(self, data, name, is_weight=False, grad=None):
        self.name = name
        self._data = data
        self._grad = np.zeros_like(data) if grad is None else grad
        self.is_weight = is_weight
        self._grad_is_zero = grad is None
        self.replaced = False  # True once its layer holds another Parameter in its place
        self._requires_grad = True
        self._place = None  # its FlatPlace once a Sequential keeps it in a FlatStorage
        # A model computing in bfloat16 gives its parameters a bf16-valued copy (_bf16), the
        # GEMMs' operand; _bf16_fresh says it holds the current data: set only by the pass that
        # wrote both (an optimizer's fused update), cleared by any access through .data (the
        # caller may write through it) and by the next training forward that used it.
        self._bf16 = None
        self._bf16_fresh = False

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
        self._bf16_fresh = False
        return self._data

    @data.setter
    def data(self, value):
        value = np.asarray(value)
        if value.shape != self._data.shape:
            raise ValueError(f"Parameter {self.name}: data must keep its shape "
                             f"{self._data.shape}, got {value.shape} (a layer of another size "
                             "is a new layer)")
        self._bf16_fresh = False
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
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        return self._data.size

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
            old._bf16_fresh = False
            old.zero_grad()
            return old
        old.replaced = True
        old._data = old._data.view()  # another object: optimizers holding `old` look again
    return Parameter(data, name, is_weight=is_weight)


class FlatStorage:
    """One flat data array and one flat gradient array that a model's parameters are views of,
    one after another (Sequential's, made by fastnn._model_state.flatten_parameters)."""

    __slots__ = ("data", "grad")

    def __init__(self, data, grad):
        self.data, self.grad = data, grad


class FlatPlace:
    """Where a Parameter lies in a FlatStorage: elements [start, stop) of its arrays, and the
    views of them it was given (`data`, `grad`). It holds only while the Parameter's arrays are
    those very views (see flat_run)."""

    __slots__ = ("storage", "start", "stop", "data", "grad")

    def __init__(self, storage, start, stop, data, grad):
        self.storage, self.start, self.stop, self.data, self.grad = storage, start, stop, data, grad


def flat_run(params):
    """(storage, start, stop) when `params` (a non-empty list) make up elements [start, stop) of
    one FlatStorage in this order, each right after the one before and still holding the views
    its FlatPlace gave it; else None. An optimizer then updates them in one kernel call."""
    first = params[0]._place
    if first is None:
        return None
    storage, stop = first.storage, first.start
    for p in params:
        place = p._place
        if place is None or place.storage is not storage or place.start != stop \
                or p._data is not place.data or p._grad is not place.grad \
                or place.data.base is not storage.data or place.grad.base is not storage.grad:
            return None  # (the last two: copy.deepcopy copies the views apart from the storage)
        stop = place.stop
    return storage, first.start, stop


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
# True while a Sequential with compute_dtype="bfloat16" runs its layers' forwards: the layers
# with GEMMs take bf16 operands (fastnn._mixed).
bf16_compute = contextvars.ContextVar("fastnn_bf16_compute", default=False)


# The layer types the file format and the command line know, by class name: each built-in layer
# registers itself with @register (a subclass does not inherit the registration, so a user's
# subclass is not mistaken for the layer it extends).
LAYERS = {}


def positive_config(config, key, invalid):
    """config[key] as a positive int, or the error invalid() makes (declared_arrays' helper)."""
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(key, value, "a positive integer")
    return value


def register(cls):
    """Class decorator: record `cls` in LAYERS under its class name."""
    if LAYERS.get(cls.__name__, cls) is not cls:
        raise ValueError(f"a layer type named {cls.__name__!r} is registered already")
    LAYERS[cls.__name__] = cls
    return cls


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

    @classmethod
    def declared_arrays(cls, config, invalid):
        """([(name, shape)] of the parameters, [(name, shape)] of the buffers) that a layer of
        this type with this config() holds, from the config alone: the file format checks a file's
        arrays against it before reading them. `invalid(key, value, accepts)` makes the error for
        a config value it cannot use."""
        return [], []

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

    def _leave(self, **attributes):
        """Set the saved state a compiled-step op stands for (see _step_op below) and return it,
        for the model to put back when it switches to this op's plan again."""
        for name, value in attributes.items():
            setattr(self, name, value)
        return attributes

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


def _init_config(init):
    """`init` as a JSON value: a name or a float scale; None for a callable (the weights are
    saved, so the model does not need to draw them again)."""
    if isinstance(init, str) or init is None:
        return init
    return None if callable(init) else float(init)
