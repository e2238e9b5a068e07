"""The one switch point between the compiled kernels and their NumPy twins.

Layers, losses and optimizers call `_backend.kernels.<name>(...)`; nothing else knows which
implementation runs.
"""
import contextlib
import os
import warnings

from . import _kernels
# Argument checks of kernels that the layers and the compiled step apply up front, through here.
from ._kernels._batchnorm_checks import batchnorm_options  # noqa: F401
from ._kernels._dropout_checks import drop_probability  # noqa: F401
from ._validation import check_int

BACKENDS = ("cython", "numpy")

kernels = _kernels.CYTHON or _kernels.NUMPY
_num_threads = 1


def compiled_available():
    """True when the compiled kernels were built and imported."""
    return _kernels.CYTHON is not None


def get_backend():
    """The active backend: "cython" (compiled kernels) or "numpy" (the pure-NumPy twin)."""
    return kernels.name


def set_backend(name):
    """Switch every layer, loss and optimizer to the "cython" or "numpy" kernels."""
    global kernels
    if name not in BACKENDS:
        raise ValueError(f"unknown fastnn backend {name!r}; expected one of {BACKENDS}")
    if name == "cython":
        if _kernels.CYTHON is None:
            raise RuntimeError(
                "the compiled fastnn kernels are not available "
                f"({_kernels.COMPILED_ERROR}); reinstall fastnn with a C compiler "
                "(`pip install .`) or use set_backend('numpy')")
        kernels = _kernels.CYTHON
    else:
        kernels = _kernels.NUMPY


@contextlib.contextmanager
def use_backend(name):
    """Run a block on the given backend, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield name
    finally:
        set_backend(previous)


def _default_num_threads():
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Threads the compiled kernels may use above their size threshold (default: cores available).

    BLAS threads for the matrix multiplies are NumPy's BLAS's own (OPENBLAS_NUM_THREADS etc.);
    on the oneDNN GEMM engine (set_gemm_engine) the matrix multiplies use these threads too.
    """
    global _num_threads
    n = check_int("set_num_threads: n (the number of threads)", n, low=1)
    _num_threads = n
    if _kernels.parallel is not None:
        _kernels.parallel.set_num_threads(n)


def get_num_threads():
    return _num_threads


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    return _kernels.parallel is not None and _kernels.parallel.openmp_enabled()


def _configure_from_environment():
    requested = os.environ.get("FASTNN_BACKEND", "").strip().lower()
    if requested and requested not in BACKENDS:
        raise ImportError(f"FASTNN_BACKEND={requested!r} is not a fastnn backend; "
                          f"expected one of {BACKENDS}")
    if requested == "cython" and not compiled_available():
        raise ImportError("FASTNN_BACKEND=cython, but the compiled fastnn kernels are not "
                          f"available ({_kernels.COMPILED_ERROR})")
    if not compiled_available() and requested != "numpy":
        warnings.warn("fastnn's compiled kernels could not be imported "
                      f"({_kernels.COMPILED_ERROR}); running on the NumPy backend, which is "
                      "correct but slower. Reinstall with `pip install .` to build them.",
                      RuntimeWarning, stacklevel=3)
    set_backend(requested or ("cython" if compiled_available() else "numpy"))
    set_num_threads(_default_num_threads())
