"""Argument checks shared by the compiled kernels and their NumPy twins.

Both backends call these, so a kernel rejects or converts the same arguments the same way on both:
the checks of each kernel are one function here (see the end of the file), called by both.
The rules:
- IN arrays of any real dtype or memory layout are converted to the kernel's dtype (the dtype of
  its parameter/first float argument), copying only when needed.
- OUT buffers are written in place, so they must already be C-contiguous, writeable and of the
  kernel's dtype and shape; otherwise TypeError/ValueError. `None` allocates a fresh buffer.
"""
import numpy as np

from .._activations import CODES, SPECS, TABLE
from .._validation import as_binary_labels, as_labels

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ACTIVATIONS = CODES
# Relative cost of one element of each activation, for the single-thread threshold.
ACTIVATION_COST = {spec.code: spec.cost for spec in TABLE}


def activation_code(kernel, activation, alpha):
    try:
        code = ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"{kernel}: unknown activation {activation!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}") from None
    alpha = hyperparameters(kernel, alpha=alpha)["alpha"]
    if SPECS[activation].alpha_min is not None:
        bound, open_ = SPECS[activation].alpha_min
        if not (alpha > bound if open_ else alpha >= bound):
            raise ValueError(f"{kernel}: {activation} needs alpha {'>' if open_ else '>='} "
                             f"{bound:g}, got {alpha}")
    return code, alpha


def float_dtype(kernel, name, array):
    """The dtype a kernel computes in, taken from one of its float arguments."""
    dtype = getattr(array, "dtype", None)
    if not isinstance(array, np.ndarray) or dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} must be a float32 or float64 array, got "
                        f"{type(array).__name__} of dtype {dtype}")
    return dtype


def as_input(kernel, name, x, dtype, ndim):
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{kernel}: {name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    return np.asarray(x, dtype=dtype, order="C")  # unlike ascontiguousarray, keeps 0-d as 0-d


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


def as_vector(kernel, name, v, dtype, size):
    """A per-feature IN vector of shape (size,), converted to `dtype` like as_input."""
    v = as_input(kernel, name, v, dtype, 1)
    if v.shape[0] != size:
        raise ValueError(f"{kernel}: {name} must have shape ({size},), got {v.shape}")
    return v


def as_gradient(kernel, name, out, shape, dtype, accumulate):
    """An OUT gradient buffer that `accumulate` adds to: a missing one starts at zero."""
    if out is None and accumulate:
        return np.zeros(shape, dtype=dtype)
    return as_output(kernel, name, out, shape, dtype)


def as_piece_indices(kernel, argmax, pieces):
    """Maxout's winning pieces as uint8, rejecting values outside [0, pieces) before the cast
    could wrap them."""
    argmax = np.asarray(argmax)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: argmax must hold integers, got dtype {argmax.dtype}")
    if argmax.size and (argmax.min() < 0 or argmax.max() >= pieces):
        raise ValueError(f"{kernel}: argmax holds a piece outside [0, {pieces})")
    return argmax


def hyperparameters(kernel, **values):
    """Optimizer hyperparameters as Python floats; anything but a real number is a TypeError."""
    for name, value in values.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                         np.floating)):
            raise TypeError(f"{kernel}: {name} must be a real number, got {value!r}")
        values[name] = float(value)
    if "step" in values and not values["step"] >= 1:
        raise ValueError(f"{kernel}: step counts updates from 1, got {values['step']!r}")
    return values


def as_binary_scores(kernel, scores):
    """Scores of a binary loss: (N,) or (N, 1), float32/float64; returns (flat scores, shape)."""
    dtype = float_dtype(kernel, "scores", scores)
    scores = np.asarray(scores)
    if scores.ndim not in (1, 2) or (scores.ndim == 2 and scores.shape[1] != 1):
        raise ValueError(f"{kernel}: scores must have shape (N,) or (N, 1), got {scores.shape}")
    if scores.shape[0] == 0:
        raise ValueError(f"{kernel}: empty batch (scores has shape {scores.shape})")
    return np.ascontiguousarray(scores.reshape(-1), dtype=dtype), scores.shape


def maxout_pieces(kernel, pieces, width):
    """The number of maxout units, checking that `pieces` (2..255) divides the width of W."""
    if isinstance(pieces, bool) or not isinstance(pieces, (int, np.integer)) or not 2 <= pieces <= 255:
        raise ValueError(f"{kernel}: pieces must be an integer in [2, 255], got {pieces!r}")
    if width % pieces:
        raise ValueError(f"{kernel}: W has {width} columns, not a multiple of pieces={pieces}")
    return width // pieces


# ---- Each kernel's checks, written once (here for dense, loss and units; the others' in
# _NAME_checks.py beside their kernel): the compiled wrapper and its NumPy twin both begin by
# calling `KERNEL_args` (or, for kernels that share their checks, the shared function with the
# kernel's name), which returns the converted arguments and the values derived from them that the
# kernel needs. The one OUT buffer checked later, dX (only when need_dX), is checked in
# weight_gradients (gemm.pyx, gemm_numpy.py), after dW is written.

