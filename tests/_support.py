"""Helpers the test files share (import with `from _support import ...`; pytest puts tests/ on
sys.path)."""
import numpy as np

# Agreement expected between two computations of the same numbers in a dtype (e.g. a compiled
# kernel and its twin, which may sum in another order).
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def assert_close(actual, desired, scale=None, *, rtol=None, err_msg=""):
    """actual == desired: the same dtype and shape, and values within rtol (default: RTOL of the
    dtype) of each other plus an absolute rtol * scale (default scale: the largest |desired|), so
    that entries near zero are compared against the magnitude of the whole array."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == desired.dtype, f"dtype {actual.dtype} != {desired.dtype} {err_msg}"
    assert actual.shape == desired.shape, f"shape {actual.shape} != {desired.shape} {err_msg}"
    if rtol is None:
        rtol = RTOL[desired.dtype]
    if scale is None:
        scale = float(np.max(np.abs(desired), initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale + 1e-300,
                               err_msg=err_msg)
