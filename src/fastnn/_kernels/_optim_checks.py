"""Argument checks of the optimizer update kernels (optim.pyx, optim_numpy.py), shared by both."""
import numpy as np

from ._checks import as_input, as_output, float_dtype, hyperparameters


def update_arrays(kernel, param, grad, states, bf16_copy=None):
    """Checks for an optimizer update: param and every state buffer are OUT arrays of param's
    shape and dtype; grad is converted; bf16_copy (see bf16_copy_buffer) may be None. Returns
    (dtype, param, grad)."""
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
    if bf16_copy is not None:
        bf16_copy_buffer(kernel, bf16_copy, param, {"param": param, "grad": grad, **states})
    return dtype, param, grad


def bf16_copy_buffer(kernel, bf16_copy, param, arrays):
    """bf16_copy, the OUT array an update writes the new param into rounded to bfloat16: float32
    of param's shape, C-contiguous, writeable, for a float32 param only, and sharing no memory
    with the update's other arrays (`arrays`, by name), which the same loop reads and writes."""
    if param.dtype != np.float32:
        raise ValueError(f"{kernel}: bf16_copy needs a float32 param (bfloat16 copies are made "
                         f"of float32 master weights), got {param.dtype}")
    as_output(kernel, "bf16_copy", bf16_copy, param.shape, np.dtype(np.float32))
    for name, array in arrays.items():
        if np.may_share_memory(bf16_copy, array):
            raise ValueError(f"{kernel}: bf16_copy must not overlap {name}")


# optim: the hyperparameters are checked as real numbers (the kernels go on using the values
# passed), then param, grad and the state buffers the options need, by update_arrays. Each
# returns (dtype, param, grad).

def sgd_update_args(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
                    bf16_copy=None):
    """sgd_update's checks; momentum_buffer is needed when momentum != 0."""
    hyperparameters("sgd_update", lr=lr, momentum=momentum, dampening=dampening,
                    weight_decay=weight_decay)
    states = {"momentum_buffer": momentum_buffer} if momentum != 0 else {}
    return update_arrays("sgd_update", param, grad, states, bf16_copy)


def adagrad_update_args(param, grad, state_sum, lr, lr_decay, weight_decay, eps, step,
                        bf16_copy=None):
    """adagrad_update's checks."""
    hyperparameters("adagrad_update", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                    eps=eps, step=step)
    return update_arrays("adagrad_update", param, grad, {"state_sum": state_sum}, bf16_copy)


def rmsprop_update_args(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                        weight_decay, momentum, centered, bf16_copy=None):
    """rmsprop_update's checks; grad_avg is needed when centered, momentum_buffer when
    momentum > 0."""
    hyperparameters("rmsprop_update", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                    momentum=momentum)
    states = {"square_avg": square_avg}
    if centered:
        states["grad_avg"] = grad_avg
    if momentum > 0:
        states["momentum_buffer"] = momentum_buffer
    return update_arrays("rmsprop_update", param, grad, states, bf16_copy)


def adam_update_args(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                     weight_decay, step, amsgrad, bf16_copy=None):
    """adam_update's checks; max_exp_avg_sq is needed when amsgrad."""
    hyperparameters("adam_update", lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, step=step)
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= beta < 1:  # (an integer beta >= 1 made beta ** step run forever)
            raise ValueError(f"adam_update: {name} must be in [0, 1), got {beta!r}")
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        states["max_exp_avg_sq"] = max_exp_avg_sq
    return update_arrays("adam_update", param, grad, states, bf16_copy)
