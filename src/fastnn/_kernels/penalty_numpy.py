"""NumPy twin of penalty.pyx: the elastic-net weight penalty, its value and its gradient."""
import numpy as np

from ._penalty_checks import elastic_net_args

__all__ = ["elastic_net"]


def elastic_net(W, grad=None, *, l1=0.0, l2=0.0):
    """l1 * sum(|W|) + 0.5 * l2 * sum(W**2), summed in float64; with grad (W's shape and
    dtype), also adds the penalty's gradient to it in place, in W's dtype:
    grad += l2 * W, then grad += l1 * sign(W)."""
    W, grad, l1, l2 = elastic_net_args(W, grad, l1, l2)
    total = 0.0
    if l2:
        total += 0.5 * l2 * float(np.square(W, dtype=np.float64).sum())
        if grad is not None:
            grad += W.dtype.type(l2) * W
    if l1:
        total += l1 * float(np.abs(W).sum(dtype=np.float64))
        if grad is not None:
            grad += W.dtype.type(l1) * np.sign(W)
    return total
