"""fastnn's kernels, in two implementations with the same names and signatures.

Each compiled module `NAME.pyx` has a NumPy twin `NAME_numpy.py` beside it. `NUMPY` and `CYTHON`
gather them into one namespace per backend; fastnn._backend picks the active one. Conventions:
positional IN arrays first, then keyword-only options and OUT buffers (`out=None` allocates).
`STEP_OPS` gathers the compiled training step's op classes (op.Op's subclasses, each defined
beside its layer's kernels), which fastnn._step hands to the layers.
"""
import importlib
import os
from types import SimpleNamespace

KERNEL_MODULES = ("gemm", "dense", "loss", "optim", "penalty", "dropout", "batchnorm", "units",
                  "augment", "bf16", "gather")


def _kernel_set(name, modules):
    kernels = SimpleNamespace(name=name)
    for module in modules:
        for kernel in module.__all__:
            setattr(kernels, kernel, getattr(module, kernel))
    return kernels


def _step_ops(modules):
    from .op import Op
    return SimpleNamespace(**{name: value for module in modules
                              for name, value in vars(module).items()
                              if isinstance(value, type) and issubclass(value, Op)
                              and value.__module__ == module.__name__})


def _load(suffix):
    return [importlib.import_module(f"{__name__}.{module}{suffix}") for module in KERNEL_MODULES]


def _load_compiled():
    """Import the compiled modules with OpenMP's passive wait policy as the default.

    libgomp reads OMP_WAIT_POLICY once, when the first compiled module loads it. Its default
    (spin for a while after every parallel region) lets idle OpenMP workers take the cores from
    NumPy's BLAS threads and from other processes: on a busy 2-core machine a training step was
    measured 100x slower, and at the large shape of bench/compare.py even a short spin
    (GOMP_SPINCOUNT=10000) made steps 10-14% slower than passive in the two calm ones of four
    alternating runs. The variable is set only while the
    modules load (a user's own setting wins) and removed again, so libraries loaded later do not
    see it in the environment; but a library that uses the same libgomp (PyTorch's Linux wheels
    do) shares the policy, whichever loaded it first: with fastnn imported first, PyTorch's
    small ops ran 1.6-4.6x slower (README, "Backends"). Import torch first, or set
    OMP_WAIT_POLICY / GOMP_SPINCOUNT yourself, to give it its usual spinning.
    """
    unset = "OMP_WAIT_POLICY" not in os.environ
    if unset:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        modules = _load("")
        from . import parallel  # noqa: F401
        return modules
    finally:
        if unset:
            del os.environ["OMP_WAIT_POLICY"]


NUMPY = _kernel_set("numpy", _load("_numpy"))

try:
    _compiled = _load_compiled()
    CYTHON = _kernel_set("cython", _compiled)
    STEP_OPS = _step_ops(_compiled)
    from . import parallel
except ImportError as error:
    CYTHON = STEP_OPS = None
    parallel = None
    COMPILED_ERROR = f"{type(error).__name__}: {error}"
else:
    COMPILED_ERROR = None


def names():
    """The kernel names every backend provides."""
    return sorted(k for k in vars(NUMPY) if k != "name")
