"""NumPy twin of gemm.pyx: every matrix multiply of the NumPy backend, with np.matmul."""
import numpy as np

from ._checks import as_output
from ._gemm_checks import matmul_args

__all__ = ["matmul"]


def matmul_into(A, trans_a, B, trans_b, C, accumulate):
    """C (+)= op(A) @ op(B) for checked arrays (gemm.pyx's matmul_into)."""
    a, b = (A.T if trans_a else A), (B.T if trans_b else B)
    if accumulate:
        C += np.matmul(a, b)
    else:
        np.matmul(a, b, out=C)


def weight_gradients(kernel, X, W, dZ, dW, db, dX, need_dX, accumulate):
    """The end of a dense or maxout backward, given dZ = dL/d(X @ W + b): dW (+)= X.T @ dZ, then
    dX = dZ @ W.T unless need_dX is False (dX is checked only then, after dW is written).
    Returns (dX or None, dW, db)."""
    matmul_into(X, True, dZ, False, dW, accumulate)
    if not need_dX:
        return None, dW, db
    dX = as_output(kernel, "dX", dX, (X.shape[0], W.shape[0]), dW.dtype)
    matmul_into(dZ, False, W, True, dX, False)
    return dX, dW, db


def matmul(A, B, *, out=None, trans_a=False, trans_b=False, accumulate=False):
    """out (+)= op(A) @ op(B), op transposing when trans_a / trans_b. Returns out.

    A and B are 2-D real arrays, converted to A's float dtype (float32 or float64) and C order
    when needed; out (op(A).shape[0], op(B).shape[1]) is allocated when None, else a writeable
    C-contiguous array of that dtype; accumulate adds to out (which must then be given).
    """
    A, B, out = matmul_args(A, B, out, trans_a, trans_b, accumulate)
    matmul_into(A, trans_a, B, trans_b, out, accumulate)
    return out
