"""fastnn: fast CPU training of fully-connected neural networks.

Compiled Cython kernels with a pure-NumPy twin of each (the "numpy" backend, for debugging:
FASTNN_BACKEND=numpy or fastnn.set_backend("numpy")).
"""
from . import (_backend, _engine, augment, data, init, losses, optim, preprocessing,
               regularization, sanity)
from . import search  # NumPy only at import; random_search imports scikit-learn when called
from ._engine import gemm_engine_info, get_gemm_engine, set_gemm_engine
from ._backend import (compiled_available, get_backend, get_num_threads, openmp_enabled,
                       set_backend, set_num_threads, use_backend)
from . import gradient_check  # the module: numerical_gradient, relative_error, GradcheckResult
from .gradient_check import gradcheck  # fnn.gradcheck is the function, as torch.autograd.gradcheck
from .layers import (ELU, Activation, BatchNorm, Dense, Dropout, Identity, Layer, LeakyReLU,
                     Maxout, Parameter, PReLU, ReLU, Sigmoid, Tanh)
from .model import Sequential
from .io import Checkpoint, load, load_checkpoint, save, save_checkpoint
from .callbacks import EMA, EarlyStopping, History
from .ensemble import Ensemble
from .trainer import Trainer

from ._version import __version__

__all__ = [
    "ELU", "EMA", "Activation", "BatchNorm", "Dense", "Dropout", "EarlyStopping", "Ensemble",
    "History", "Identity", "Layer", "LeakyReLU", "Trainer", "sanity", "Maxout", "Parameter",
    "PReLU", "ReLU", "Sequential", "Sigmoid", "Tanh", "compiled_available", "data", "get_backend",
    "get_num_threads", "gradcheck", "init", "losses", "openmp_enabled", "optim", "preprocessing",
    "regularization", "set_backend", "set_num_threads", "use_backend", "save", "load",
    "save_checkpoint", "load_checkpoint", "Checkpoint", "search", "augment",
    "set_gemm_engine", "get_gemm_engine", "gemm_engine_info",
]


def _running_the_cli():
    """True in the `fastnn` command: its console script, or `python -m fastnn.cli`."""
    import os
    import sys
    argv = getattr(sys, "orig_argv", [])
    return os.path.basename(sys.argv[0]) == "fastnn" or any(
        flag == "-m" and module == "fastnn.cli" for flag, module in zip(argv, argv[1:]))


try:
    _backend._configure_from_environment()
    _engine._configure_from_environment()
except ImportError as error:
    # A library import fails with the ImportError; the command says it in one line instead.
    if _running_the_cli():
        raise SystemExit(f"fastnn: error: {error}") from None
    raise
