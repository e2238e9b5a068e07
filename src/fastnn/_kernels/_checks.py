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
from .._hash import GOLDEN64, MASK64, MIX64_M1, MIX64_M2, dropout_key, mix64  # noqa: F401
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


def drop_probability(kernel, p):
    """(p, threshold): the drop probability as a float in [0, 1) and floor(p * 2**32)."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: p must be a number, got {p!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{kernel}: p (the drop probability) must lie in [0, 1), got {p}")
    return p, int(p * 4294967296.0)  # exact: scaling by a power of two, then floor


def random_key(kernel, key):
    """A dropout key (from dropout_key) as a Python int in [0, 2**64)."""
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{kernel}: key must be an integer, got {type(key).__name__}")
    if not 0 <= key <= MASK64:
        raise ValueError(f"{kernel}: key must lie in [0, 2**64), got {key}")
    return int(key)


def as_mask(kernel, mask, shape):
    """A dropout mask (bool or uint8, nonzero = kept) as a C-contiguous uint8 array of `shape`."""
    mask = np.asarray(mask)
    if mask.dtype not in (np.dtype(np.bool_), np.dtype(np.uint8)):
        raise TypeError(f"{kernel}: mask must be a uint8 or bool array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{kernel}: mask must have shape {tuple(shape)}, got {mask.shape}")
    return np.ascontiguousarray(mask).view(np.uint8)


def batchnorm_options(kernel, n_samples, training, momentum, eps):
    """Checked (momentum, eps) as floats; a batch of one is an error in training mode."""
    momentum, eps = float(momentum), float(eps)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{kernel}: momentum must lie in [0, 1], got {momentum}")
    if not 0.0 < eps < float("inf"):
        raise ValueError(f"{kernel}: eps must be positive and finite, got {eps}")
    if training and n_samples < 2:
        raise ValueError(f"{kernel}: training mode needs more than one sample per feature to "
                         f"compute batch statistics, got a batch of {n_samples}")
    return momentum, eps


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


def update_arrays(kernel, param, grad, states):
    """Checks for an optimizer update: param and every state buffer are OUT arrays of param's
    shape and dtype; grad is converted. Returns (dtype, param, grad)."""
    dtype = float_dtype(kernel, "param", param)
    param = as_output(kernel, "param", param, param.shape, dtype)
    grad = as_input(kernel, "grad", grad, dtype, param.ndim)
    if grad.shape != param.shape:
        raise ValueError(f"{kernel}: grad must have shape {param.shape}, got {grad.shape}")
    for name, state in states.items():
        if state is None:
            raise TypeError(f"{kernel}: {name} must be an array (optimizer state kept between "
                            "steps), got None")
        as_output(kernel, name, state, param.shape, dtype)
    return dtype, param, grad


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


# ---- Each kernel's checks, written once: the compiled wrapper and its NumPy twin both begin by
# calling `KERNEL_args` (or, for kernels that share their checks, the shared function with the
# kernel's name), which returns the converted arguments and the values derived from them that the
# kernel needs. The one OUT buffer checked later, dX (only when need_dX), is checked in
# weight_gradients, after dW is written.

# dense

def bias_vector(kernel, b, m, dtype):
    """A bias b of shape (m,) converted to dtype; None (no bias) stays None."""
    if b is None:
        return None
    b = as_input(kernel, "b", b, dtype, 1)
    if b.shape[0] != m:
        raise ValueError(f"{kernel}: b must have shape ({m},), got {b.shape}")
    return b


def bias_act_forward_args(Z, b, activation, alpha, out):
    """(code, alpha, Z, b, out) of bias_act_forward: the activation code and alpha (see
    activation_code), Z (N, M) in its own float dtype, b (M,) or None, out (N, M)."""
    kernel = "bias_act_forward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "Z", Z)
    Z = as_input(kernel, "Z", Z, dtype, 2)
    n, m = Z.shape
    out = as_output(kernel, "out", out, (n, m), dtype)
    return code, alpha, Z, bias_vector(kernel, b, m, dtype), out


def bias_act_backward_args(dA, A, activation, alpha, dZ, db):
    """(code, alpha, dA, A, dZ, db) of bias_act_backward, converted to A's dtype; db may be None
    (no bias gradient)."""
    kernel = "bias_act_backward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "A", A)
    A = as_input(kernel, "A", A, dtype, 2)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    if dA.shape != A.shape:
        raise ValueError(f"{kernel}: dA must have shape {A.shape}, got {dA.shape}")
    dZ = as_output(kernel, "dZ", dZ, A.shape, dtype)
    if db is not None:
        db = as_output(kernel, "db", db, (A.shape[1],), dtype)
    return code, alpha, dA, A, dZ, db


def dense_forward_args(X, W, b, activation, alpha, out):
    """(code, alpha, X, W, b, out) of dense_forward, converted to W's dtype; b (M,) or None."""
    kernel = "dense_forward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "W", W)
    W = as_input(kernel, "W", W, dtype, 2)
    X = as_input(kernel, "X", X, dtype, 2)
    n, (k, m) = X.shape[0], W.shape
    if X.shape[1] != k:
        raise ValueError(f"{kernel}: X must have shape (N, {k}), got {X.shape}")
    b = bias_vector(kernel, b, m, dtype)
    return code, alpha, X, W, b, as_output(kernel, "out", out, (n, m), dtype)


