"""Weight initializers: `initialize(init, (fan_in, fan_out), rng, dtype)`.

`init` is a name or a float. A float s gives small random weights s * randn (the CS231n notes'
0.01 * randn). Names: "he" (normal, std sqrt(2 / fan_in): the default for the relu family) and
"xavier" (normal, std sqrt(1 / fan_in), the notes' variance calibration: the default otherwise).
"""
import numbers

import numpy as np


def _he(shape, rng):
    return rng.standard_normal(shape) * np.sqrt(2.0 / shape[0])


def _xavier(shape, rng):
    return rng.standard_normal(shape) * np.sqrt(1.0 / shape[0])


INITIALIZERS = {"he": _he, "xavier": _xavier}


def default_init(activation):
    return "he" if activation in ("relu", "leaky_relu", "elu") else "xavier"


def check_init(init):
    """Raise a clear error for an init that `initialize` would not accept."""
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        if not np.isfinite(init) or init < 0:
            raise ValueError(f"init scale must be a finite number >= 0, got {init}")
        return
    if init not in INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; expected a float scale or one of "
                         f"{sorted(INITIALIZERS)}")


def initialize(init, shape, rng, dtype):
    check_init(init)
    if isinstance(init, numbers.Real):
        values = init * rng.standard_normal(shape)
    else:
        values = INITIALIZERS[init](shape, rng)
    return np.ascontiguousarray(values, dtype=dtype)