# dense

def bias_vector(kernel, b, m, dtype):
    """A bias b of shape (m,) converted to dtype; None (no bias) stays None."""
    if b is None:
        return None
    b = as_input(kernel, "b", b, dtype, 1)
    if b.shape[0] != m:
        raise ValueError(f"{kernel}: b must have shape ({m},), got {b.shape}")
    return b


def bf16_rounding(kernel, round_bf16, dtype):
    """Checks the round_bf16 option of a dense kernel: a bool, True only in float32 (bfloat16
    rounding emulates bfloat16 arithmetic on float32 arrays; float64 would be silently
    meaningless)."""
    if not isinstance(round_bf16, (bool, np.bool_)):
        raise TypeError(f"{kernel}: round_bf16 must be True or False, got {round_bf16!r}")
    if round_bf16 and dtype != np.float32:
        raise ValueError(f"{kernel}: round_bf16=True needs float32 arrays, got {dtype}")


def bias_act_forward_args(Z, b, activation, alpha, out, round_bf16=False):
    """(code, alpha, Z, b, out) of bias_act_forward: the activation code and alpha (see
    activation_code), Z (N, M) in its own float dtype, b (M,) or None, out (N, M); round_bf16
    only with float32."""
    kernel = "bias_act_forward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "Z", Z)
    bf16_rounding(kernel, round_bf16, dtype)
    Z = as_input(kernel, "Z", Z, dtype, 2)
    n, m = Z.shape
    out = as_output(kernel, "out", out, (n, m), dtype)
    return code, alpha, Z, bias_vector(kernel, b, m, dtype), out


