"""Argument checks of the weight penalty kernel (penalty.pyx, penalty_numpy.py), shared by both."""
import math

from ._checks import as_output, float_dtype, hyperparameters


def elastic_net_args(W, grad, l1, l2):
    """elastic_net's checks: W a float array, grad None or an OUT array of W's shape and dtype,
    l1 and l2 finite numbers >= 0. Returns (W, grad, l1, l2) with the strengths as floats."""
    float_dtype("elastic_net", "W", W)
    strengths = hyperparameters("elastic_net", l1=l1, l2=l2)
    for name, value in strengths.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"elastic_net: {name} must be a finite number >= 0, got {value!r}")
    if grad is not None:
        grad = as_output("elastic_net", "grad", grad, W.shape, W.dtype)
    return W, grad, strengths["l1"], strengths["l2"]
