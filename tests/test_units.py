"""PReLU and Maxout: the compiled kernels against their NumPy twins, float64 gradient checks of
each kernel on the active backend, the layers in a Sequential (gradcheck, torch agreement) and
which of their parameters are weights.

Tests that call both implementations themselves (fastnn._kernels.CYTHON and .NUMPY) are marked
`backend_independent`; the others run once per backend. Tolerances: float32 1e-5 relative,
float64 1e-12, with an absolute floor of rtol times the sum of |terms| an entry adds up.
"""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _backend, _kernels
from fastnn.gradient_check import numerical_gradient, relative_error

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

both_backends = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(C is None, reason="the compiled backend is not built"),
]


def compares_backends(test):
    for mark in both_backends:
        test = mark(test)
    return test


DTYPES = (np.float32, np.float64)
FEATURES = (1, 7, 33, 1000)
BATCHES = (1, 3, 64)
PIECES = (2, 3, 5)
# Output units of a maxout layer for each input width (so that widths 1 and 1000 both appear).
UNITS = {1: 7, 7: 1, 33: 33, 1000: 3}


def prelu_inputs(rng, n, d, dtype):
    X = (2 * rng.standard_normal((n, d))).astype(dtype)
    a = rng.uniform(-0.5, 1.5, d).astype(dtype)
    dA = rng.standard_normal((n, d)).astype(dtype)
    return X, a, dA


def prelu_da_scale(dA, X):
    """Largest sum over rows of |dA * X| on the negative side: the magnitude da adds up."""
    terms = np.where(X > 0, 0.0, np.abs(dA.astype(np.float64) * X.astype(np.float64)))
    return float(terms.sum(axis=0).max(initial=0.0)) + 1e-30


