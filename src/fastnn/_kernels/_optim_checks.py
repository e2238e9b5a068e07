"""Argument checks of the optimizer update kernels (optim.pyx, optim_numpy.py), shared by both."""
from ._checks import as_input, as_output, float_dtype, hyperparameters


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
