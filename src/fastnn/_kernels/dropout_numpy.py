"""NumPy twin of dropout.pyx: the same functions, signatures and results, written as plain NumPy.

Shapes: X, out, dA, dX and mask are (N, D); mask is uint8, 1 where a unit is kept.
The keep decision of flat element i is the counter-based hash described in _checks.py, computed
here vectorized in wrapping uint64 arithmetic, so the masks equal the compiled kernel's bit for bit.
"""
import numpy as np

from .._hash import GOLDEN64, MIX64_M1, MIX64_M2
from ._dropout_checks import dropout_backward_args, dropout_forward_args

__all__ = ["dropout_forward", "dropout_backward"]


def _keep_mask(key, threshold, shape, mask):
    """mask = (mix64(key + i * GOLDEN64) >> 32) >= threshold for flat indices i, in place."""
    z = np.arange(mask.size, dtype=np.uint64)  # uint64 array arithmetic wraps mod 2**64
    z *= np.uint64(GOLDEN64)
    z += np.uint64(key)
    z ^= z >> np.uint64(30)
    z *= np.uint64(MIX64_M1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(MIX64_M2)
    z ^= z >> np.uint64(31)
    z >>= np.uint64(32)
    np.greater_equal(z.reshape(shape), np.uint64(threshold), out=mask.view(np.bool_))


def dropout_forward(X, *, p, key, out=None, mask=None):
    """Inverted dropout: out = X * mask / (1 - p), with a fresh mask drawn from `key`.

    X is (N, D); p is the probability of dropping a unit, in [0, 1); key (an integer in
    [0, 2**64), see _checks.dropout_key) selects the random stream. mask (N, D) uint8 gets 1 for
    kept units, 0 for dropped ones; the mask is made and applied in one pass. out may be X itself.
    Returns (out, mask).
    """
    X, out, mask, key, threshold, scale = dropout_forward_args(X, p, key, out, mask)
    _keep_mask(key, threshold, X.shape, mask)
    # x * (1 or 0), then * scale: the same bits as the compiled x * (scale or 0).
    np.multiply(X, mask, out=out)
    out *= X.dtype.type(scale)
    return out, mask


def dropout_backward(dA, mask, *, p, dX=None):
    """dX = dA * mask / (1 - p), the gradient of dropout_forward given its mask.

    dA and mask are (N, D); mask is uint8 or bool, nonzero where a unit was kept. dX may be dA
    itself. Returns dX.
    """
    dA, mask, dX, scale = dropout_backward_args(dA, mask, p, dX)
    np.multiply(dA, mask.astype(np.bool_), out=dX)
    dX *= dA.dtype.type(scale)
    return dX
