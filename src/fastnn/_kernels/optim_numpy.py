"""NumPy twin of optim.pyx: in-place optimizer updates over one parameter array."""
import numpy as np

from ._checks import as_input, as_output, float_dtype

__all__ = ["sgd_update"]


def sgd_update(param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, first_step=False):
    """One step of torch.optim.SGD on `param`, in place.

    g = grad + weight_decay * param
    with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
                   g = g + momentum * buf (Nesterov) or g = buf
    param -= lr * g
    momentum_buffer (same shape as param) is updated in place; it may be None when momentum is 0.
    """
    kernel = "sgd_update"
    dtype = float_dtype(kernel, "param", param)
    param = as_output(kernel, "param", param, param.shape, dtype)
    grad = as_input(kernel, "grad", grad, dtype, param.ndim)
    if grad.shape != param.shape:
        raise ValueError(f"{kernel}: grad must have shape {param.shape}, got {grad.shape}")
    lr, momentum, dampening, weight_decay = (dtype.type(v) for v in
                                             (lr, momentum, dampening, weight_decay))
    g = grad + weight_decay * param if weight_decay != 0 else grad.copy()
    if momentum != 0:
        buf = as_output(kernel, "momentum_buffer", momentum_buffer, param.shape, dtype)
        if first_step:
            np.copyto(buf, g)
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        if nesterov:
            g += momentum * buf
        else:
            g = buf
    param -= lr * g
