"""Compute dtypes: the arithmetic a model's GEMMs run in ("float32", or "bfloat16" operands with
float32 accumulation; parameters, gradients, optimizer state, losses and BatchNorm stay
float32)."""
import warnings

import numpy as np

from . import _backend
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
    """Once per process: bfloat16 GEMMs run by emulation (float32 GEMMs of operands rounded to
    bfloat16), which is slower than float32."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("compute_dtype='bfloat16' runs by emulation (float32 GEMMs of operands "
                      "rounded to bfloat16; fastnn does not call a bfloat16 GEMM yet): the "
                      "numbers of bfloat16 hardware up to summation order, slower than float32",
                      RuntimeWarning, stacklevel=3)


def attach_copies(params, flat):
    """Give each parameter a bf16-valued float32 copy: views of one array shaped like `flat`
    (the model's flat parameter array, so that an optimizer's flat update writes all of them in
    its own pass), or one array each without it. Not yet written: each is marked stale."""
    # (flatten_parameters lays the parameters out in this order from the start of `flat`)
    store = None if flat is None or flat.size != sum(p.size for p in params) else \
        np.empty_like(flat)
    offset = 0
    for p in params:
        if store is not None:
            p._bf16 = store[offset:offset + p.size].reshape(p.shape)
        else:
            p._bf16 = np.empty_like(p._data)
        p._bf16_fresh = False
        offset += p.size


def detach_copies(params):
    for p in params:
        p._bf16, p._bf16_fresh = None, False


def refresh_copies(params, lock):
    """Before a bf16 forward: round into each parameter's copy the data it does not hold yet;
    a copy an optimizer wrote in its update (fresh) serves this one forward. Under `lock`: two
    inference threads write the same values, one at a time."""
    warn_emulated()
    with lock:
        for p in params:
            if p._bf16 is None or p._bf16.shape != p._data.shape:
                p._bf16 = np.empty_like(p._data)
                p._bf16_fresh = False
            if p._bf16_fresh:
                p._bf16_fresh = False
            else:
                _backend.kernels.round_bfloat16(p._data, out=p._bf16)
