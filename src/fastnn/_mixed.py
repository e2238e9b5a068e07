"""Compute dtypes: the arithmetic a model's GEMMs run in ("float32", or "bfloat16" operands with
float32 accumulation; parameters, gradients, optimizer state, losses and BatchNorm stay
float32)."""
import warnings

from ._validation import check_choice

COMPUTE_DTYPES = ("float32", "bfloat16")
_warned = False


def check_compute_dtype(where, value, dtype):
    """`value` as one of COMPUTE_DTYPES (a str), refused for a float64 model with bfloat16."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: compute_dtype must be one of "
                        f"{', '.join(map(repr, COMPUTE_DTYPES))}, got {value!r}")
    value = check_choice(f"{where}: compute_dtype", value, COMPUTE_DTYPES)
    if value == "bfloat16" and dtype.name != "float32":
        raise ValueError(f"{where}: compute_dtype='bfloat16' needs dtype='float32' (the master "
                         f"parameters are float32), got dtype={dtype.name!r}")
    return value


def warn_emulated():
    """Once per process: bfloat16 GEMMs run by emulation on this CPU (float32 GEMMs of operands
    rounded to bfloat16), which is slower than float32."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("compute_dtype='bfloat16' runs by emulation here (no bfloat16 GEMM on "
                      "this CPU or without oneDNN): the same numbers as bfloat16 hardware up "
                      "to summation order, slower than float32", RuntimeWarning, stacklevel=3)
