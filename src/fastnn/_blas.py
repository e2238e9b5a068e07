"""The thread count of NumPy's BLAS, for training steps whose matrix multiplies are too small to
gain from threads.

OpenBLAS runs a GEMM on all its threads once it passes a small size, and lets them sleep between
calls. In a small model's step, where its GEMMs alternate with fastnn's kernels and Python, waking
them costs more than they save: the 64-128-10 step at batch 64 of bench/compare.py took 15-20%
less time with OpenBLAS on one thread than on two (medians, both backends of fastnn's OpenMP
threads alike), while the 784-512-512-10 step at batch 128 needs both. So Sequential.train_step
runs a step on one BLAS thread when its largest GEMM is below SMALL_GEMM_WORK multiply-adds (as
the compiled kernels stay on one OpenMP thread below a size), and restores the count afterwards.

The controls are OpenBLAS's own functions, found with ctypes in the libraries this process has
loaded (Linux: /proc/self/maps). Elsewhere, or with another BLAS, `one_thread_if` does nothing.
"""
import ctypes

# Largest GEMM (rows x inner x columns) that runs on one BLAS thread inside train_step. At 128 x
# 128 x 128 (2.1e6) one and two threads took the same time here; at 128 x 256 x 256 two were 1.4x
# faster.
SMALL_GEMM_WORK = 1 << 22

_NAMES = [(f"{prefix}set_num_threads{suffix}", f"{prefix}get_num_threads{suffix}")
          for prefix in ("scipy_openblas_", "openblas_") for suffix in ("64_", "")]
_controls = None


def _loaded_openblas_paths():
    try:
        with open("/proc/self/maps") as maps:
            lines = [line for line in maps if "openblas" in line.lower()]
    except OSError:
        return []
    return sorted({line.split(None, 5)[-1].strip() for line in lines if "/" in line})


def controls():
    """[(set_num_threads, get_num_threads)] of every OpenBLAS loaded (found once)."""
    global _controls
    if _controls is None:
        found = []
        for path in _loaded_openblas_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name, get_name in _NAMES:
                setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    found.append((setter, getter))
                    break
        _controls = found
    return _controls


class _OneThread:
    """Context manager: the BLAS on one thread inside, its previous thread counts restored on
    the way out (exceptions included)."""

    __slots__ = ("_saved",)

    def __enter__(self):
        self._saved = [(setter, getter()) for setter, getter in controls()]
        for setter, _ in self._saved:
            setter(1)
        return self

    def __exit__(self, *exc):
        for setter, threads in self._saved:
            setter(threads)
        return False


class _Unchanged:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_UNCHANGED = _Unchanged()


def one_thread_if(small):
    """A context manager that runs its body on one BLAS thread when `small`, else changes
    nothing."""
    return _OneThread() if small and controls() else _UNCHANGED
