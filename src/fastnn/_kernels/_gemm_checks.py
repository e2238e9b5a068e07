"""Argument checks of the GEMM kernel pair (gemm.pyx, gemm_numpy.py), shared by both."""
import numpy as np

from ._checks import as_input, as_output, float_dtype


def matmul_args(A, B, out, trans_a, trans_b, accumulate, *, kernel="matmul", dtype=None):
    """(A, B, out) of matmul: A in its own float dtype (or any real A converted to `dtype`, when
    given), B converted to it, both 2-D and C-contiguous; out (rows of op(A), columns of op(B)),
    which accumulate needs given."""
    for name, flag in (("trans_a", trans_a), ("trans_b", trans_b), ("accumulate", accumulate)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{kernel}: {name} must be True or False, got {flag!r}")
    if dtype is None:
        dtype = float_dtype(kernel, "A", A)
    A = as_input(kernel, "A", A, dtype, 2)
    B = as_input(kernel, "B", B, dtype, 2)
    m, k = A.shape[::-1] if trans_a else A.shape
    k_b, n = B.shape[::-1] if trans_b else B.shape
    if k != k_b:
        raise ValueError(f"{kernel}: op(A) is {(m, k)} and op(B) is {(k_b, n)}: their inner "
                         "dimensions differ")
    if accumulate and out is None:
        raise ValueError(f"{kernel}: accumulate=True needs out, the array to add to")
    return A, B, as_output(kernel, "out", out, (m, n), dtype)
