"""fastnn's kernels, in two implementations with the same names and signatures.

Each compiled module `NAME.pyx` has a NumPy twin `NAME_numpy.py` beside it. `NUMPY` and `CYTHON`
gather them into one namespace per backend; fastnn._backend picks the active one. Conventions:
positional IN arrays first, then keyword-only options and OUT buffers (`out=None` allocates).
"""
import importlib
from types import SimpleNamespace

KERNEL_MODULES = ("dense", "loss", "optim", "dropout", "batchnorm", "units")


def _kernel_set(name, modules):
    kernels = SimpleNamespace(name=name)
    for module in modules:
        for kernel in module.__all__:
            setattr(kernels, kernel, getattr(module, kernel))
    return kernels


def _load(suffix):
    return [importlib.import_module(f"{__name__}.{module}{suffix}") for module in KERNEL_MODULES]


NUMPY = _kernel_set("numpy", _load("_numpy"))

try:
    CYTHON = _kernel_set("cython", _load(""))
    from . import parallel
except ImportError as error:
    CYTHON = None
    parallel = None
    COMPILED_ERROR = f"{type(error).__name__}: {error}"
else:
    COMPILED_ERROR = None


def names():
    """The kernel names every backend provides."""
    return sorted(k for k in vars(NUMPY) if k != "name")
