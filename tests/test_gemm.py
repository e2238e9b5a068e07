"""The GEMM kernel pair (fastnn._kernels.gemm and gemm_numpy): every matrix multiply fastnn makes.

Both implementations are called here directly, so the file is `backend_independent`.
"""
import numpy as np
import pytest

from fastnn import _kernels

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(C is None, reason="the compiled backend is not built"),
]

SHAPES = [(1, 1, 1), (7, 33, 1), (1, 7, 33), (33, 1000, 7), (1000, 7, 33), (3, 1, 5), (5, 3, 1)]


def operands(rng, m, k, n, dtype, trans_a, trans_b):
    """(a, b, op(a) @ op(b) in float64) with a, b stored as the transposes ask."""
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    a = np.ascontiguousarray(A.T if trans_a else A, dtype=dtype)
    b = np.ascontiguousarray(B.T if trans_b else B, dtype=dtype)
    return a, b, (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_pair_agrees(dtype, m, k, n, trans_a, trans_b, accumulate, rng):
    a, b, product = operands(rng, m, k, n, dtype, trans_a, trans_b)
    start = rng.standard_normal((m, n)).astype(dtype)
    expected = (product + start if accumulate else product).astype(dtype)
    results = []
    for kernels in (C, P):
        out = start.copy() if accumulate else np.full((m, n), np.nan, dtype)
        got = kernels.matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b,
                             accumulate=accumulate)
        assert got is out
        results.append(got)
    scale = float(np.abs(a).max() * np.abs(b).max() * k + np.abs(start).max())
    assert_close(results[0], expected, scale, rtol=10 * RTOL[np.dtype(dtype)])
    assert_close(results[0], results[1], scale, rtol=10 * RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_matmul_converts_inputs_and_allocates(kernels, rng):
    A = rng.standard_normal((9, 4))                            # float64 -> A's dtype
    B = np.asfortranarray(rng.standard_normal((4, 6)))         # Fortran order
    strided = rng.standard_normal((9, 8)).astype(np.float32)[:, ::2]  # not contiguous
    out = kernels.matmul(A, B)
    assert out.dtype == np.float64 and out.shape == (9, 6) and out.flags.c_contiguous
    assert_close(out, A @ B)
    out32 = kernels.matmul(strided, B.astype(np.int64))        # B converted to float32
    assert out32.dtype == np.float32
    assert_close(out32, (strided.astype(np.float64) @ B.astype(np.int64)).astype(np.float32))
    assert_close(kernels.matmul(strided, strided, trans_a=True),
                 (strided.T.astype(np.float64) @ strided).astype(np.float32))


@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_matmul_refuses_bad_arguments(kernels):
    A, B = np.ones((3, 4)), np.ones((4, 2))
    with pytest.raises(TypeError, match="A must be a float32 or float64 array"):
        kernels.matmul(np.ones((3, 4), dtype=np.int64), B)
    with pytest.raises(TypeError, match="B must hold real numbers"):
        kernels.matmul(A, np.ones((4, 2), dtype=complex))
    with pytest.raises(ValueError, match="inner dimensions"):
        kernels.matmul(A, B, trans_a=True)
    with pytest.raises(ValueError, match="A must be 2-D"):
        kernels.matmul(np.ones(3), B)
    with pytest.raises(TypeError, match="out must have dtype float64"):
        kernels.matmul(A, B, out=np.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 2\)"):
        kernels.matmul(A, B, out=np.empty((2, 3)))
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        kernels.matmul(A, B, out=np.empty((2, 3)).T)
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        kernels.matmul(A, B, accumulate=True)
    with pytest.raises(TypeError, match="trans_a must be True or False"):
        kernels.matmul(A, B, trans_a=1)


def test_empty_inner_dimension_gives_zeros_or_keeps_out():
    A, B = np.ones((3, 0)), np.ones((0, 2))
    for kernels in (C, P):
        assert np.array_equal(kernels.matmul(A, B, out=np.full((3, 2), np.nan)), np.zeros((3, 2)))
        assert np.array_equal(kernels.matmul(A, B, out=np.ones((3, 2)), accumulate=True),
                              np.ones((3, 2)))


def test_the_compiled_gemm_runs_on_numpys_blas_and_falls_back_to_matmul(rng):
    """Where NumPy's CBLAS GEMMs are found (Linux wheels) the core calls them; with none found,
    the compiled module still multiplies (through np.matmul), with the same results."""
    from fastnn._kernels import gemm
    found = gemm._find_gemms()
    if found is None:
        pytest.skip("NumPy's CBLAS GEMMs are not found on this platform")
    assert gemm.engine() == "openblas"
    a, b, product = operands(rng, 17, 9, 5, np.float32, True, False)
    with_blas = gemm.matmul(a, b, trans_a=True)
    try:
        assert not gemm._use_blas(None)
        assert gemm.engine() == "numpy"
        assert_close(gemm.matmul(a, b, trans_a=True), with_blas)
        out = with_blas.copy()
        gemm.matmul(a, b, out=out, trans_a=True, accumulate=True)
        assert_close(out, 2 * with_blas)
    finally:
        assert gemm._use_blas(found)
    assert gemm.engine() == "openblas"
