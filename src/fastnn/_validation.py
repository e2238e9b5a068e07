"""Checks for user-facing arguments: each raises a ValueError or TypeError whose message names
the argument (`name`, e.g. "Trainer: batch_size") and what it accepts, and returns the value as a
plain Python int or float. NumPy scalars are accepted wherever Python numbers are; bool is not a
number here (True as a batch size is a mistake, not 1)."""
import math
import numbers
import os

import numpy as np


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _bounds(low, high, low_open=False, high_open=False):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return (" " + " and ".join(parts)) if parts else ""


def check_int(name, value, low=None, high=None):
    """`value` as an int in [low, high] (None: unbounded)."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{_bounds(low, high)}, got {value!r} "
                        f"({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_bounds(low, high)}, got {value!r}")
    return value


def check_float(name, value, low=None, high=None, finite=True, low_open=False,
                high_open=False):
    """`value` as a float in [low, high] (open ends with low_open/high_open); NaN is always
    refused, infinity unless finite=False."""
    kind = "a finite number" if finite else "a number"
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {kind}{_bounds(low, high, low_open, high_open)}, got "
                        f"{value!r} ({type(value).__name__})")
    value = float(value)
    bad = math.isnan(value) or (finite and math.isinf(value))
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        raise ValueError(f"{name} must be {kind}{_bounds(low, high, low_open, high_open)}, got "
                         f"{value!r}")
    return value


def check_bool(name, value):
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """`value` if it is one of `choices` (strings or other hashables)."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_path(name, value):
    """`value` as a str path: a str or os.PathLike, not empty, without NUL characters (bytes
    paths are refused: fastnn builds temporary names beside a path as text)."""
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a file system path (str or os.PathLike), got "
                        f"{type(value).__name__}")
    if not path or "\x00" in path:
        raise ValueError(f"{name} must be a non-empty path without NUL characters, got {path!r}")
    return path


# Labels, checked the same way by the loss kernels (both backends), Sequential and the Trainer.

def as_labels(kernel, y, n_samples, n_classes):
    """Integer class indices in [0, n_classes), one per sample, as an int64 array."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{kernel}: labels must have shape ({n_samples},), got {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.floor(y)):
            raise ValueError(f"{kernel}: labels must be integer class indices, got non-integer "
                             "values")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: labels must be integer class indices, got dtype {y.dtype}")
    if n_samples and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{kernel}: labels must lie in [0, {n_classes}), got values in "
                         f"[{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


def as_binary_labels(kernel, y, n_samples, negative):
    """Binary labels, one per sample, as float64 targets in {negative, 1}.

    Accepts {0, 1}; for negative=-1 also {-1, +1} (0 is then read as -1)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{kernel}: labels must have shape ({n_samples},), got {y.shape}")
    if y.dtype.kind not in "iufb":
        raise TypeError(f"{kernel}: labels must be numbers, got dtype {y.dtype}")
    y = y.astype(np.float64)
    allowed = (0.0, 1.0) if negative == 0 else (-1.0, 0.0, 1.0)
    if not np.all(np.isin(y, allowed)):
        raise ValueError(f"{kernel}: labels must be in {{{', '.join(f'{a:g}' for a in allowed)}}}")
    if negative != 0:
        # -1 and 0 together: two conventions mixed, the 0s' meaning is a guess
        if (y == -1.0).any() and (y == 0.0).any():
            raise ValueError(f"{kernel}: labels mix -1 and 0; use {{-1, +1}} or {{0, 1}}, not "
                             "both")
        y = np.where(y > 0, 1.0, -1.0)
    return np.ascontiguousarray(y)
