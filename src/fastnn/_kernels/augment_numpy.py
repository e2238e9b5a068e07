"""NumPy twin of augment.pyx: the same function, signature and results, written as plain NumPy.

Shapes: X and out are (N, C*H*W), rows images in (channels, height, width) order; flips, dy, dx
are (N,).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._augment_checks import flip_crop_args

__all__ = ["flip_crop"]


def flip_crop(X, flips, dy, dx, *, image_shape, out=None):
    """Shift image k by (dy[k], dx[k]) with zeros shifted in, i.e. the crop of the zero-padded
    image at offset (p + dy, p + dx), then mirror its width when flips[k]: out[k, c, i, j] =
    X[k, c, i + dy, j' + dx] (zero outside the image), j' = W - 1 - j if flipped else j.
    out may be X itself. Returns out."""
    X, flips, dy, dx, (C, H, W), out = flip_crop_args(X, flips, dy, dx, image_shape, out)
    n = X.shape[0]
    p = int(max(np.abs(dy).max(), np.abs(dx).max())) if n else 0
    padded = np.zeros((n, C, H + 2 * p, W + 2 * p), X.dtype)
    padded[:, :, p:p + H, p:p + W] = X.reshape(n, C, H, W)
    # Every (H, W) window of each padded image, as a view; image k takes the one at
    # (p + dy_k, p + dx_k).
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))
    images = windows[np.arange(n), :, p + dy, p + dx]  # (n, C, H, W), a new array
    flipped = flips.astype(bool)
    if flipped.any():
        images[flipped] = images[flipped][..., ::-1]
    out.reshape(n, C, H, W)[...] = images
    return out
