"""The one table of activations: everything the package knows about each, read by the kernels'
checks, the layers, init, io, the CLI, the babysitting statistics, gradcheck and the compiled step.

A new activation is a row here plus its kernel pair (the compiled kernels and their NumPy twin
switch on `code`). This module imports nothing from fastnn, so any level may read it.
"""
from collections import namedtuple

Spec = namedtuple("Spec", [
    "name",        # what users write: Dense(..., activation=name), --activation name
    "code",        # the number the kernels switch on (dense.pyx's ACT_* constants)
    "alpha",       # default alpha, or None for an activation that takes none
    "alpha_min",   # (bound, open): alpha must be > bound (open) or >= bound
    "alpha_name",  # how an error message names alpha
    "kinks",       # its derivative jumps at 0 (gradcheck's numeric gradients are unreliable there)
    "init",        # default weight init of a Dense with it
    "cost",        # relative cost of one element, for the kernels' single-thread threshold
    "saturated",   # (low, high): outputs outside it count as saturated units; or None
])

TABLE = (
    Spec("identity", 0, None, None, None, False, "xavier", 1, None),
    Spec("relu", 1, None, None, None, True, "he", 1, None),
    Spec("leaky_relu", 2, 0.01, (0.0, False), "alpha (the negative slope)", True, "he", 1, None),
    # elu's derivative jumps at 0 too (from alpha to 1) unless alpha = 1: treated as a kink.
    Spec("elu", 3, 1.0, (0.0, True), "alpha", True, "he", 4, None),
    Spec("sigmoid", 4, None, None, None, False, "xavier", 4, (0.01, 0.99)),
    Spec("tanh", 5, None, None, None, False, "xavier", 4, (-0.99, 0.99)),
)

SPECS = {spec.name: spec for spec in TABLE}
CODES = {spec.name: spec.code for spec in TABLE}
DEFAULT_ALPHA = {spec.name: spec.alpha for spec in TABLE if spec.alpha is not None}
