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

`gemm_functions` finds the CBLAS GEMMs of the BLAS NumPy calls, for the compiled training step
(fastnn._kernels.step), which multiplies without going through np.matmul.
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


# (sgemm, dgemm, 64-bit integers): the CBLAS names NumPy's BLAS may export. NumPy's wheels bundle
# OpenBLAS with 64-bit integers and the scipy_ prefix and 64_ suffix; builds against a system
# BLAS use the plain names.
_GEMM_NAMES = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
               ("cblas_sgemm64_", "cblas_dgemm64_", True),
               ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
               ("cblas_sgemm", "cblas_dgemm", None)]
_gemm = None


def _numpy_blas_uses_64bit_integers():
    try:
        import numpy
        blas = numpy.__config__.CONFIG["Build Dependencies"]["blas"]
        return "64BITINT" in str(blas.get("openblas configuration", "")).upper() or \
            "ilp64" in str(blas.get("name", "")).lower()
    except Exception:
        return False


def _libraries_to_search():
    """ctypes handles whose symbol lookup reaches NumPy's BLAS: NumPy's core extension (dlsym on
    it searches the libraries it links), then every loaded OpenBLAS."""
    handles = []
    try:
        import numpy._core._multiarray_umath as core
    except ImportError:
        try:
            import numpy.core._multiarray_umath as core
        except ImportError:
            core = None
    for path in ([core.__file__] if core is not None else []) + _loaded_openblas_paths():
        try:
            handles.append(ctypes.CDLL(path))
        except OSError:
            continue
    return handles


def gemm_functions():
    """(address of cblas_sgemm, address of cblas_dgemm, whether they take 64-bit integers) of
    NumPy's BLAS, or None when they cannot be found. Found once."""
    global _gemm
    if _gemm is None:
        _gemm = ()
        for lib in _libraries_to_search():
            for s_name, d_name, ilp64 in _GEMM_NAMES:
                sgemm, dgemm = getattr(lib, s_name, None), getattr(lib, d_name, None)
                if sgemm is not None and dgemm is not None:
                    if ilp64 is None:
                        ilp64 = _numpy_blas_uses_64bit_integers()
                    _gemm = (ctypes.cast(sgemm, ctypes.c_void_p).value,
                             ctypes.cast(dgemm, ctypes.c_void_p).value, ilp64)
                    break
            if _gemm:
                break
    return _gemm or None