def dense_backward_args(dA, X, W, A, activation, alpha, dZ, dW, db, accumulate):
    """(code, alpha, dA, X, W, A, dZ, dW, db) of dense_backward, converted to W's dtype; a
    missing db starts at zero. dX is checked by the kernel, only when it is needed."""
    kernel = "dense_backward"
    code, alpha = activation_code(kernel, activation, alpha)
    dtype = float_dtype(kernel, "W", W)
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


def weight_gradients(kernel, X, W, dZ, dW, db, dX, need_dX, accumulate):
    """The end of a dense or maxout backward pass, given dZ = dL/d(X @ W + b): dW (+)= X.T @ dZ,
    then dX = dZ @ W.T unless need_dX is False. Both backends do these GEMMs with NumPy's matmul;
    it lives here because the dX buffer is checked only when needed, after dW is written.
    Returns (dX or None, dW, db)."""
    if accumulate:
        dW += X.T @ dZ
    else:
        np.matmul(X.T, dZ, out=dW)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (X.shape[0], W.shape[0]), dW.dtype)
    np.matmul(dZ, W.T, out=dX)
    return dX, dW, db


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


# optim: the hyperparameters are checked as real numbers (the kernels go on using the values
# passed), then param, grad and the state buffers the options need, by update_arrays. Each
# returns (dtype, param, grad).

def sgd_update_args(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay):
    """sgd_update's checks; momentum_buffer is needed when momentum != 0."""
    hyperparameters("sgd_update", lr=lr, momentum=momentum, dampening=dampening,
                    weight_decay=weight_decay)
    states = {"momentum_buffer": momentum_buffer} if momentum != 0 else {}
    return update_arrays("sgd_update", param, grad, states)


def adagrad_update_args(param, grad, state_sum, lr, lr_decay, weight_decay, eps, step):
    """adagrad_update's checks."""
    hyperparameters("adagrad_update", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                    eps=eps, step=step)
    return update_arrays("adagrad_update", param, grad, {"state_sum": state_sum})


def rmsprop_update_args(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                        weight_decay, momentum, centered):
    """rmsprop_update's checks; grad_avg is needed when centered, momentum_buffer when
    momentum > 0."""
    hyperparameters("rmsprop_update", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                    momentum=momentum)
    states = {"square_avg": square_avg}
    if centered:
        states["grad_avg"] = grad_avg
    if momentum > 0:
        states["momentum_buffer"] = momentum_buffer
    return update_arrays("rmsprop_update", param, grad, states)


def adam_update_args(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                     weight_decay, step, amsgrad):
    """adam_update's checks; max_exp_avg_sq is needed when amsgrad."""
    hyperparameters("adam_update", lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, step=step)
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= beta < 1:  # (an integer beta >= 1 made beta ** step run forever)
            raise ValueError(f"adam_update: {name} must be in [0, 1), got {beta!r}")
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        states["max_exp_avg_sq"] = max_exp_avg_sq
    return update_arrays("adam_update", param, grad, states)


# dropout

def dropout_forward_args(X, p, key, out, mask):
    """(X, out, mask, key, threshold, scale) of dropout_forward: X converted to its own float
    dtype, the key as a Python int, the keep threshold floor(p * 2**32) and the scale
    1 / (1 - p) of the kept units."""
    kernel = "dropout_forward"
    p, threshold = drop_probability(kernel, p)
    key = random_key(kernel, key)
    dtype = float_dtype(kernel, "X", X)
    X = as_input(kernel, "X", X, dtype, 2)
    out = as_output(kernel, "out", out, X.shape, dtype)
    mask = as_output(kernel, "mask", mask, X.shape, np.dtype(np.uint8))
    return X, out, mask, key, threshold, 1.0 / (1.0 - p)


def dropout_backward_args(dA, mask, p, dX):
    """(dA, mask, dX, scale) of dropout_backward: dA converted to its own float dtype, the mask
    as uint8 and the scale 1 / (1 - p) of the kept units."""
    kernel = "dropout_backward"
    p, _ = drop_probability(kernel, p)
    dtype = float_dtype(kernel, "dA", dA)
    dA = as_input(kernel, "dA", dA, dtype, 2)
    mask = as_mask(kernel, mask, dA.shape)
    return dA, mask, as_output(kernel, "dX", dX, dA.shape, dtype), 1.0 / (1.0 - p)


