"""fastnn's kernels, in two implementations with the same names and signatures.

Each compiled module `NAME.pyx` has a NumPy twin `NAME_numpy.py` beside it. `NUMPY` and `CYTHON`
gather them into one namespace per backend; fastnn._backend picks the active one. Conventions:
positional IN arrays first, then keyword-only options and OUT buffers (`out=None` allocates).
"""
from types import SimpleNamespace

from . import batchnorm_numpy, dense_numpy, dropout_numpy, loss_numpy, optim_numpy

KERNEL_MODULES = ("dense", "loss", "optim", "dropout", "batchnorm")


def _kernel_set(name, modules):
    kernels = SimpleNamespace(name=name)
    for module in modules:
        for kernel in module.__all__:
            setattr(kernels, kernel, getattr(module, kernel))
    return kernels


NUMPY = _kernel_set("numpy", [dense_numpy, loss_numpy, optim_numpy, dropout_numpy,
                               batchnorm_numpy])

try:
    from . import batchnorm, dense, dropout, loss, optim, parallel
except ImportError as error:
    CYTHON = None
    parallel = None
    COMPILED_ERROR = f"{type(error).__name__}: {error}"
else:
    CYTHON = _kernel_set("cython", [dense, loss, optim, dropout, batchnorm])
    COMPILED_ERROR = None


def names():
    """The kernel names every backend provides."""
    return sorted(k for k in vars(NUMPY) if k != "name")
