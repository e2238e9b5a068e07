"""Argument checks of the augmentation kernel (augment.pyx, augment_numpy.py), shared by both."""
import numpy as np

from ._checks import as_input, as_output, float_dtype


# augment

def flip_crop_args(X, flips, dy, dx, image_shape, out):
    """(X, flips, dy, dx, (C, H, W), out) of flip_crop: X in its own float dtype, flips as uint8,
    the shifts as int64 vectors of the batch's length with |dy| <= H and |dx| <= W."""
    kernel = "flip_crop"
    dtype = float_dtype(kernel, "X", X)
    X = as_input(kernel, "X", X, dtype, 2)
    try:
        C, H, W = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{kernel}: image_shape must be (channels, height, width), got "
                         f"{image_shape!r}") from None
    if min(C, H, W) < 1 or X.shape[1] != C * H * W:
        raise ValueError(f"{kernel}: X must be (N, {C} * {H} * {W}) for image_shape "
                         f"{(C, H, W)}, got shape {X.shape}")
    n = X.shape[0]
    flips = np.asarray(flips)
    if flips.dtype not in (np.dtype(np.bool_), np.dtype(np.uint8)) or flips.shape != (n,):
        raise TypeError(f"{kernel}: flips must be a bool or uint8 vector of length {n}, got "
                        f"dtype {flips.dtype} and shape {flips.shape}")
    flips = np.ascontiguousarray(flips).view(np.uint8)
    shifts = []
    for name, shift, size in (("dy", dy, H), ("dx", dx, W)):
        shift = np.asarray(shift)
        if shift.dtype.kind not in "iu" or shift.shape != (n,):
            raise TypeError(f"{kernel}: {name} must be an integer vector of length {n}, got "
                            f"dtype {shift.dtype} and shape {shift.shape}")
        if n and (shift.min() < -size or shift.max() > size):
            raise ValueError(f"{kernel}: {name} must lie in [-{size}, {size}]")
        shifts.append(np.ascontiguousarray(shift, dtype=np.int64))
    out = as_output(kernel, "out", out, X.shape, dtype)
    return X, flips, shifts[0], shifts[1], (C, H, W), out