# batchnorm

def batchnorm_forward_args(X, gamma, beta, running_mean, running_var, training, momentum, eps, out,
                           mean, inv_std):
    """(X, gamma, beta, running_mean, running_var, momentum, eps, out, mean, inv_std) of
    batchnorm_forward, converted to gamma's dtype; the running statistics are OUT buffers in
    training mode (updated in place) and IN vectors in inference mode."""
    kernel = "batchnorm_forward"
    dtype = float_dtype(kernel, "gamma", gamma)
    X = as_input(kernel, "X", X, dtype, 2)
    n, d = X.shape
    momentum, eps = batchnorm_options(kernel, n, training, momentum, eps)
    gamma = as_vector(kernel, "gamma", gamma, dtype, d)
    beta = as_vector(kernel, "beta", beta, dtype, d)
    out = as_output(kernel, "out", out, (n, d), dtype)
    mean = as_output(kernel, "mean", mean, (d,), dtype)
    inv_std = as_output(kernel, "inv_std", inv_std, (d,), dtype)
    if training:
        running_mean = as_output(kernel, "running_mean", running_mean, (d,), dtype)
        running_var = as_output(kernel, "running_var", running_var, (d,), dtype)
    else:
        running_mean = as_vector(kernel, "running_mean", running_mean, dtype, d)
        running_var = as_vector(kernel, "running_var", running_var, dtype, d)
    return X, gamma, beta, running_mean, running_var, momentum, eps, out, mean, inv_std


def batchnorm_backward_args(dY, X, gamma, mean, inv_std, dX, dgamma, dbeta):
    """(dY, X, gamma, mean, inv_std, dX, dgamma, dbeta) of batchnorm_backward, converted to
    gamma's dtype; a missing dgamma or dbeta starts at zero."""
    kernel = "batchnorm_backward"
    dtype = float_dtype(kernel, "gamma", gamma)
    X = as_input(kernel, "X", X, dtype, 2)
    dY = as_input(kernel, "dY", dY, dtype, 2)
    n, d = X.shape
    if dY.shape != (n, d):
        raise ValueError(f"{kernel}: dY must have shape {(n, d)}, got {dY.shape}")
    gamma = as_vector(kernel, "gamma", gamma, dtype, d)
    mean = as_vector(kernel, "mean", mean, dtype, d)
    inv_std = as_vector(kernel, "inv_std", inv_std, dtype, d)
    dX = as_output(kernel, "dX", dX, (n, d), dtype)
    dgamma = np.zeros(d, dtype) if dgamma is None else as_output(kernel, "dgamma", dgamma, (d,),
                                                                 dtype)
    dbeta = np.zeros(d, dtype) if dbeta is None else as_output(kernel, "dbeta", dbeta, (d,), dtype)
    return dY, X, gamma, mean, inv_std, dX, dgamma, dbeta


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


# augment

def flip_crop_args(X, flips, dy, dx, image_shape, out):
    """(X, flips, dy, dx, (C, H, W), out) of flip_crop: X in its own float dtype, flips as uint8,
    the shifts as int64 vectors of the batch's length with |dy| <= H and |dx| <= W."""
    kernel = "flip_crop"
    dtype = float_dtype(kernel, "X", X)
    X = as_input(kernel, "X", X, dtype, 2)
    try:
        C, H, W = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{kernel}: image_shape must be (channels, height, width), got "
                         f"{image_shape!r}") from None
    if min(C, H, W) < 1 or X.shape[1] != C * H * W:
        raise ValueError(f"{kernel}: X must be (N, {C} * {H} * {W}) for image_shape "
                         f"{(C, H, W)}, got shape {X.shape}")
    n = X.shape[0]
    flips = np.asarray(flips)
    if flips.dtype not in (np.dtype(np.bool_), np.dtype(np.uint8)) or flips.shape != (n,):
        raise TypeError(f"{kernel}: flips must be a bool or uint8 vector of length {n}, got "
                        f"dtype {flips.dtype} and shape {flips.shape}")
    flips = np.ascontiguousarray(flips).view(np.uint8)
    shifts = []
    for name, shift, size in (("dy", dy, H), ("dx", dx, W)):
        shift = np.asarray(shift)
        if shift.dtype.kind not in "iu" or shift.shape != (n,):
            raise TypeError(f"{kernel}: {name} must be an integer vector of length {n}, got "
                            f"dtype {shift.dtype} and shape {shift.shape}")
        if n and (shift.min() < -size or shift.max() > size):
            raise ValueError(f"{kernel}: {name} must lie in [-{size}, {size}]")
        shifts.append(np.ascontiguousarray(shift, dtype=np.int64))
    out = as_output(kernel, "out", out, X.shape, dtype)
    return X, flips, shifts[0], shifts[1], (C, H, W), out
