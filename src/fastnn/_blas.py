"""The CBLAS GEMMs of the BLAS NumPy uses, for the compiled training step (fastnn._kernels.step),
which multiplies without going through np.matmul.

The functions are found with ctypes in the libraries this process has loaded: NumPy's core
extension first (dlsym on it searches the libraries it links), then every OpenBLAS listed in
/proc/self/maps (Linux). Elsewhere, or when none is found, train_step goes layer by layer.

train_step leaves NumPy's BLAS thread count alone: OpenBLAS runs the smallest GEMMs on one
thread by its own rule.
"""
import ctypes


def _loaded_openblas_paths():
    try:
        with open("/proc/self/maps") as maps:
            lines = [line for line in maps if "openblas" in line.lower()]
    except OSError:
        return []
    return sorted({line.split(None, 5)[-1].strip() for line in lines if "/" in line})


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
