"""Data augmentation for image-shaped inputs: random horizontal flips and random crops with
padding (the notes' "flips, random crops"), applied to whole batches by the Trainer.

    augment = fnn.augment.RandomFlipCrop(image_shape=(3, 32, 32), crop_padding=4, seed=0)
    fnn.Trainer(model, opt, augment=augment).fit(X, y)     # X: (N, 3072), CIFAR's layout
    Xa = augment(Xb)                                        # or on one batch yourself

Rows of X are images flattened in (channels, height, width) order, the layout CIFAR-10's
python batches and MNIST's files (one channel) come in. A random crop with padding p is the
image shifted by (dy, dx), each uniform in [-p, p], with zeros shifted in: the crop of the
image padded by p zeros on every side at offset (p + dy, p + dx). The flip mirrors the width
axis (after the crop). Labels are untouched.

The draws of a batch are a function of (seed, step) alone, step counting the batches augmented
since construction: the same seed gives the same augmented batches, and a resumed run (the
Trainer saves `step`) continues them. The work is one kernel call over the batch
(fastnn._kernels.augment.flip_crop, or its NumPy twin): no Python loop over samples.
"""
import numbers

import numpy as np

from . import _backend
from .layers import stream_seed

__all__ = ["RandomFlipCrop"]


def _check_shape(image_shape):
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) not in (2, 3) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
            for s in shape):
        raise ValueError(f"RandomFlipCrop: image_shape must be (channels, height, width) or "
                         f"(height, width) of positive integers, got {image_shape!r}")
    return tuple(int(s) for s in ((1,) + shape if len(shape) == 2 else shape))


class RandomFlipCrop:
    """Random horizontal flips (probability 0.5 each, when `flip`) and random crops with
    `crop_padding` pixels of zero padding (0: no crop) for batches of flattened images of
    `image_shape` = (channels, height, width) (or (height, width): one channel).

    __call__(X, out=None) -> the augmented batch (N, C*H*W), in X's dtype (float32 or float64;
    other real types become float64); `out` (C-contiguous, that shape and dtype; it may be X
    itself) receives it, else a new array is returned.
    """

    def __init__(self, image_shape, flip=True, crop_padding=4, seed=None):
        self.image_shape = _check_shape(image_shape)
        if not isinstance(flip, (bool, np.bool_)):
            raise TypeError(f"RandomFlipCrop: flip must be True or False, got {flip!r}")
        _, H, W = self.image_shape
        if (isinstance(crop_padding, bool) or not isinstance(crop_padding, numbers.Integral)
                or crop_padding < 0):
            raise ValueError(f"RandomFlipCrop: crop_padding must be a non-negative integer, got "
                             f"{crop_padding!r}")
        self.flip, self.crop_padding = bool(flip), int(crop_padding)
        self.seed = stream_seed(seed)
        self.step = 0

    @property
    def features(self):
        C, H, W = self.image_shape
        return C * H * W

    def get_state(self):
        """Where the stream of draws stands (JSON-able): the next batch uses (seed, step)."""
        return {"seed": self.seed, "step": self.step}

    def set_state(self, state):
        self.seed, self.step = stream_seed(state["seed"]), int(state["step"])

    def draws(self, n):
        """(flip (n,) bool, dy (n,), dx (n,)) of the next batch of n images (advances step)."""
        rng = np.random.default_rng([self.seed, self.step])
        self.step += 1
        p = self.crop_padding
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        shifts = rng.integers(-p, p + 1, size=(2, n)) if p else np.zeros((2, n), np.int64)
        return flips, shifts[0], shifts[1]

    def __call__(self, X, out=None):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.features or X.shape[0] == 0:
            raise ValueError(f"RandomFlipCrop: expected a batch of shape (N, {self.features}) "
                             f"(images of shape {self.image_shape} flattened), got {X.shape}")
        if X.dtype.kind not in "fiub":
            raise TypeError(f"RandomFlipCrop: X must hold real numbers, got dtype {X.dtype}")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if out is not None and (not isinstance(out, np.ndarray) or out.shape != X.shape
                                or out.dtype != X.dtype or not out.flags.c_contiguous
                                or not out.flags.writeable):
            raise ValueError(f"RandomFlipCrop: out must be a writeable C-contiguous {X.dtype} "
                             f"array of shape {X.shape}")
        flips, dy, dx = self.draws(X.shape[0])
        _, H, W = self.image_shape
        # (a shift by the image's size or more leaves only zeros, as one by exactly its size)
        np.clip(dy, -H, H, out=dy)
        np.clip(dx, -W, W, out=dx)
        return _backend.kernels.flip_crop(X, flips, dy, dx, image_shape=self.image_shape,
                                          out=out)

    def __repr__(self):
        return (f"RandomFlipCrop(image_shape={self.image_shape}, flip={self.flip}, "
                f"crop_padding={self.crop_padding})")
