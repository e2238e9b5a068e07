"""The GEMM engine switch: which library runs the matrix multiplies of the compiled kernels.

"openblas" is NumPy's own BLAS (always there); "onednn" is oneDNN's matmul primitive, from the
optional `onednn` extra (fastnn._kernels.onednn loads it at run time); "auto" takes oneDNN where
it is expected to be faster, else OpenBLAS. The NumPy backend always multiplies with np.matmul:
there the setting is only recorded, for when the compiled kernels run again.
"""
import os

ENGINES = ("openblas", "onednn", "auto")

# "auto" takes oneDNN when its float32 matmul is one of its brgemm kernels ("brg:avx512_core",
# "brg:avx512_core_amx", ...): on AVX2-only CPUs oneDNN 3.2 runs its older "gemm:jit:f32",
# measured no faster than OpenBLAS at 1 thread and slower at 2. Calls below AUTO_MIN_WORK
# (m * n * k) stay on OpenBLAS, where oneDNN's per-call overhead would dominate.
AUTO_MIN_WORK = 1 << 21
_REPRESENTATIVE_SHAPE = (128, 512, 784)  # m, n, k: a batch of 128 through a 784-512 layer

_requested = "auto"
BF16_COMPUTE = "emulated"  # how compute_dtype="bfloat16" multiplies (gemm_engine_info)

_INSTALL_HINT = ("oneDNN is installed with fastnn's `onednn` extra: pip install "
                 "\"fastnn[onednn]\" (from a clone: pip install \".[onednn]\")")


def _onednn():
    """fastnn._kernels.onednn, or None when the compiled kernels are not built."""
    try:
        from ._kernels import onednn
    except ImportError:
        return None
    return onednn


def _onednn_loads():
    onednn = _onednn()
    return onednn is not None and onednn.load()


def _auto_prefers_onednn():
    if not _onednn_loads():
        return False
    implementation = _onednn().implementation(*_REPRESENTATIVE_SHAPE)
    return implementation is not None and implementation.startswith("brg:")


def set_gemm_engine(name):
    """Run the compiled kernels' matrix multiplies on `name`: "openblas", "onednn" or "auto".

    "auto" (the default, or the FASTNN_GEMM environment variable at import) takes oneDNN when it
    is installed and its float32 matmul on this CPU is a brgemm kernel (AVX-512 or AMX), for
    calls of at least AUTO_MIN_WORK multiply-adds; otherwise OpenBLAS. float64 multiplies stay on
    OpenBLAS (oneDNN has no float64 matmul on CPU). On the NumPy backend the choice is recorded
    but np.matmul runs.
    """
    global _requested
    if not isinstance(name, str) or name not in ENGINES:
        raise ValueError(f"set_gemm_engine: name must be one of {ENGINES}, got {name!r}")
    onednn = _onednn()
    if name == "onednn" and not _onednn_loads():
        why = onednn.load_error() if onednn is not None else "the compiled kernels are not built"
        raise ImportError(f"set_gemm_engine('onednn'): oneDNN could not be loaded ({why}); "
                          f"{_INSTALL_HINT}")
    use_onednn = name == "onednn" or (name == "auto" and _auto_prefers_onednn())
    if onednn is not None:
        if use_onednn:
            onednn.set_min_work(AUTO_MIN_WORK if name == "auto" else 0)
            onednn.enable()
        else:
            onednn.disable()
    _requested = name


def get_gemm_engine():
    """The engine the compiled matrix multiplies run on: "onednn" or "openblas" ("numpy" when
    the compiled kernels are not built or NumPy's BLAS was not found: np.matmul)."""
    onednn = _onednn()
    if onednn is None:
        return "numpy"
    if onednn.enabled():
        return "onednn"
    from ._kernels import gemm
    return gemm.engine()


def gemm_engine_info():
    """What runs fastnn's matrix multiplies, as a dict:

    engine: get_gemm_engine(); requested: the set_gemm_engine name ("auto" ...);
    onednn_version: e.g. "3.2.0", or None when oneDNN is not loaded; onednn_library: the path it
    was loaded from; onednn_isa: the instruction set oneDNN uses here ("avx2", "avx512_core",
    "avx512_core_amx", ...; ONEDNN_MAX_CPU_ISA caps it); onednn_implementation: oneDNN's name for
    its float32 matmul of a 128 x 784 by 784 x 512 product on this CPU (e.g. "brg:avx512_core",
    "gemm:jit:f32"), whether or not it is the engine in use; onednn_bf16_implementation: the same
    for bfloat16 operands with float32 accumulation, None where the CPU has no bf16 matmul;
    onednn_error: why oneDNN did not load (None when it did); bf16_compute: how a
    compute_dtype="bfloat16" model multiplies: "emulated" (float32 GEMMs of operands rounded to
    bfloat16; the layers do not call oneDNN's bfloat16 kernel yet, whatever the CPU).
    """
    onednn = _onednn()
    loaded = _onednn_loads()
    return {
        "engine": get_gemm_engine(),
        "requested": _requested,
        "onednn_version": onednn.version() if loaded else None,
        "onednn_library": onednn.library_path() if loaded else None,
        "onednn_isa": onednn.isa() if loaded else None,
        "onednn_implementation": onednn.implementation(*_REPRESENTATIVE_SHAPE) if loaded else None,
        "onednn_bf16_implementation": (onednn.implementation(*_REPRESENTATIVE_SHAPE, "bfloat16")
                                       if loaded else None),
        "onednn_error": None if loaded else (onednn.load_error() if onednn is not None else
                                             "the compiled kernels are not built"),
        "bf16_compute": BF16_COMPUTE,
    }


def _configure_from_environment():
    requested = os.environ.get("FASTNN_GEMM", "").strip().lower() or "auto"
    if requested not in ENGINES:
        raise ImportError(f"FASTNN_GEMM={requested!r} is not a fastnn GEMM engine; expected one "
                          f"of {ENGINES}")
    try:
        set_gemm_engine(requested)
    except ImportError as error:
        raise ImportError(f"FASTNN_GEMM=onednn: {error}") from None