def bias_act_backward_args(dA, A, activation, alpha, dZ, db, round_bf16=False):
    """(code, alpha, dA, A, dZ, db) of bias_act_backward, converted to A's dtype; db may be None
    (no bias gradient); round_bf16 only with float32."""
    kernel = "bias_act_backward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "A", A)
    bf16_rounding(kernel, round_bf16, dtype)
    A = as_input(kernel, "A", A, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    if dA.shape != A.shape:
        raise ValueError(f"{kernel}: dA must have shape {A.shape}, got {dA.shape}")
    dZ = as_output(kernel, "dZ", dZ, A.shape, dtype)
    if db is not None:
        db = as_output(kernel, "db", db, (A.shape[1],), dtype)
    return code, alpha, dA, A, dZ, db


def dense_forward_args(X, W, b, activation, alpha, out, round_bf16=False):
    """(code, alpha, X, W, b, out) of dense_forward, converted to W's dtype; b (M,) or None;
    round_bf16 only with float32."""
    kernel = "dense_forward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "W", W)
    bf16_rounding(kernel, round_bf16, dtype)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    n, (k, m) = X.shape[0], W.shape
    if X.shape[1] != k:
        raise ValueError(f"{kernel}: X must have shape (N, {k}), got {X.shape}")
    b = bias_vector(kernel, b, m, dtype)
    return code, alpha, X, W, b, as_output(kernel, "out", out, (n, m), dtype)


def dense_backward_args(dA, X, W, A, activation, alpha, dZ, dW, db, accumulate,
                        round_bf16=False):
    """(code, alpha, dA, X, W, A, dZ, dW, db) of dense_backward, converted to W's dtype; a
    missing db starts at zero; round_bf16 only with float32. dX is checked by the kernel, only
    when it is needed."""
    kernel = "dense_backward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "W", W)
    bf16_rounding(kernel, round_bf16, dtype)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    A = as_input(kernel, "A", A, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    n, (k, m) = X.shape[0], W.shape
    if X.shape[1] != k:
        raise ValueError(f"{kernel}: X must have shape (N, {k}), got {X.shape}")
    if A.shape != (n, m):
        raise ValueError(f"{kernel}: A must have shape {(n, m)}, got {A.shape}")
    if dA.shape != (n, m):
        raise ValueError(f"{kernel}: dA must have shape {(n, m)}, got {dA.shape}")
    dZ = as_output(kernel, "dZ", dZ, (n, m), dtype)
    if db is None:
        db = np.zeros(m, dtype=dtype)
    else:
        db = as_output(kernel, "db", db, (m,), dtype)
    dW = as_gradient(kernel, "dW", dW, (k, m), dtype, accumulate)
    return code, alpha, dA, X, W, A, dZ, dW, db


# loss

def class_scores_args(kernel, scores, y, dscores):
    """(scores, y, dscores) of a multiclass loss: scores (N, C), N > 0, in their own float dtype;
    y as int64 class indices in [0, C); dscores (N, C)."""
    dtype = float_dtype(kernel, "scores", scores)
    scores = as_input(kernel, "scores", scores, dtype, 2)
    n, c = scores.shape
    if n == 0:
        raise ValueError(f"{kernel}: empty batch (scores has shape {scores.shape})")
    y = as_labels(kernel, y, n, c)
    return scores, y, as_output(kernel, "dscores", dscores, (n, c), dtype)


def binary_scores_args(kernel, scores, y, dscores, negative):
    """(s, t, dscores) of a binary loss: the scores flattened to (N,), the labels as float64
    targets in {negative, 1} (see as_binary_labels), dscores shaped like scores."""
    s, shape = as_binary_scores(kernel, scores)
    t = as_binary_labels(kernel, y, s.shape[0], negative)
    return s, t, as_output(kernel, "dscores", dscores, shape, s.dtype)


def mse_args(scores, y, dscores):
    """(scores, y, dscores) of mse: C-contiguous scores of any shape and size > 0 in their own
    float dtype, targets y converted to it and of the same shape, dscores of that shape."""
    kernel = "mse"
    dtype = float_dtype(kernel, "scores", scores)
    scores = np.asarray(scores, order="C")
    if scores.size == 0:
        raise ValueError(f"{kernel}: empty batch (scores has shape {scores.shape})")
    y = as_input(kernel, "targets", y, dtype, scores.ndim)
    if y.shape != scores.shape:
        raise ValueError(f"{kernel}: targets must have shape {scores.shape}, got {y.shape}")
    return scores, y, as_output(kernel, "dscores", dscores, scores.shape, dtype)


# units

def prelu_forward_args(X, a, out):
    """(X, a, out) of prelu_forward, converted to a's dtype."""
    kernel = "prelu_forward"
    dtype = float_dtype(kernel, "a", a)
    X = as_input(kernel, "X", X, dtype, 2)
    a = as_input(kernel, "a", a, dtype, 1)
    if a.shape != (X.shape[1],):
        raise ValueError(f"{kernel}: a must have shape ({X.shape[1]},), got {a.shape}")
    return X, a, as_output(kernel, "out", out, X.shape, dtype)


def prelu_backward_args(dA, X, a, dX, da, accumulate):
    """(dA, X, a, dX, da) of prelu_backward, converted to a's dtype."""
    kernel = "prelu_backward"
    dtype = float_dtype(kernel, "a", a)
    X = as_input(kernel, "X", X, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    a = as_input(kernel, "a", a, dtype, 1)
    if dA.shape != X.shape or a.shape != (X.shape[1],):
        raise ValueError(f"{kernel}: expected dA of shape {X.shape} and a of shape "
                         f"({X.shape[1]},), got {dA.shape} and {a.shape}")
    dX = as_output(kernel, "dX", dX, X.shape, dtype)
    return dA, X, a, dX, as_gradient(kernel, "da", da, a.shape, dtype, accumulate)


def maxout_forward_args(X, W, b, pieces, Z, out, argmax):
    """(X, W, b, Z, out, argmax) of maxout_forward, converted to W's dtype; Z is (N, M * pieces),
    out and argmax are (N, M)."""
    kernel = "maxout_forward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    b = as_input(kernel, "b", b, dtype, 1)
    n, (k, width) = X.shape[0], W.shape
    m = maxout_pieces(kernel, pieces, width)
    if X.shape[1] != k or b.shape != (width,):
        raise ValueError(f"{kernel}: expected X of shape (N, {k}) and b of shape ({width},), got "
                         f"{X.shape} and {b.shape}")
    Z = as_output(kernel, "Z", Z, (n, width), dtype)
    out = as_output(kernel, "out", out, (n, m), dtype)
    return X, W, b, Z, out, as_output(kernel, "argmax", argmax, (n, m), np.dtype(np.uint8))


def maxout_backward_args(dA, X, W, argmax, pieces, dZ, dW, db, accumulate):
    """(dA, X, W, argmax, dZ, dW, db) of maxout_backward, converted to W's dtype (argmax to
    uint8); dA and argmax are (N, M), dZ is (N, M * pieces). dX is checked by the kernel, only
    when it is needed."""
    kernel = "maxout_backward"
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    n, (k, width) = X.shape[0], W.shape
    m = maxout_pieces(kernel, pieces, width)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    argmax = as_input(kernel, "argmax", as_piece_indices(kernel, argmax, pieces),
                      np.dtype(np.uint8), 2)
    if X.shape[1] != k or dA.shape != (n, m) or argmax.shape != (n, m):
        raise ValueError(f"{kernel}: expected X (N, {k}), dA and argmax (N, {m}), got {X.shape}, "
                         f"{dA.shape} and {argmax.shape}")
    dZ = as_output(kernel, "dZ", dZ, (n, width), dtype)
    dW = as_gradient(kernel, "dW", dW, (k, width), dtype, accumulate)
    return dA, X, W, argmax, dZ, dW, as_gradient(kernel, "db", db, (width,), dtype, accumulate)
