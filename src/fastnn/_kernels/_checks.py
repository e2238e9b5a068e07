"""Argument checks shared by the compiled kernels and their NumPy twins.

Both backends call these, so a kernel rejects or converts the same arguments the same way on both.
The rules:
- IN arrays of any real dtype or memory layout are converted to the kernel's dtype (the dtype of
  its parameter/first float argument), copying only when needed.
- OUT buffers are written in place, so they must already be C-contiguous, writeable and of the
  kernel's dtype and shape; otherwise TypeError/ValueError. `None` allocates a fresh buffer.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Activation codes shared with the compiled kernels (dense.pyx keeps the same numbering).
ACTIVATIONS = {"identity": 0, "relu": 1, "leaky_relu": 2, "elu": 3, "sigmoid": 4, "tanh": 5}
# Relative cost of one element of each activation, for the single-thread threshold.
ACTIVATION_COST = {0: 1, 1: 1, 2: 1, 3: 4, 4: 4, 5: 4}


def activation_code(kernel, activation, alpha):
    try:
        code = ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"{kernel}: unknown activation {activation!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}") from None
    alpha = float(alpha)
    if code == 2 and not alpha >= 0.0:
        raise ValueError(f"{kernel}: leaky_relu needs alpha >= 0, got {alpha}")
    if code == 3 and not alpha > 0.0:
        raise ValueError(f"{kernel}: elu needs alpha > 0, got {alpha}")
    return code, alpha


def float_dtype(kernel, name, array):
    """The dtype a kernel computes in, taken from one of its float arguments."""
    dtype = getattr(array, "dtype", None)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} must be a float32 or float64 array, got "
                        f"{type(array).__name__} of dtype {dtype}")
    return dtype


def as_input(kernel, name, x, dtype, ndim):
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{kernel}: {name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=dtype)


def as_output(kernel, name, out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{kernel}: {name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{kernel}: {name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{kernel}: {name} must be a writeable C-contiguous array")
    return out


def as_labels(kernel, y, n_samples, n_classes):
    """Integer class indices in [0, n_classes), one per sample, as an int64 array."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{kernel}: labels must have shape ({n_samples},), got {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.floor(y)):
            raise ValueError(f"{kernel}: labels must be integer class indices, got non-integer "
                             "values")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: labels must be integer class indices, got dtype {y.dtype}")
    if n_samples and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{kernel}: labels must lie in [0, {n_classes}), got values in "
                         f"[{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)
