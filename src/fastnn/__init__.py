"""fastnn: fast CPU training of fully-connected neural networks.

Compiled Cython kernels with a pure-NumPy twin of each (the "numpy" backend, for debugging:
FASTNN_BACKEND=numpy or fastnn.set_backend("numpy")).
"""
from . import _backend, data, gradcheck, init, losses, optim, preprocessing
from ._backend import (compiled_available, get_backend, get_num_threads, openmp_enabled,
                       set_backend, set_num_threads, use_backend)
from .layers import BatchNorm, Dense, Dropout, Layer, Parameter
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "BatchNorm", "Dense", "Dropout", "Layer", "Parameter", "Sequential", "compiled_available",
    "data", "get_backend", "get_num_threads", "gradcheck", "init", "losses", "openmp_enabled",
    "optim", "preprocessing", "set_backend", "set_num_threads", "use_backend",
]

_backend._configure_from_environment()
