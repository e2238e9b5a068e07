"""NumPy twin of optim.pyx: in-place optimizer updates over one parameter array.

Each follows the formula of the torch.optim class of the same name; state buffers have the
parameter's shape and dtype and are updated in place. bf16_copy, when given, receives the new
parameter rounded to bfloat16 (what the compiled update writes in the same loop).
"""
import numpy as np

from ._optim_checks import (adagrad_update_args, adam_update_args, rmsprop_update_args,
                      sgd_update_args)
from .bf16_numpy import round_bfloat16


def _write_copy(param, bf16_copy):
    if bf16_copy is not None:
        round_bfloat16(param, out=bf16_copy)

__all__ = ["sgd_update", "adagrad_update", "rmsprop_update", "adam_update"]


def sgd_update(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, first_step=False, bf16_copy=None):
    """One step of torch.optim.SGD on `param`, in place.

    g = grad + weight_decay * param
    with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
                   g = g + momentum * buf (Nesterov) or g = buf
    param -= lr * g
    momentum_buffer (same shape as param) is updated in place; it may be None when momentum is 0.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    dtype, param, grad = sgd_update_args(param, grad, momentum_buffer, lr, momentum, dampening,
                                         weight_decay, bf16_copy)
    lr, momentum, keep, weight_decay = (dtype.type(v) for v in
                                        (lr, momentum, 1 - dampening, weight_decay))
    g = grad + weight_decay * param if weight_decay != 0 else grad.copy()
    if momentum != 0:
        buf = momentum_buffer
        if first_step:
            np.copyto(buf, g)
        else:
            buf *= momentum
            buf += keep * g
        if nesterov:
            g += momentum * buf
        else:
            g = buf
    param -= lr * g
    _write_copy(param, bf16_copy)


def adagrad_update(param, grad, state_sum, *, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   step, bf16_copy=None):
    """One step of torch.optim.Adagrad on `param`, in place (step counts from 1).

    g = grad + weight_decay * param; state_sum += g * g
    param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    dtype, param, grad = adagrad_update_args(param, grad, state_sum, lr, lr_decay, weight_decay,
                                             eps, step, bf16_copy)
    g = grad + dtype.type(weight_decay) * param
    state_sum += g * g
    clr = dtype.type(lr / (1 + (step - 1) * lr_decay))
    param -= clr * g / (np.sqrt(state_sum) + dtype.type(eps))
    _write_copy(param, bf16_copy)


def rmsprop_update(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha=0.99,
                   eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, bf16_copy=None):
    """One step of torch.optim.RMSprop on `param`, in place.

    g = grad + weight_decay * param; square_avg = alpha * square_avg + (1 - alpha) * g * g
    centered: grad_avg = alpha * grad_avg + (1 - alpha) * g; avg = sqrt(square_avg - grad_avg**2) + eps
    otherwise avg = sqrt(square_avg) + eps
    momentum > 0: buf = momentum * buf + g / avg; param -= lr * buf; otherwise param -= lr * g / avg
    grad_avg may be None unless centered; momentum_buffer may be None unless momentum > 0.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    dtype, param, grad = rmsprop_update_args(param, grad, square_avg, grad_avg, momentum_buffer, lr,
                                             alpha, eps, weight_decay, momentum, centered,
                                             bf16_copy)
    alpha, one_minus_alpha, eps = dtype.type(alpha), dtype.type(1 - alpha), dtype.type(eps)
    g = grad + dtype.type(weight_decay) * param
    square_avg *= alpha
    square_avg += one_minus_alpha * g * g
    if centered:
        grad_avg *= alpha
        grad_avg += one_minus_alpha * g
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer *= dtype.type(momentum)
        momentum_buffer += g / avg
        param -= dtype.type(lr) * momentum_buffer
    else:
        param -= dtype.type(lr) * g / avg
    _write_copy(param, bf16_copy)


def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, step, decoupled_weight_decay=False, amsgrad=False,
                bf16_copy=None):
    """One step of torch.optim.Adam (or AdamW with decoupled_weight_decay) on `param`, in place.

    Adam: g = grad + weight_decay * param.  AdamW: param *= 1 - lr * weight_decay; g = grad.
    m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g (amsgrad: vmax = max(vmax, v))
    param -= lr / (1 - beta1**step) * m / (sqrt(v or vmax) / sqrt(1 - beta2**step) + eps)
    step counts from 1; max_exp_avg_sq may be None unless amsgrad.
    bf16_copy (float32 param only): an array that receives the new param rounded to bfloat16.
    """
    dtype, param, grad = adam_update_args(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr,
                                          beta1, beta2, eps, weight_decay, step, amsgrad,
                                          bf16_copy)
    b1, b2 = dtype.type(beta1), dtype.type(beta2)
    one_minus_b1, one_minus_b2 = dtype.type(1 - beta1), dtype.type(1 - beta2)
    if decoupled_weight_decay:
        param *= dtype.type(1 - lr * weight_decay)
        g = grad
    else:
        g = grad + dtype.type(weight_decay) * param
    exp_avg *= b1
    exp_avg += one_minus_b1 * g
    exp_avg_sq *= b2
    exp_avg_sq += one_minus_b2 * g * g
    second = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    step_size = dtype.type(lr / (1 - beta1 ** step))
    bias_correction2_sqrt = dtype.type(np.sqrt(1 - beta2 ** step))
    param -= step_size * exp_avg / (np.sqrt(second) / bias_correction2_sqrt + dtype.type(eps))
    _write_copy(param, bf16_copy)
