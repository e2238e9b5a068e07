"""The row gather kernel pair (gather.pyx / gather_numpy.py) the Trainer builds minibatches
with: both give X[index], on odd shapes, every dtype a data set comes in, non-contiguous X and
wrong-dtype index, into a reused buffer, and refuse bad arguments naming them."""
import numpy as np
import pytest

from fastnn._kernels import CYTHON, NUMPY

pytestmark = [pytest.mark.backend_independent,
              pytest.mark.skipif(CYTHON is None, reason="compiled kernels not built")]
PAIR = [NUMPY, CYTHON]


@pytest.mark.parametrize("shape", [(1,), (7,), (1, 1), (1, 5), (13, 7), (1347, 64), (9, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8, bool])
@pytest.mark.parametrize("kernels", PAIR, ids=["numpy", "cython"])
def test_take_rows_is_fancy_indexing(shape, dtype, kernels):
    rng = np.random.default_rng(shape[0])
    X = (rng.standard_normal(shape) * 10).astype(dtype)
    for index in (rng.permutation(shape[0]), rng.integers(0, shape[0], 2 * shape[0] + 1),
                  np.array([], dtype=np.int64), np.array([shape[0] - 1, 0, shape[0] - 1])):
        got = kernels.take_rows(X, index)
        np.testing.assert_array_equal(got, X[index])
        assert got.dtype == X.dtype and got.shape == (len(index),) + X.shape[1:]
        out = np.full((len(index),) + X.shape[1:], 1, dtype=dtype)
        assert kernels.take_rows(X, index, out=out) is out
        np.testing.assert_array_equal(out, X[index])


@pytest.mark.parametrize("kernels", PAIR, ids=["numpy", "cython"])
def test_non_contiguous_data_and_other_integer_indices(kernels):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((40, 30))
    index32 = rng.integers(0, 20, 17).astype(np.int32)
    for X in (base[::2, 1::3], np.asfortranarray(base[:20]), base[:20, 5]):
        np.testing.assert_array_equal(kernels.take_rows(X, index32), X[index32])
    index = np.arange(40)[::-3]  # a strided index
    np.testing.assert_array_equal(kernels.take_rows(base, index), base[index])
    np.testing.assert_array_equal(kernels.take_rows(base, [3, 1, 2]), base[[3, 1, 2]])


@pytest.mark.parametrize("kernels", PAIR, ids=["numpy", "cython"])
@pytest.mark.parametrize("bad, error, words", [
    (dict(index=np.array([0, 5])), IndexError, "index"),
    (dict(index=np.array([-1])), IndexError, "index"),
    (dict(index=np.array([0.5])), TypeError, "index"),
    (dict(index=np.zeros((2, 1), dtype=np.int64)), TypeError, "index"),
    (dict(X=[[1.0, 2.0]]), TypeError, "X"),
    (dict(X=np.zeros((2, 2, 2))), TypeError, "X"),
    (dict(X=np.array(["a", "b"])), TypeError, "X"),
    (dict(out=np.zeros((2, 3), dtype=np.float32)), TypeError, "out"),
    (dict(out=np.zeros((3, 3))), ValueError, "out"),
    (dict(out=np.zeros((3, 2))[:, ::1].T), ValueError, "out"),
    (dict(out=np.zeros((2, 3)).T.copy().T), ValueError, "out"),
])
def test_bad_arguments_are_refused_and_named(kernels, bad, error, words):
    X = np.arange(15.0).reshape(5, 3)
    out = np.full((2, 3), -7.0)
    arguments = dict(X=X, index=np.array([4, 0]), out=out)
    arguments.update(bad)
    with pytest.raises(error, match=words):
        kernels.take_rows(**arguments)
    if "out" not in bad:
        np.testing.assert_array_equal(out, -7.0)  # nothing written before the refusal
