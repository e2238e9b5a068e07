"""The weight penalty kernel pair (penalty.pyx / penalty_numpy.py): the two agree, and agree
with the formula, on odd shapes, both dtypes, non-contiguous and wrong-dtype input."""
import numpy as np
import pytest

from _support import assert_close
from fastnn._kernels import CYTHON, NUMPY

pytestmark = [pytest.mark.backend_independent,
              pytest.mark.skipif(CYTHON is None, reason="compiled kernels not built")]

SHAPES = [(1, 1), (7, 13), (64, 100), (3, 5, 2), (100_003,)]  # the last runs threaded


def _oracle(W, grad, l1, l2):
    w = W.astype(np.float64)
    value = l1 * np.abs(w).sum() + 0.5 * l2 * (w * w).sum()
    out = None if grad is None else (grad + W.dtype.type(l2) * W) + W.dtype.type(l1) * np.sign(W)
    return value, out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l1,l2", [(0.0, 1e-3), (1e-2, 0.0), (1e-2, 0.5), (0.0, 0.0)])
def test_pair_agrees_with_the_formula(shape, dtype, l1, l2):
    rng = np.random.default_rng(sum(shape))
    W = rng.standard_normal(shape).astype(dtype)
    W.reshape(-1)[0] = 0.0  # sign(0) = 0
    grad = rng.standard_normal(shape).astype(dtype)
    value, expected = _oracle(W, grad, l1, l2)
    for kernels in (CYTHON, NUMPY):
        g = grad.copy()
        got = kernels.elastic_net(W, g, l1=l1, l2=l2)
        assert isinstance(got, float)
        assert got == pytest.approx(value, rel=1e-12, abs=1e-300)
        assert_close(g, expected)
        assert kernels.elastic_net(W, l1=l1, l2=l2) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_weights_and_special_values(dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((9, 14)).astype(dtype)
    W = base[:, ::2]
    grads = []
    for kernels in (CYTHON, NUMPY):
        g = np.ones(W.shape, dtype)
        assert kernels.elastic_net(W, g, l1=0.1, l2=0.2) == pytest.approx(
            _oracle(W, None, 0.1, 0.2)[0], rel=1e-12)
        grads.append(g)
    assert_close(grads[0], grads[1])
    W = np.array([[np.nan, np.inf, -np.inf, 0.0]], dtype)
    results = []
    for kernels in (CYTHON, NUMPY):
        g = np.zeros(W.shape, dtype)
        results.append((kernels.elastic_net(W, g, l1=1.0, l2=0.0), g))
    assert np.isnan(results[0][0]) and np.isnan(results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])  # NaN where W is NaN, as np.sign


@pytest.mark.parametrize("kernels", [CYTHON, NUMPY], ids=["cython", "numpy"])
def test_refuses_bad_arguments_naming_them(kernels):
    W = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="W must be a float32 or float64 array"):
        kernels.elastic_net(np.ones((3, 4), np.int64), l2=1.0)
    with pytest.raises(TypeError, match="W must be a float32 or float64 array"):
        kernels.elastic_net([[1.0]], l2=1.0)
    with pytest.raises(TypeError, match="grad must have dtype float32"):
        kernels.elastic_net(W, np.ones((3, 4)), l2=1.0)
    with pytest.raises(ValueError, match=r"grad must have shape \(3, 4\)"):
        kernels.elastic_net(W, np.ones((4, 3), np.float32), l2=1.0)
    with pytest.raises(ValueError, match="grad must be a writeable C-contiguous array"):
        kernels.elastic_net(W, np.ones((3, 8), np.float32)[:, ::2], l2=1.0)
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
            kernels.elastic_net(W, l2=bad)
    with pytest.raises(TypeError, match="l1 must be a real number"):
        kernels.elastic_net(W, l1="0.1")