def maxout_inputs(rng, n, k, m, pieces, dtype):
    X = rng.standard_normal((n, k)).astype(dtype)
    W = (rng.standard_normal((k, m * pieces)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(m * pieces).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    return X, W, b, dA


def maxout_reference(X, W, b, pieces):
    """Z = X @ W + b in float64 and the max / first argmax over each unit's pieces."""
    Z = X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    grouped = Z.reshape(Z.shape[0], -1, pieces)
    return Z, grouped.max(axis=2), grouped.argmax(axis=2)


def maxout_backward_scales(X, W, dA, argmax, pieces):
    """Magnitudes of maxout_backward's (dX, dW, db) entries: sums of |terms|."""
    n, m = dA.shape
    adZ = np.zeros((n, m * pieces))
    columns = np.arange(m) * pieces + argmax
    adZ[np.arange(n)[:, None], columns] = np.abs(dA.astype(np.float64))
    aX, aW = np.abs(X.astype(np.float64)), np.abs(W.astype(np.float64))
    return (float((adZ @ aW.T).max(initial=0)) + 1e-30,
            float((aX.T @ adZ).max(initial=0)) + 1e-30,
            float(adZ.sum(axis=0).max(initial=0)) + 1e-30)


def raised(call):
    """(exception type, message) of call(), or None when it returns."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the type is what we compare
        return type(error), str(error)
    return None


def assert_same_error(name, args, kwargs, expected):
    """Both backends raise `expected` with the same message."""
    results = []
    for kernels in (C, P):
        result = raised(lambda: getattr(kernels, name)(*args, **kwargs))
        assert result is not None, f"{kernels.name}.{name} did not raise"
        assert issubclass(result[0], expected), result
        results.append(result)
    assert results[0] == results[1]
    return results[0][1]


# ------------------------------------------------------------------------------------------------
# PReLU: compiled equals twin


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("d", FEATURES)
def test_prelu_forward_matches_twin_and_formula(rng, d, n, dtype):
    X, a, _ = prelu_inputs(rng, n, d, dtype)
    X[0, 0] = 0  # the boundary: a * 0 = 0 either way
    got, want = C.prelu_forward(X, a), P.prelu_forward(X, a)
    assert got.dtype == want.dtype == dtype and got.shape == (n, d)
    assert_close(got, want)
    X64 = X.astype(np.float64)
    formula = np.where(X64 > 0, X64, a.astype(np.float64) * X64)
    assert_close(got, formula.astype(dtype))


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("d", FEATURES)
def test_prelu_backward_matches_twin_and_formula(rng, d, n, dtype):
    X, a, dA = prelu_inputs(rng, n, d, dtype)
    X[0, 0] = 0  # the boundary takes the slope: dX = a * dA, da += dA * 0
    (dX_c, da_c), (dX_p, da_p) = C.prelu_backward(dA, X, a), P.prelu_backward(dA, X, a)
    assert da_c.dtype == da_p.dtype == dtype and da_c.shape == (d,)
    scale = prelu_da_scale(dA, X)
    assert_close(dX_c, dX_p)
    assert_close(da_c, da_p, scale=scale)
    X64, dA64 = X.astype(np.float64), dA.astype(np.float64)
    negative = X64 <= 0
    assert_close(dX_c, np.where(negative, a.astype(np.float64) * dA64, dA64).astype(dtype))
    assert_close(da_c, np.where(negative, dA64 * X64, 0).sum(axis=0).astype(dtype), scale=scale)


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_accumulate_adds_to_da_and_overwrites_dX(rng, dtype):
    X, a, dA = prelu_inputs(rng, 17, 33, dtype)
    da0 = rng.standard_normal(33).astype(dtype)
    scale = prelu_da_scale(dA, X) + float(np.abs(da0).max())
    for kernels in (C, P):
        fresh_dX, fresh_da = kernels.prelu_backward(dA, X, a)
        dX = np.full((17, 33), 7.0, dtype)
        da = da0.copy()
        out_dX, out_da = kernels.prelu_backward(dA, X, a, dX=dX, da=da, accumulate=True)
        assert out_dX is dX and out_da is da  # written in place
        np.testing.assert_array_equal(dX, fresh_dX)
        assert_close(da, (da0.astype(np.float64) + fresh_da).astype(dtype), scale=scale)
        # accumulate=False overwrites whatever da held
        da = np.full(33, 1e3, dtype)
        kernels.prelu_backward(dA, X, a, da=da)
        np.testing.assert_array_equal(da, fresh_da)


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_forward_in_place(rng, dtype):
    X, a, _ = prelu_inputs(rng, 5, 7, dtype)
    for kernels in (C, P):
        want = kernels.prelu_forward(X, a)
        buf = X.copy()
        assert kernels.prelu_forward(buf, a, out=buf) is buf
        np.testing.assert_array_equal(buf, want)


# ------------------------------------------------------------------------------------------------
# Maxout: compiled equals twin


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pieces", PIECES)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("k", FEATURES)
def test_maxout_forward_matches_twin_and_formula(rng, k, n, pieces, dtype):
    m = UNITS[k]
    X, W, b, _ = maxout_inputs(rng, n, k, m, pieces, dtype)
    out_c, arg_c = C.maxout_forward(X, W, b, pieces=pieces)
    out_p, arg_p = P.maxout_forward(X, W, b, pieces=pieces)
    assert out_c.shape == (n, m) and out_c.dtype == dtype
    assert arg_c.shape == (n, m) and arg_c.dtype == arg_p.dtype == np.uint8
    np.testing.assert_array_equal(arg_c, arg_p)  # bit-identical winners
    scale = float((np.abs(X.astype(np.float64)) @ np.abs(W.astype(np.float64))).max()
                  + np.abs(b).max())
    assert_close(out_c, out_p, scale=scale)
    _, ref_out, ref_arg = maxout_reference(X, W, b, pieces)
    assert_close(out_c, ref_out.astype(dtype), scale=scale)
    if dtype == np.float64:
        np.testing.assert_array_equal(arg_c, ref_arg)
    # out is the value of the recorded winning piece of the kernel's own Z
    Z = np.empty((n, m * pieces), dtype)
    C.maxout_forward(X, W, b, pieces=pieces, Z=Z)
    assert_close(Z, (X.astype(np.float64) @ W.astype(np.float64) + b).astype(dtype), scale=scale)
    np.testing.assert_array_equal(
        out_c, np.take_along_axis(Z.reshape(n, m, pieces), arg_c[:, :, None].astype(int), 2)[..., 0])


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pieces", PIECES)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("k", FEATURES)
def test_maxout_backward_matches_twin_and_formula(rng, k, n, pieces, dtype):
    m = UNITS[k]
    X, W, b, dA = maxout_inputs(rng, n, k, m, pieces, dtype)
    _, argmax = P.maxout_forward(X, W, b, pieces=pieces)
    scales = maxout_backward_scales(X, W, dA, argmax, pieces)
    got = C.maxout_backward(dA, X, W, argmax, pieces=pieces)
    want = P.maxout_backward(dA, X, W, argmax, pieces=pieces)
    # float64 reference: dZ holds dA at the winning piece of each unit
    dZ = np.zeros((n, m * pieces))
    dZ[np.arange(n)[:, None], np.arange(m) * pieces + argmax] = dA
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    reference = (dZ @ W64.T, X64.T @ dZ, dZ.sum(axis=0))
    for g, w, r, scale, shape in zip(got, want, reference, scales,
                                     [(n, k), (k, m * pieces), (m * pieces,)]):
        assert g.shape == w.shape == shape and g.dtype == w.dtype == dtype
        assert_close(g, w, scale=scale)
        assert_close(g, r.astype(dtype), scale=scale)
    # the routing buffer dZ itself
    dZ_c = np.empty((n, m * pieces), dtype)
    C.maxout_backward(dA, X, W, argmax, pieces=pieces, dZ=dZ_c)
    np.testing.assert_array_equal(dZ_c, dZ.astype(dtype))


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_accumulate_and_need_dX(rng, dtype):
    n, k, m, pieces = 9, 7, 4, 3
    X, W, b, dA = maxout_inputs(rng, n, k, m, pieces, dtype)
    _, argmax = P.maxout_forward(X, W, b, pieces=pieces)
    dW0 = rng.standard_normal((k, m * pieces)).astype(dtype)
    db0 = rng.standard_normal(m * pieces).astype(dtype)
    s_dX, s_dW, s_db = maxout_backward_scales(X, W, dA, argmax, pieces)
    for kernels in (C, P):
        fresh = kernels.maxout_backward(dA, X, W, argmax, pieces=pieces)
        dW, db = dW0.copy(), db0.copy()
        sentinel = np.full((n, k), 7.0, dtype)
        dX = sentinel.copy()
        result = kernels.maxout_backward(dA, X, W, argmax, pieces=pieces, dW=dW, db=db, dX=dX,
                                         need_dX=False, accumulate=True)
        assert result[0] is None and result[1] is dW and result[2] is db
        np.testing.assert_array_equal(dX, sentinel)  # left alone
        assert_close(dW, (dW0.astype(np.float64) + fresh[1]).astype(dtype),
                     scale=s_dW + float(np.abs(dW0).max()))
        assert_close(db, (db0.astype(np.float64) + fresh[2]).astype(dtype),
                     scale=s_db + float(np.abs(db0).max()))
        # accumulate with need_dX: dX is overwritten, not added to
        dX = sentinel.copy()
        kernels.maxout_backward(dA, X, W, argmax, pieces=pieces, dW=dW0.copy(), db=db0.copy(),
                                dX=dX, accumulate=True)
        np.testing.assert_array_equal(dX, fresh[0])
        # without accumulate, old contents are overwritten
        dW, db = np.full_like(dW0, 1e3), np.full_like(db0, 1e3)
        kernels.maxout_backward(dA, X, W, argmax, pieces=pieces, dW=dW, db=db)
        assert_close(dW, fresh[1], scale=s_dW)
        assert_close(db, fresh[2], scale=s_db)
    # a bad dX buffer is not even looked at when need_dX is False
    for kernels in (C, P):
        result = kernels.maxout_backward(dA, X, W, argmax, pieces=pieces,
                                         dX=np.zeros((1, 1), np.int8), need_dX=False)
        assert result[0] is None
    assert s_dX > 0


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_ties_go_to_the_first_piece(dtype):
    # Integer-valued inputs make X @ W + b exact, so ties are exact ties.
    X = np.array([[1, 2], [0, 0], [3, -1]], dtype=dtype)
    # unit 0: pieces (x0, x0, x1); unit 1: pieces (x1 - 5, x0 + x1, x0 + x1)
    W = np.array([[1, 1, 0, 0, 1, 1],
                  [0, 0, 1, 1, 1, 1]], dtype=dtype)
    b = np.array([0, 0, 0, -5, 0, 0], dtype=dtype)
    expected_out = np.array([[2, 3], [0, 0], [3, 2]], dtype=dtype)
    # row 0: unit 0 pieces (1, 1, 2) -> 2; unit 1 pieces (-3, 3, 3) -> first of the tie, 1
    # row 1: all zeros -> piece 0 for unit 0; unit 1 pieces (-5, 0, 0) -> 1
    # row 2: unit 0 pieces (3, 3, -1) -> 0; unit 1 pieces (-6, 2, 2) -> 1
    expected_arg = np.array([[2, 1], [0, 1], [0, 1]], dtype=np.uint8)
    dA = np.array([[1, 2], [3, 4], [5, 6]], dtype=dtype)
    expected_dZ = np.zeros((3, 6), dtype)
    for i in range(3):
        for j in range(2):
            expected_dZ[i, 3 * j + expected_arg[i, j]] = dA[i, j]
    for kernels in (C, P):
        out, arg = kernels.maxout_forward(X, W, b, pieces=3)
        np.testing.assert_array_equal(out, expected_out, err_msg=kernels.name)
        np.testing.assert_array_equal(arg, expected_arg, err_msg=kernels.name)
        dZ = np.empty((3, 6), dtype)
        _, dW, db = kernels.maxout_backward(dA, X, W, arg, pieces=3, dZ=dZ)
        np.testing.assert_array_equal(dZ, expected_dZ, err_msg=kernels.name)
        np.testing.assert_array_equal(db, expected_dZ.sum(axis=0))
        np.testing.assert_array_equal(dW, X.T @ expected_dZ)


@compares_backends
def test_maxout_nan_in_a_later_piece_propagates_alike():
    X, W, b = np.array([[1.0]]), np.array([[1.0, 1.0]]), np.array([0.0, np.nan])
    (out_c, arg_c), (out_p, arg_p) = (k.maxout_forward(X, W, b, pieces=2) for k in (C, P))
    assert np.isnan(out_p[0, 0]) and arg_p[0, 0] == 1
    np.testing.assert_array_equal(out_c, out_p)
    np.testing.assert_array_equal(arg_c, arg_p)


@compares_backends
def test_nan_and_inf_elsewhere_propagate_alike():
    X = np.array([[np.nan, -np.inf, np.inf, -0.0, 2.0]])
    a = np.full(5, 0.5)
    for kernels in (C, P):
        np.testing.assert_array_equal(kernels.prelu_forward(X, a), [[np.nan, -np.inf, np.inf, 0.0,
                                                                      2.0]])
        dX, da = kernels.prelu_backward(np.ones((1, 5)), X, a)
        np.testing.assert_array_equal(dX, [[0.5, 0.5, 1.0, 0.5, 1.0]])
        np.testing.assert_array_equal(da, [np.nan, -np.inf, 0.0, 0.0, 0.0])
    for b in ([np.nan, 0.0], [0.0, np.inf], [-np.inf, -np.inf]):
        results = [k.maxout_forward(np.ones((1, 1)), np.ones((1, 2)), np.array(b), pieces=2)
                   for k in (C, P)]
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])


# ------------------------------------------------------------------------------------------------
# Layouts and dtypes of IN arrays


def _strided(a, rng):
    big = rng.standard_normal(tuple(2 * s + 1 for s in a.shape)).astype(a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def _transposed(a):
    return np.ascontiguousarray(a.T).T if a.ndim == 2 else a


@compares_backends
@pytest.mark.parametrize("layout", ["strided", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_give_the_same_results(rng, layout, dtype):
    X, a, dA = prelu_inputs(rng, 6, 5, dtype)
    Xm, W, b, dAm = maxout_inputs(rng, 6, 5, 4, 3, dtype)
    _, argmax = P.maxout_forward(Xm, W, b, pieces=3)

    def odd(v):
        return _strided(v, rng) if layout == "strided" else _transposed(v)

    cases = [
        ("prelu_forward", (X, a), {}),
        ("prelu_backward", (dA, X, a), {}),
        ("maxout_forward", (Xm, W, b), dict(pieces=3)),
        ("maxout_backward", (dAm, Xm, W, argmax), dict(pieces=3)),
    ]
    for name, args, kwargs in cases:
        odd_args = tuple(odd(v) for v in args)
        assert any(not v.flags.c_contiguous for v in odd_args)
        for kernels in (C, P):
            kernel = getattr(kernels, name)
            want = kernel(*args, **kwargs)
            got = kernel(*odd_args, **kwargs)
            want = want if isinstance(want, tuple) else (want,)
            got = got if isinstance(got, tuple) else (got,)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w, err_msg=f"{kernels.name}.{name}")


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_other_dtype_inputs_are_converted_to_the_parameter_dtype(rng, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    X, a, dA = prelu_inputs(rng, 4, 6, dtype)
    Xi = rng.integers(-3, 4, (4, 6))
    for kernels in (C, P):
        # the kernel dtype is the slopes' (PReLU) or W's (Maxout); X and dA follow
        out = kernels.prelu_forward(X.astype(other), a)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, kernels.prelu_forward(X.astype(other).astype(dtype), a))
        np.testing.assert_array_equal(kernels.prelu_forward(Xi, a),
                                      kernels.prelu_forward(Xi.astype(dtype), a))
        dX, da = kernels.prelu_backward(dA.astype(other), Xi, a)
        want = kernels.prelu_backward(dA.astype(other).astype(dtype), Xi.astype(dtype), a)
        assert dX.dtype == da.dtype == dtype
        np.testing.assert_array_equal(dX, want[0])
        np.testing.assert_array_equal(da, want[1])
        # a bool X reads as 0/1
        Xb = Xi > 0
        np.testing.assert_array_equal(kernels.prelu_forward(Xb, a), Xb.astype(dtype))
    Xm, W, b, dAm = maxout_inputs(rng, 4, 6, 2, 3, dtype)
    for kernels in (C, P):
        out, arg = kernels.maxout_forward(Xi, W, b.astype(other), pieces=3)
        want_out, want_arg = kernels.maxout_forward(Xi.astype(dtype), W, b.astype(other)
                                                    .astype(dtype), pieces=3)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(arg, want_arg)
        # argmax of another integer dtype is converted to uint8
        got = kernels.maxout_backward(dAm.astype(other), Xi, W, arg.astype(np.int64), pieces=3)
        want = kernels.maxout_backward(dAm.astype(other).astype(dtype), Xi.astype(dtype), W, arg,
                                       pieces=3)
        for g, w in zip(got, want):
            assert g.dtype == dtype
            np.testing.assert_array_equal(g, w)


@compares_backends
def test_non_float_parameters_and_non_numeric_inputs_are_rejected():
    X, a = np.ones((2, 3)), np.ones(3)
    W, b = np.ones((3, 4)), np.zeros(4)
    argmax = np.zeros((2, 2), np.uint8)
    cases = [
        ("prelu_forward", (X, a.astype(np.int64)), {}, TypeError),
        ("prelu_forward", (X, a.tolist()), {}, TypeError),
        ("prelu_forward", (X, a.astype(np.float16)), {}, TypeError),
        ("prelu_forward", (X.astype(np.complex128), a), {}, TypeError),
        ("prelu_forward", (X.astype(str), a), {}, TypeError),
        ("prelu_backward", (X, X, a.astype(np.int32)), {}, TypeError),
        ("prelu_backward", (X.astype(np.complex64), X, a), {}, TypeError),
        ("maxout_forward", (X, W.astype(np.int64), b), dict(pieces=2), TypeError),
        ("maxout_forward", (X, W.tolist(), b), dict(pieces=2), TypeError),
        ("maxout_forward", (X.astype(np.complex128), W, b), dict(pieces=2), TypeError),
        ("maxout_backward", (np.ones((2, 2)), X, W.astype(np.int64), argmax), dict(pieces=2),
         TypeError),
        ("maxout_backward", (np.ones((2, 2)), X, W, argmax.astype(np.complex64)), dict(pieces=2),
         TypeError),
    ]
    for name, args, kwargs, error in cases:
        assert_same_error(name, args, kwargs, error)


@compares_backends
def test_shape_mismatches_raise_the_same_error():
    X, a = np.ones((2, 3)), np.ones(3)
    W, b = np.ones((3, 4)), np.zeros(4)
    argmax = np.zeros((2, 2), np.uint8)
    dA = np.ones((2, 2))
    cases = [
        ("prelu_forward", (X, np.ones(4)), {}),
        ("prelu_forward", (X, np.ones((1, 3))), {}),
        ("prelu_forward", (np.ones(3), a), {}),
        ("prelu_backward", (np.ones((2, 4)), X, a), {}),
        ("prelu_backward", (X, X, np.ones(2)), {}),
        ("maxout_forward", (np.ones((2, 4)), W, b), dict(pieces=2)),
        ("maxout_forward", (X, W, np.zeros(3)), dict(pieces=2)),
        ("maxout_forward", (X, np.ones(4), b), dict(pieces=2)),
        ("maxout_backward", (np.ones((2, 3)), X, W, argmax), dict(pieces=2)),
        ("maxout_backward", (dA, X, W, np.zeros((3, 2), np.uint8)), dict(pieces=2)),
        ("maxout_backward", (dA, np.ones((2, 5)), W, argmax), dict(pieces=2)),
        ("maxout_backward", (dA, X, W, np.zeros(4, np.uint8)), dict(pieces=2)),
    ]
    for name, args, kwargs in cases:
        assert_same_error(name, args, kwargs, ValueError)


# ------------------------------------------------------------------------------------------------
# OUT buffers and pieces/argmax validation

# (kernel, buffer name, shape of the valid buffer, dtype of the valid buffer or None for the
# kernel's); the inputs are prelu: X (2, 3); maxout: X (2, 3), W (3, 6), pieces 3 -> 2 units.
OUT_BUFFERS = [
    ("prelu_forward", "out", (2, 3), None),
    ("prelu_backward", "dX", (2, 3), None),
    ("prelu_backward", "da", (3,), None),
    ("maxout_forward", "Z", (2, 6), None),
    ("maxout_forward", "out", (2, 2), None),
    ("maxout_forward", "argmax", (2, 2), np.uint8),
    ("maxout_backward", "dZ", (2, 6), None),
    ("maxout_backward", "dW", (3, 6), None),
    ("maxout_backward", "db", (6,), None),
    ("maxout_backward", "dX", (2, 3), None),
]
BAD_KINDS = ["wrong_dtype", "list", "wrong_shape", "wrong_ndim", "non_contiguous", "read_only"]


def _kernel_args(name, dtype):
    X = np.linspace(-1, 1, 6).reshape(2, 3).astype(dtype)
    W = np.linspace(-2, 2, 18).reshape(3, 6).astype(dtype)
    if name.startswith("prelu"):
        a = np.full(3, 0.25, dtype)
        return ((X, a), {}) if name == "prelu_forward" else ((X.copy(), X, a), {})
    b = np.zeros(6, dtype)
    if name == "maxout_forward":
        return (X, W, b), dict(pieces=3)
    return (np.ones((2, 2), dtype), X, W, np.array([[0, 1], [2, 0]], np.uint8)), dict(pieces=3)


def _bad_buffer(kind, shape, dtype):
    if kind == "wrong_dtype":
        other = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.float32,
                 np.dtype(np.uint8): np.int64}[np.dtype(dtype)]
        return np.zeros(shape, other), TypeError
    if kind == "list":
        return np.zeros(shape, dtype).tolist(), TypeError
    if kind == "wrong_shape":
        return np.zeros(tuple(s + 1 for s in shape), dtype), ValueError
    if kind == "wrong_ndim":
        return np.zeros(shape + (1,), dtype), ValueError
    if kind == "non_contiguous":
        big = np.zeros(tuple(2 * s for s in shape), dtype)
        return big[tuple(slice(None, None, 2) for _ in shape)], ValueError
    if kind == "read_only":
        buf = np.zeros(shape, dtype)
        buf.flags.writeable = False
        return buf, ValueError
    raise AssertionError(kind)


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name,buffer,shape,buffer_dtype", OUT_BUFFERS,
                         ids=[f"{n}-{b}" for n, b, _, _ in OUT_BUFFERS])
def test_bad_out_buffers_raise_the_same_error(name, buffer, shape, buffer_dtype, kind, dtype):
    args, kwargs = _kernel_args(name, dtype)
    bad, error = _bad_buffer(kind, shape, buffer_dtype or dtype)
    message = assert_same_error(name, args, dict(kwargs, **{buffer: bad}), error)
    assert buffer in message
    # and the valid buffer is accepted and written in place by both
    for kernels in (C, P):
        good = np.full(shape, 99, buffer_dtype or dtype)
        result = getattr(kernels, name)(*args, **dict(kwargs, **{buffer: good}))
        result = result if isinstance(result, tuple) else (result,)
        if buffer not in ("Z", "dZ"):  # work buffers are not returned
            assert any(r is good for r in result)
        assert not np.all(good == 99)


@compares_backends
@pytest.mark.parametrize("pieces", [1, 0, -2, 256, 1000, 4, 2.0, True, "3", None])
def test_bad_pieces_raise_the_same_error(pieces):
    # W has 6 columns: 4 does not divide them; 1, 0, -2, 256, 1000 are out of [2, 255]; 2.0, True,
    # "3" and None are not integers.
    X, W, b = np.ones((2, 3)), np.ones((3, 6)), np.zeros(6)
    message = assert_same_error("maxout_forward", (X, W, b), dict(pieces=pieces), ValueError)
    assert "pieces" in message
    message = assert_same_error("maxout_backward",
                                (np.ones((2, 3)), X, W, np.zeros((2, 3), np.uint8)),
                                dict(pieces=pieces), ValueError)
    assert "pieces" in message


@compares_backends
def test_pieces_at_the_limits_are_accepted():
    rng = np.random.default_rng(3)
    for pieces in (2, 255):
        X, W, b, dA = maxout_inputs(rng, 3, 4, 2, pieces, np.float64)
        for kernels in (C, P):
            out, arg = kernels.maxout_forward(X, W, b, pieces=pieces)
            _, ref_out, ref_arg = maxout_reference(X, W, b, pieces)
            np.testing.assert_allclose(out, ref_out, rtol=1e-12)
            np.testing.assert_array_equal(arg, ref_arg)
            assert kernels.maxout_backward(dA, X, W, arg, pieces=np.int64(pieces))[1].shape == (
                4, 2 * pieces)


@compares_backends
@pytest.mark.parametrize("value", [3, 4, 255])
def test_argmax_at_or_above_pieces_is_rejected(value):
    X, W = np.ones((2, 3)), np.ones((3, 6))
    argmax = np.array([[0, 1], [2, value]], np.uint8)
    message = assert_same_error("maxout_backward", (np.ones((2, 2)), X, W, argmax),
                                dict(pieces=3), ValueError)
    assert "argmax" in message
    # the same array with the last value in range is accepted
    argmax[1, 1] = 2
    for kernels in (C, P):
        kernels.maxout_backward(np.ones((2, 2)), X, W, argmax, pieces=3)


@compares_backends
def test_out_of_range_integer_argmax_is_rejected_not_wrapped():
    for kernels in (C, P):
        with pytest.raises(ValueError, match="argmax"):
            kernels.maxout_backward(np.ones((1, 1)), np.ones((1, 2)), np.ones((2, 2)),
                                    np.array([[256]]), pieces=2)


@compares_backends
def test_accumulate_without_a_buffer_is_not_uninitialized_memory():
    X, a, dA = -np.ones((2, 12)), np.ones(12), np.ones((2, 12))
    Xm, W, argmax = np.ones((2, 3)), np.ones((3, 12)), np.zeros((2, 6), np.uint8)
    for kernels in (C, P):
        for _ in range(3):
            junk = [np.full(12, 1e30) for _ in range(20)] + [np.full((3, 12), 1e30)
                                                             for _ in range(20)]
            del junk
            _, da = kernels.prelu_backward(dA, X, a, accumulate=True)
            np.testing.assert_array_equal(da, np.full(12, -2.0))
            junk = [np.full(12, 1e30) for _ in range(20)] + [np.full((3, 12), 1e30)
                                                             for _ in range(20)]
            del junk
            _, dW, db = kernels.maxout_backward(np.ones((2, 6)), Xm, W, argmax, pieces=2,
                                                accumulate=True)
            np.testing.assert_array_equal(db, np.tile([2.0, 0.0], 6))
            np.testing.assert_array_equal(dW, np.tile([2.0, 0.0], (3, 6)))


# ------------------------------------------------------------------------------------------------
# Thread counts: shapes above the parallel threshold (N * width >= 65536)


@pytest.fixture
def restore_threads():
    previous = fnn.get_num_threads()
    yield
    fnn.set_num_threads(previous)
    assert fnn.get_num_threads() == previous


def _per_thread_count(run):
    results = {}
    for threads in (1, 2):
        fnn.set_num_threads(threads)
        if fnn.openmp_enabled():
            assert _kernels.parallel.get_num_threads() == threads
        results[threads] = run()
    return results


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_prelu(rng, restore_threads, dtype):
    n, d = 256, 257
    assert n * d >= 65536
    X, a, dA = prelu_inputs(rng, n, d, dtype)
    da0 = rng.standard_normal(d).astype(dtype)
    want_out = P.prelu_forward(X, a)
    want_dX, want_da = P.prelu_backward(dA, X, a)
    want_acc = P.prelu_backward(dA, X, a, da=da0.copy(), accumulate=True)[1]
    scale = prelu_da_scale(dA, X)

    def run():
        out = C.prelu_forward(X, a)
        dX, da = C.prelu_backward(dA, X, a)
        acc = C.prelu_backward(dA, X, a, da=da0.copy(), accumulate=True)[1]
        return out, dX, da, acc

    results = _per_thread_count(run)
    for out, dX, da, acc in results.values():
        assert_close(out, want_out)
        assert_close(dX, want_dX)
        assert_close(da, want_da, scale=scale)
        assert_close(acc, want_acc, scale=scale + float(np.abs(da0).max()))
    one, two = results[1], results[2]
    np.testing.assert_array_equal(one[0], two[0])  # rows are independent: bitwise equal
    np.testing.assert_array_equal(one[1], two[1])
    assert_close(one[2], two[2], scale=scale)


@compares_backends
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_maxout(rng, restore_threads, dtype):
    n, k, m, pieces = 300, 33, 100, 3
    assert n * m * pieces >= 65536
    X, W, b, dA = maxout_inputs(rng, n, k, m, pieces, dtype)
    want_out, want_arg = P.maxout_forward(X, W, b, pieces=pieces)
    want_bwd = P.maxout_backward(dA, X, W, want_arg, pieces=pieces)
    db0 = rng.standard_normal(m * pieces).astype(dtype)
    want_acc = P.maxout_backward(dA, X, W, want_arg, pieces=pieces, db=db0.copy(),
                                 dW=np.zeros_like(W), accumulate=True)[2]
    scales = maxout_backward_scales(X, W, dA, want_arg, pieces)

    def run():
        out, arg = C.maxout_forward(X, W, b, pieces=pieces)
        bwd = C.maxout_backward(dA, X, W, arg, pieces=pieces)
        acc = C.maxout_backward(dA, X, W, arg, pieces=pieces, db=db0.copy(), dW=np.zeros_like(W),
                                accumulate=True)[2]
        return out, arg, bwd, acc

    results = _per_thread_count(run)
    for out, arg, bwd, acc in results.values():
        np.testing.assert_array_equal(arg, want_arg)
        assert_close(out, want_out)
        for g, w, scale in zip(bwd, want_bwd, scales):
            assert_close(g, w, scale=scale)
        assert_close(acc, want_acc, scale=scales[2] + float(np.abs(db0).max()))
    one, two = results[1], results[2]
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2][0], two[2][0])  # dX = dZ @ W.T, dZ bitwise equal
    assert_close(one[2][2], two[2][2], scale=scales[2])


# ------------------------------------------------------------------------------------------------
# Float64 gradient checks of the kernels on the active backend


def test_prelu_kernel_gradients_match_centered_differences(rng, backend):
    kernels = _backend.kernels
    assert kernels.name == backend
    n, d = 6, 5
    # inputs at least 0.1 away from the kink at 0, both signs in every column
    X = rng.uniform(0.1, 2.0, (n, d)) * np.where(np.arange(n)[:, None] % 2 == 0, 1.0, -1.0)
    X = X * rng.choice([-1.0, 1.0], size=(1, d))
    a = rng.uniform(-0.5, 1.5, d)
    df = rng.standard_normal((n, d))
    dX, da = kernels.prelu_backward(df, X, a)
    num_dX = numerical_gradient(lambda _: kernels.prelu_forward(X, a), X, df)
    num_da = numerical_gradient(lambda _: kernels.prelu_forward(X, a), a, df)
    assert relative_error(dX, num_dX) < 1e-7
    assert relative_error(da, num_da) < 1e-7
    assert np.all(np.abs(da) > 1e-3)  # every slope had negative inputs, so this checks something


def _separated_maxout(rng, n, k, m, pieces, gap=1e-3):
    """Float64 maxout inputs whose winning piece beats the runner-up by > gap everywhere."""
    X, W, b, dA = maxout_inputs(rng, n, k, m, pieces, np.float64)
    Z, _, argmax = maxout_reference(X, W, b, pieces)
    top2 = np.sort(Z.reshape(n, m, pieces), axis=2)[:, :, -2:]
    assert np.min(top2[:, :, 1] - top2[:, :, 0]) > gap
    assert len(np.unique(argmax)) == pieces  # every piece wins somewhere
    return X, W, b, dA


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_kernel_gradients_match_centered_differences(pieces, backend):
    kernels = _backend.kernels
    assert kernels.name == backend
    rng = np.random.default_rng(7)
    X, W, b, df = _separated_maxout(rng, 5, 4, 3, pieces)

    def forward(_):
        return kernels.maxout_forward(X, W, b, pieces=pieces)[0]

    _, argmax = kernels.maxout_forward(X, W, b, pieces=pieces)
    dX, dW, db = kernels.maxout_backward(df, X, W, argmax, pieces=pieces)
    for analytic, x in ((dX, X), (dW, W), (db, b)):
        numeric = numerical_gradient(forward, x, df)
        assert relative_error(analytic, numeric) < 1e-7
    # every loser column of dW and db is exactly zero: gradient goes to the winner only
    winners = np.zeros(3 * pieces, bool)
    winners[(np.arange(3) * pieces + argmax).ravel()] = True
    assert np.all(db[~winners] == 0) and np.all(dW[:, ~winners] == 0)


# ------------------------------------------------------------------------------------------------
# Layers


def test_prelu_and_maxout_models_pass_gradcheck(rng, backend):
    X = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)
    for net in (
            fnn.Sequential(fnn.Dense(5, 6), fnn.PReLU(6), fnn.Dense(6, 3), dtype="float64",
                           seed=0),
            fnn.Sequential(fnn.Maxout(5, 4, pieces=3), fnn.Dense(4, 3), dtype="float64", seed=0),
            fnn.Sequential(fnn.Dense(5, 6), fnn.PReLU(6), fnn.Maxout(6, 4, pieces=2),
                           fnn.Dense(4, 3), dtype="float64", seed=1)):
        result = fnn.gradcheck(net, X, y, num_checks=10)
        assert result.has_kinks  # PReLU and Maxout are kinked
        assert result.kinks_crossed == []
        assert result.verdict == "good", str(result)
        assert set(result.errors) == {f"layer {i} {type(layer).__name__}.{p.name}"
                                      for i, layer in enumerate(net.layers)
                                      for p in layer.parameters()}


def test_gradcheck_of_single_prelu_and_maxout_layers(rng, backend):
    X = rng.uniform(0.2, 1.5, (6, 4)) * rng.choice([-1.0, 1.0], (6, 4))
    layer = fnn.PReLU(4, init=0.3, dtype="float64")
    assert fnn.gradcheck(layer, X, num_checks=4).verdict == "good"
    layer = fnn.Maxout(4, 3, pieces=3, dtype="float64", seed=2)
    assert fnn.gradcheck(layer, X, num_checks=10).verdict == "good"


def test_prelu_layer_values_gradients_and_accumulation(rng, backend):
    layer = fnn.PReLU(3, init=0.25, dtype="float64")
    assert layer.a.data.tolist() == [0.25, 0.25, 0.25]
    X = np.array([[1.0, -2.0, 0.0], [-4.0, 3.0, -1.0]])
    np.testing.assert_array_equal(layer(X), [[1.0, -0.5, 0.0], [-1.0, 3.0, -0.25]])
    dA = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    layer.zero_grad()
    dX = layer.backward(dA)
    np.testing.assert_array_equal(dX, [[1.0, 0.5, 0.75], [1.0, 5.0, 1.5]])
    # da_j = sum over rows of dA * X where X <= 0
    np.testing.assert_array_equal(layer.a.grad, [-16.0, -4.0, -6.0])
    assert layer.backward(dA, need_dX=False) is None
    np.testing.assert_array_equal(layer.a.grad, [-32.0, -8.0, -12.0])  # accumulated
    layer.zero_grad()
    layer.backward(dA)
    np.testing.assert_array_equal(layer.a.grad, [-16.0, -4.0, -6.0])


def test_maxout_layer_shapes_and_routing(rng, backend):
    layer = fnn.Maxout(4, 3, pieces=2, dtype="float64", seed=0)
    assert layer.W.shape == (4, 6) and layer.b.shape == (6,)
    X = rng.standard_normal((5, 4))
    out = layer(X)
    Z = X @ layer.W.data + layer.b.data
    np.testing.assert_allclose(out, Z.reshape(5, 3, 2).max(axis=2), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(layer.kink_pattern(), Z.reshape(5, 3, 2).argmax(axis=2))
    dA = rng.standard_normal((5, 3))
    layer.zero_grad()
    dX = layer.backward(dA)
    assert dX.shape == (5, 4)
    np.testing.assert_allclose(layer.b.grad.reshape(3, 2).sum(axis=1), dA.sum(axis=0),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="pieces"):
        fnn.Maxout(4, 3, pieces=1)
    with pytest.raises(ValueError, match="pieces"):
        fnn.Maxout(4, 3, pieces=256)
    with pytest.raises(ValueError, match="num_features"):
        fnn.PReLU(0)


def test_slopes_and_maxout_biases_are_not_weights():
    prelu, maxout = fnn.PReLU(4), fnn.Maxout(3, 2, pieces=3)
    assert [(p.name, p.is_weight) for p in prelu.parameters()] == [("a", False)]
    assert [(p.name, p.is_weight) for p in maxout.parameters()] == [("W", True), ("b", False)]
    assert fnn.regularization.weights(prelu) == []
    assert fnn.regularization.weights(maxout) == [maxout.W]
    net = fnn.Sequential(fnn.Dense(3, 4), fnn.PReLU(4), fnn.Maxout(4, 2), seed=0)
    assert fnn.regularization.weights(net) == [net.layers[0].W, net.layers[2].W]
    assert all(p.is_weight == (p.name == "W") for p in net.parameters())


# ------------------------------------------------------------------------------------------------
# Against torch


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prelu_matches_torch(rng, dtype, backend):
    torch = pytest.importorskip("torch")
    n, d = 9, 7
    X = (2 * rng.standard_normal((n, d))).astype(dtype)
    dA = rng.standard_normal((n, d)).astype(dtype)
    layer = fnn.PReLU(d, dtype=dtype)
    layer.a.data[...] = rng.uniform(-0.5, 1.0, d)
    ref = torch.nn.PReLU(num_parameters=d).to(getattr(torch, dtype))
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.a.data.copy()))
    x = torch.tensor(X, requires_grad=True)
    out = ref(x)
    out.backward(torch.from_numpy(dA))
    got = layer(X)
    layer.zero_grad()
    dX = layer.backward(dA)
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(got, out.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dX, x.grad.numpy(), rtol=rtol, atol=rtol)
    scale = float(np.abs(dA * X).sum(axis=0).max())
    np.testing.assert_allclose(layer.a.grad, ref.weight.grad.numpy(), rtol=rtol,
                               atol=10 * rtol * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_maxout_matches_hand_written_torch(rng, dtype, backend):
    torch = pytest.importorskip("torch")
    n, k, m, pieces = 11, 6, 4, 3
    layer = fnn.Maxout(k, m, pieces=pieces, dtype=dtype, seed=5)
    layer.b.data[...] = rng.standard_normal(m * pieces)
    X = rng.standard_normal((n, k)).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    x = torch.tensor(X, requires_grad=True)
    w = torch.tensor(layer.W.data.copy(), requires_grad=True)
    b = torch.tensor(layer.b.data.copy(), requires_grad=True)
    out = torch.amax((x @ w + b).reshape(n, m, pieces), dim=2)
    out.backward(torch.from_numpy(dA))
    got = layer(X)
    layer.zero_grad()
    dX = layer.backward(dA)
    rtol = RTOL[np.dtype(dtype)]
    atol = 10 * rtol * float(np.abs(X).sum(axis=1).max() * np.abs(layer.W.data).max()
                             + np.abs(dA).sum())
    np.testing.assert_allclose(got, out.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dX, x.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.W.grad, w.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.b.grad, b.grad.numpy(), rtol=rtol, atol=atol)
    assert np.count_nonzero(layer.b.grad) == len(np.unique(  # only winners receive gradient
        (np.arange(m) * pieces + layer.kink_pattern()).ravel()))
