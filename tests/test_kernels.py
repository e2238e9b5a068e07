"""The compiled kernels against their NumPy twins, kernel by kernel.

Every test here calls both implementations itself (fastnn._kernels.CYTHON and .NUMPY), so the file
is `backend_independent`. Tolerances: float32 ~1e-5 relative, float64 ~1e-12, each with an
absolute floor scaled to the magnitude of the values compared.
"""
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import _activations, _kernels

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(C is None, reason="the compiled backend is not built"),
]

DTYPES = (np.float32, np.float64)
# (activation, alpha): every row of the activation table, with alphas other than the defaults.
TEST_ALPHA = {"leaky_relu": 0.1, "elu": 1.3}
ACTIVATIONS = [(spec.name, TEST_ALPHA.get(spec.name, spec.alpha or 0.0))
               for spec in _activations.TABLE]
ACT_IDS = [a for a, _ in ACTIVATIONS]

BIAS_SHAPES = [(1, 1), (1, 7), (1, 33), (1, 1000), (3, 1), (3, 7), (3, 33), (3, 1000), (17, 33),
               (64, 7)]
DENSE_SHAPES = [(1, 1, 1), (1, 7, 33), (1, 1000, 7), (3, 1, 1000), (3, 33, 7), (3, 1000, 33),
                (3, 7, 1), (17, 33, 1000), (64, 7, 7)]
SOFTMAX_SHAPES = [(1, 1), (1, 7), (3, 2), (3, 33), (3, 1000), (17, 7), (64, 1000)]
SGD_SHAPES = [(1,), (7,), (33, 7), (1000,), (3, 1000)]

SGD_VARIANTS = {
    "plain": dict(momentum=0.0),
    "plain_weight_decay": dict(momentum=0.0, weight_decay=0.05),
    "momentum": dict(momentum=0.9),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "dampening": dict(momentum=0.9, dampening=0.3),
    "momentum_weight_decay": dict(momentum=0.8, weight_decay=0.05),
    "nesterov_weight_decay": dict(momentum=0.7, nesterov=True, weight_decay=0.01),
}


def bias_inputs(rng, n, m, dtype, act, alpha):
    """Z, b, and A = act(Z + b) from the twin, dA: the arrays of a bias+activation pass."""
    Z = (2 * rng.standard_normal((n, m))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    A = P.bias_act_forward(Z, b, activation=act, alpha=alpha)
    dA = rng.standard_normal((n, m)).astype(dtype)
    return Z, b, A, dA


def dense_inputs(rng, n, k, m, dtype, act="identity", alpha=0.0):
    X = rng.standard_normal((n, k)).astype(dtype)
    W = (rng.standard_normal((k, m)) * (1.5 / math.sqrt(k))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    A = P.dense_forward(X, W, b, activation=act, alpha=alpha)
    dA = rng.standard_normal((n, m)).astype(dtype)
    return X, W, b, A, dA


def backward_scales(X, W, dA, alpha=0.0):
    """Magnitudes for dense_backward's (dX, dW, db): the sums of |terms| each entry adds up.

    |act'| <= max(1, alpha) bounds |dZ| by |dA|; act' is computed from A by differences of nearby
    numbers near saturation, so rounding is relative to these bounds, not to the results."""
    adZ = np.abs(np.asarray(dA, np.float64)) * max(1.0, alpha)
    aX, aW = np.abs(np.asarray(X, np.float64)), np.abs(np.asarray(W, np.float64))
    return (float((adZ @ aW.T).max(initial=0)) + 1e-30,
            float((aX.T @ adZ).max(initial=0)) + 1e-30,
            float(adZ.sum(axis=0).max(initial=0)) + 1e-30)


def call_both(name, *args, **kwargs):
    """The kernel's result on both backends (kwargs' arrays are copied for each)."""
    results = []
    for kernels in (C, P):
        kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        results.append(getattr(kernels, name)(*args, **kw))
    return results


def sgd_reference(p, g, buf, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                  first_step=False):
    """torch.optim.SGD's formulas, in float64, returning new (p, buf)."""
    p, g = p.astype(np.float64), g.astype(np.float64)
    g = g + weight_decay * p
    if momentum != 0:
        buf = g.copy() if first_step else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


# ------------------------------------------------------------------------------------------------
# Compiled equals twin: odd shapes x dtypes x activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_bias_act_forward_matches_twin(rng, act, alpha, shape, dtype):
    Z, b, _, _ = bias_inputs(rng, *shape, dtype, act, alpha)
    got, want = call_both("bias_act_forward", Z, b, activation=act, alpha=alpha)
    assert_close(got, want)
    got, want = call_both("bias_act_forward", Z, None, activation=act, alpha=alpha)
    assert_close(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_bias_act_backward_matches_twin(rng, act, alpha, shape, dtype):
    _, _, A, dA = bias_inputs(rng, *shape, dtype, act, alpha)
    db0 = rng.standard_normal(shape[1]).astype(dtype)
    # Scales: |act'| <= max(1, alpha), so |dZ| <= |dA| * that; near saturation act'(A) is a
    # difference of nearby numbers, so its rounding error is relative to this bound, not to dZ.
    dZ_scale = float(np.abs(dA).max()) * max(1.0, alpha)
    db_scale = float(np.abs(dA).sum(axis=0).max()) * max(1.0, alpha)
    (dZ_c, db_c), (dZ_p, db_p) = call_both("bias_act_backward", dA, A, activation=act,
                                           alpha=alpha, db=np.empty(shape[1], dtype))
    assert_close(dZ_c, dZ_p, scale=dZ_scale)
    assert_close(db_c, db_p, scale=db_scale)
    (dZ_c, db_c), (dZ_p, db_p) = call_both("bias_act_backward", dA, A, activation=act,
                                           alpha=alpha, db=db0, accumulate=True)
    assert_close(db_c, db_p, scale=db_scale + float(np.abs(db0).max()))
    (dZ_c, db_c), (dZ_p, db_p) = call_both("bias_act_backward", dA, A, activation=act,
                                           alpha=alpha)
    assert db_c is None and db_p is None
    assert_close(dZ_c, dZ_p, scale=dZ_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_forward_matches_twin(rng, act, alpha, shape, dtype):
    X, W, b, _, _ = dense_inputs(rng, *shape, dtype, act, alpha)
    got, want = call_both("dense_forward", X, W, b, activation=act, alpha=alpha)
    assert_close(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_backward_matches_twin(rng, act, alpha, shape, dtype):
    X, W, b, A, dA = dense_inputs(rng, *shape, dtype, act, alpha)
    scales = backward_scales(X, W, dA, alpha)
    got, want = call_both("dense_backward", dA, X, W, A, activation=act, alpha=alpha)
    for g, w, scale in zip(got, want, scales):
        assert_close(g, w, scale=scale)
    got, want = call_both("dense_backward", dA, X, W, A, activation=act, alpha=alpha,
                          need_dX=False)
    assert got[0] is None and want[0] is None
    for g, w, scale in zip(got[1:], want[1:], scales[1:]):
        assert_close(g, w, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
def test_softmax_cross_entropy_matches_twin(rng, shape, dtype):
    n, c = shape
    scores = (3 * rng.standard_normal(shape)).astype(dtype)
    y = rng.integers(0, c, size=n)
    (loss_c, d_c), (loss_p, d_p) = call_both("softmax_cross_entropy", scores, y)
    assert isinstance(loss_c, float) and isinstance(loss_p, float)
    assert loss_c == pytest.approx(loss_p, rel=RTOL[np.dtype(dtype)], abs=1e-300)
    assert_close(d_c, d_p, scale=1.0 / n)
    # Rows of the gradient sum to zero: softmax sums to 1, the one-hot to 1.
    np.testing.assert_allclose(d_c.sum(axis=1, dtype=np.float64), 0.0,
                               atol=50 * RTOL[np.dtype(dtype)] / n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SGD_SHAPES, ids=str)
@pytest.mark.parametrize("variant", sorted(SGD_VARIANTS))
def test_sgd_update_matches_twin_and_formula(rng, variant, shape, dtype):
    options = SGD_VARIANTS[variant]
    p0 = rng.standard_normal(shape).astype(dtype)
    params = {"c": p0.copy(), "p": p0.copy()}
    buffers = {"c": np.zeros(shape, dtype), "p": np.zeros(shape, dtype)}
    ref_p, ref_buf = p0.astype(np.float64), None
    for step in range(4):
        g = rng.standard_normal(shape).astype(dtype)
        first = step == 0
        for key, kernels in (("c", C), ("p", P)):
            result = kernels.sgd_update(params[key], g, buffers[key], lr=0.1, first_step=first,
                                        **options)
            assert result is None  # in place
        ref_p, ref_buf = sgd_reference(ref_p, g, ref_buf, 0.1, first_step=first, **options)
        scale = float(np.abs(ref_p).max()) + 1.0
        assert_close(params["c"], params["p"], scale=scale)
        assert_close(params["c"], ref_p.astype(dtype), scale=scale)
        if options["momentum"] != 0:
            assert_close(buffers["c"], buffers["p"], scale=float(np.abs(ref_buf).max()) + 1.0)
            assert_close(buffers["c"], ref_buf.astype(dtype),
                         scale=float(np.abs(ref_buf).max()) + 1.0)
        else:
            assert not buffers["c"].any() and not buffers["p"].any()  # buffer left alone


# ------------------------------------------------------------------------------------------------
# Input conversion: layouts and dtypes


def _strided(a, rng):
    """A non-contiguous view with the values of `a` (a strided slice of a bigger array)."""
    big = rng.standard_normal(tuple(2 * s + 1 for s in a.shape)).astype(a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def _transposed(a):
    """A Fortran-ordered (transposed) view with the values of `a`."""
    view = np.ascontiguousarray(a.T).T
    assert not view.flags.c_contiguous or a.ndim < 2 or min(a.shape) <= 1
    return view


def _arrays(result):
    """The arrays (and float losses) in a kernel's result, for comparing two results."""
    parts = result if isinstance(result, tuple) else (result,)
    return [np.asarray(p) for p in parts if p is not None]


@pytest.mark.parametrize("layout", ["strided", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_give_the_same_results(rng, layout, dtype):
    n, k, m = 5, 7, 6
    X, W, b, A, dA = dense_inputs(rng, n, k, m, dtype, "tanh")
    scores = rng.standard_normal((n, m)).astype(dtype)
    y = rng.integers(0, m, size=n)
    grad = rng.standard_normal(W.shape).astype(dtype)

    def odd(a):
        return _strided(a, rng) if layout == "strided" or a.ndim == 1 else _transposed(a)

    cases = [
        ("bias_act_forward", (X @ W, b), dict(activation="tanh")),
        ("bias_act_backward", (dA, A), dict(activation="tanh", db=np.empty(m, dtype))),
        ("dense_forward", (X, W, b), dict(activation="tanh")),
        ("dense_backward", (dA, X, W, A), dict(activation="tanh")),
        ("softmax_cross_entropy", (scores, y), {}),
    ]
    for name, args, kwargs in cases:
        odd_args = tuple(odd(a) for a in args)
        for a, o in zip(args, odd_args):
            np.testing.assert_array_equal(a, o)
        per_backend = []
        for kernels in (C, P):
            kernel = getattr(kernels, name)
            fresh = lambda: {key: (v.copy() if isinstance(v, np.ndarray) else v)  # noqa: E731
                             for key, v in kwargs.items()}
            want = _arrays(kernel(*args, **fresh()))
            got = _arrays(kernel(*odd_args, **fresh()))
            assert len(got) == len(want) > 0
            for g, w in zip(got, want):  # a copy of the odd input gives bitwise the same result
                np.testing.assert_array_equal(g, w, err_msg=f"{kernels.name}.{name}")
            per_backend.append(got)
        for g, w in zip(*per_backend):  # and the backends agree on the odd inputs
            if g.ndim == 0:
                assert float(g) == pytest.approx(float(w), rel=RTOL[np.dtype(dtype)])
            else:
                assert_close(g, w, scale=float(np.abs(w).max()))
    # sgd_update: a non-contiguous gradient is read like a contiguous one.
    for kernels in (C, P):
        p1, p2 = W.copy(), W.copy()
        kernels.sgd_update(p1, odd(grad), None, lr=0.1)
        kernels.sgd_update(p2, grad, None, lr=0.1)
        np.testing.assert_array_equal(p1, p2)
        assert not np.array_equal(p1, W)


def test_read_only_inputs_are_accepted(rng):
    X, W, b, A, dA = dense_inputs(rng, 4, 5, 3, np.float64, "relu")
    for a in (X, W, b, A, dA):
        a.flags.writeable = False
    got, want = call_both("dense_forward", X, W, b, activation="relu")
    assert_close(got, want)
    got, want = call_both("dense_backward", dA, X, W, A, activation="relu")
    for g, w in zip(got, want):
        assert_close(g, w)


@pytest.mark.parametrize("w_dtype", DTYPES)
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8,
                                     np.bool_, np.float16])
def test_other_dtype_inputs_are_converted_to_the_kernel_dtype(rng, w_dtype, x_dtype):
    n, k, m = 3, 7, 33
    X = rng.integers(-3, 4, size=(n, k)).astype(x_dtype)
    W = rng.standard_normal((k, m)).astype(w_dtype)
    b = rng.standard_normal(m).astype(w_dtype)
    X_conv = X.astype(w_dtype)
    for act, alpha in ACTIVATIONS:
        got, want = call_both("dense_forward", X, W, b, activation=act, alpha=alpha)
        assert got.dtype == want.dtype == w_dtype
        assert_close(got, want)
        np.testing.assert_array_equal(got, C.dense_forward(X_conv, W, b, activation=act,
                                                           alpha=alpha))
        A = want
        dA = rng.integers(-2, 3, size=(n, m)).astype(x_dtype)
        # Other-dtype dA (and X) in the backward pass; A keeps the kernel dtype here (A of
        # another dtype: test_dense_backward_converts_activation_output_of_another_dtype).
        got, want = call_both("dense_backward", dA, X, W, A, activation=act, alpha=alpha)
        for g, w, scale in zip(got, want, backward_scales(X, W, dA, alpha)):
            assert g.dtype == w.dtype == w_dtype
            assert_close(g, w, scale=scale)
        # bias_act_*: Z/A set the dtype, b and dA are converted.
        got, want = call_both("bias_act_forward", A, b.astype(x_dtype), activation=act,
                              alpha=alpha)
        assert_close(got, want)
        (dZ_c, db_c), (dZ_p, db_p) = call_both("bias_act_backward", dA, A, activation=act,
                                               alpha=alpha, db=np.zeros(m, w_dtype))
        _, _, db_scale = backward_scales(X, W, dA, alpha)
        assert_close(dZ_c, dZ_p, scale=float(np.abs(dA.astype(np.float64)).max()) * max(1, alpha))
        assert_close(db_c, db_p, scale=db_scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_dtype_gradients_and_labels_are_converted(rng, dtype):
    scores = rng.standard_normal((4, 6)).astype(dtype)
    y = np.array([0, 5, 2, 2])
    for kernels in (C, P):
        loss_ref, d_ref = kernels.softmax_cross_entropy(scores, y)
        for labels in (y.astype(np.int32), y.astype(np.uint8), y.astype(np.float64),
                       y.astype(np.float32), list(y)):
            loss, d = kernels.softmax_cross_entropy(scores, labels)
            assert loss == loss_ref
            np.testing.assert_array_equal(d, d_ref)
    for grad_dtype in (np.float32, np.float64, np.int64):
        g = rng.integers(-3, 4, size=(5, 3)).astype(grad_dtype)
        p0 = rng.standard_normal((5, 3)).astype(dtype)
        results = []
        for kernels in (C, P):
            p, buf = p0.copy(), np.zeros_like(p0)
            kernels.sgd_update(p, g, buf, lr=0.5, momentum=0.5, first_step=True)
            assert p.dtype == dtype
            results.append(p)
        assert_close(results[0], results[1], scale=2.0)
        assert_close(results[0], (p0 - 0.5 * g.astype(dtype)).astype(dtype), scale=2.0)


@pytest.mark.parametrize("a_dtype", [np.float64, np.int64, np.float16])
def test_dense_backward_converts_activation_output_of_another_dtype(rng, a_dtype):
    """dense_backward computes in W's dtype and converts A like its other IN arrays (the twin once
    took its dtype from A and raised TypeError here)."""
    X, W, b, A, dA = dense_inputs(rng, 3, 4, 5, np.float32, "relu")
    A_other = A.astype(a_dtype)
    got, want = call_both("dense_backward", dA, X, W, A_other, activation="relu")
    same_dtype = C.dense_backward(dA, X, W, A_other.astype(np.float32), activation="relu")
    for g, w, ref, scale in zip(got, want, same_dtype, backward_scales(X, W, dA)):
        assert g.dtype == w.dtype == np.float32
        assert_close(g, w, scale=scale)
        np.testing.assert_array_equal(g, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_without_bias(rng, dtype):
    """b=None means no bias on both backends (the compiled kernel once raised TypeError)."""
    X, W, b, _, _ = dense_inputs(rng, 3, 4, 5, dtype)
    for act, alpha in ACTIVATIONS:
        got, want = call_both("dense_forward", X, W, None, activation=act, alpha=alpha)
        assert_close(got, want)
        for kernels in (C, P):
            np.testing.assert_array_equal(
                kernels.dense_forward(X, W, None, activation=act, alpha=alpha),
                kernels.dense_forward(X, W, np.zeros(5, dtype), activation=act, alpha=alpha))


# ------------------------------------------------------------------------------------------------
# OUT buffers and argument errors: rejected alike on both backends

N_, K_, M_ = 3, 4, 5
# (kernel, OUT buffer, its shape) for N_ samples, K_ inputs and M_ outputs (or classes).
OUT_BUFFERS = [
    ("bias_act_forward", "out", (N_, M_)),
    ("bias_act_backward", "dZ", (N_, M_)),
    ("bias_act_backward", "db", (M_,)),
    ("dense_forward", "out", (N_, M_)),
    ("dense_backward", "dZ", (N_, M_)),
    ("dense_backward", "dW", (K_, M_)),
    ("dense_backward", "db", (M_,)),
    ("dense_backward", "dX", (N_, K_)),
    ("softmax_cross_entropy", "dscores", (N_, M_)),
    ("sgd_update", "momentum_buffer", (K_, M_)),
    ("sgd_update", "param", (K_, M_)),
]


def _call(kernels, name, dtype, **buffers):
    """Call kernel `name` with valid IN arrays of `dtype` and the given OUT buffers."""
    rng = np.random.default_rng(7)
    X, W, b, A, dA = dense_inputs(rng, N_, K_, M_, dtype, "sigmoid")
    kernel = getattr(kernels, name)
    if name == "bias_act_forward":
        return kernel(X @ W, b, activation="sigmoid", **buffers)
    if name == "bias_act_backward":
        return kernel(dA, A, activation="sigmoid", **buffers)
    if name == "dense_forward":
        return kernel(X, W, b, activation="sigmoid", **buffers)
    if name == "dense_backward":
        return kernel(dA, X, W, A, activation="sigmoid", **buffers)
    if name == "softmax_cross_entropy":
        return kernel(A, np.array([0, 4, 2]), **buffers)
    if name == "sgd_update":
        param = buffers.pop("param", W.copy())
        buf = buffers.pop("momentum_buffer", np.zeros_like(W))
        grad = rng.standard_normal((K_, M_)).astype(dtype)
        return kernel(param, grad, buf, lr=0.1, momentum=0.9, **buffers)
    raise AssertionError(name)


def _bad_buffer(kind, shape, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    if kind == "wrong_dtype":
        return np.zeros(shape, other), TypeError
    if kind == "integer_dtype":
        return np.zeros(shape, np.int64), TypeError
    if kind == "list":
        return np.zeros(shape, dtype).tolist(), TypeError
    if kind == "wrong_shape":
        return np.zeros(tuple(s + 1 for s in shape), dtype), ValueError
    if kind == "wrong_ndim":
        return np.zeros((int(np.prod(shape)),) if len(shape) == 2 else shape + (1,), dtype), \
            ValueError
    if kind == "non_contiguous":
        big = np.zeros(tuple(2 * s for s in shape), dtype)
        return big[tuple(slice(None, None, 2) for _ in shape)], ValueError
    if kind == "transposed":
        if len(shape) == 1:
            pytest.skip("a 1-D array has no transposed layout")
        return np.zeros(shape[::-1], dtype).T, ValueError
    if kind == "read_only":
        buf = np.zeros(shape, dtype)
        buf.flags.writeable = False
        return buf, ValueError
    raise AssertionError(kind)


BAD_KINDS = ["wrong_dtype", "integer_dtype", "list", "wrong_shape", "wrong_ndim",
             "non_contiguous", "transposed", "read_only"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name,buffer,shape", OUT_BUFFERS,
                         ids=[f"{n}-{b}" for n, b, _ in OUT_BUFFERS])
def test_bad_out_buffers_raise_the_same_error(name, buffer, shape, kind, dtype):
    if buffer == "param" and kind in ("wrong_dtype", "wrong_shape", "wrong_ndim"):
        pytest.skip("param sets the kernel's dtype and shape (grad and buffer are checked "
                    "against it)")
    for kernels in (C, P):
        bad, expected = _bad_buffer(kind, shape, dtype)
        with pytest.raises(expected) as info:
            _call(kernels, name, dtype, **{buffer: bad})
        assert type(info.value) is expected, f"{kernels.name}: {info.value!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_valid_out_buffers_pass_the_same_checks(dtype):
    """The counterpart of the test above: correct buffers are accepted by both backends."""
    for name, buffer, shape in OUT_BUFFERS:
        for kernels in (C, P):
            _call(kernels, name, dtype, **{buffer: np.zeros(shape, dtype)})


def test_dX_buffer_is_not_checked_when_not_needed():
    for kernels in (C, P):
        dX, _, _ = _call(kernels, "dense_backward", np.float32, dX=np.zeros((1, 1), np.int8),
                         need_dX=False)
        assert dX is None


def _error_cases():
    rng = np.random.default_rng(3)
    X, W, b, A, dA = dense_inputs(rng, N_, K_, M_, np.float64, "elu", 1.0)
    Z = X @ W
    scores = rng.standard_normal((N_, M_))
    y = np.array([0, 4, 2])
    cases = []
    for kernel, call in [
        ("bias_act_forward", lambda k, **kw: k.bias_act_forward(Z, b, **kw)),
        ("bias_act_backward", lambda k, **kw: k.bias_act_backward(dA, A, **kw)),
        ("dense_forward", lambda k, **kw: k.dense_forward(X, W, b, **kw)),
        ("dense_backward", lambda k, **kw: k.dense_backward(dA, X, W, A, **kw)),
    ]:
        for label, kw, error in [
            ("unknown_activation", dict(activation="swish"), ValueError),
            ("activation_case", dict(activation="ReLU"), ValueError),
            ("activation_none", dict(activation=None), ValueError),
            ("negative_elu_alpha", dict(activation="elu", alpha=-1.0), ValueError),
            ("zero_elu_alpha", dict(activation="elu", alpha=0.0), ValueError),
            ("nan_elu_alpha", dict(activation="elu", alpha=float("nan")), ValueError),
            ("negative_leaky_alpha", dict(activation="leaky_relu", alpha=-0.1), ValueError),
        ]:
            cases.append((f"{kernel}-{label}", lambda k, c=call, kw=kw: c(k, **kw), error))
    cases += [
        ("bias_act_forward-int_Z", lambda k: k.bias_act_forward(Z.astype(int), b), TypeError),
        ("bias_act_forward-b_shape", lambda k: k.bias_act_forward(Z, b[:-1]), ValueError),
        ("bias_act_forward-b_2d", lambda k: k.bias_act_forward(Z, b[None]), ValueError),
        ("bias_act_forward-Z_1d", lambda k: k.bias_act_forward(Z[0], b), ValueError),
        ("bias_act_backward-dA_shape", lambda k: k.bias_act_backward(dA[:-1], A), ValueError),
        ("bias_act_backward-int_A", lambda k: k.bias_act_backward(dA, A.astype(int)), TypeError),
        ("bias_act_backward-str_dA", lambda k: k.bias_act_backward(dA.astype(str), A), TypeError),
        ("dense_forward-int_W", lambda k: k.dense_forward(X, W.astype(int), b), TypeError),
        ("dense_forward-X_shape", lambda k: k.dense_forward(X[:, :-1], W, b), ValueError),
        ("dense_forward-b_shape", lambda k: k.dense_forward(X, W, b[:-1]), ValueError),
        ("dense_forward-complex_X", lambda k: k.dense_forward(X + 1j, W, b), TypeError),
        ("dense_backward-X_shape", lambda k: k.dense_backward(dA, X[:, :-1], W, A), ValueError),
        ("dense_backward-A_shape", lambda k: k.dense_backward(dA, X, W, A[:-1]), ValueError),
        ("dense_backward-dA_shape", lambda k: k.dense_backward(dA[:, :-1], X, W, A), ValueError),
        ("dense_backward-int_W", lambda k: k.dense_backward(dA, X, W.astype(int), A), TypeError),
        ("softmax-label_too_big", lambda k: k.softmax_cross_entropy(scores, [0, 5, 1]),
         ValueError),
        ("softmax-label_negative", lambda k: k.softmax_cross_entropy(scores, [0, -1, 1]),
         ValueError),
        ("softmax-label_non_integer", lambda k: k.softmax_cross_entropy(scores, [0, 1.5, 1]),
         ValueError),
        ("softmax-label_nan", lambda k: k.softmax_cross_entropy(scores, [0, np.nan, 1]),
         ValueError),
        ("softmax-label_string", lambda k: k.softmax_cross_entropy(scores, ["0", "1", "2"]),
         TypeError),
        ("softmax-label_bool", lambda k: k.softmax_cross_entropy(scores, [True, False, True]),
         TypeError),
        ("softmax-labels_too_few", lambda k: k.softmax_cross_entropy(scores, [0, 1]),
         ValueError),
        ("softmax-labels_too_many", lambda k: k.softmax_cross_entropy(scores, [0, 1, 2, 3]),
         ValueError),
        ("softmax-labels_column", lambda k: k.softmax_cross_entropy(scores, y[:, None]),
         ValueError),
        ("softmax-labels_scalar", lambda k: k.softmax_cross_entropy(scores, 1), ValueError),
        ("softmax-empty_batch", lambda k: k.softmax_cross_entropy(np.zeros((0, 4)), []),
         ValueError),
        ("softmax-empty_batch_f32",
         lambda k: k.softmax_cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, int)),
         ValueError),
        ("softmax-int_scores", lambda k: k.softmax_cross_entropy(scores.astype(int), y),
         TypeError),
        ("softmax-1d_scores", lambda k: k.softmax_cross_entropy(scores[0], y[:1]), ValueError),
        ("sgd-grad_shape", lambda k: k.sgd_update(W.copy(), W[:-1], None, lr=0.1), ValueError),
        ("sgd-grad_ndim", lambda k: k.sgd_update(W.copy(), W.ravel(), None, lr=0.1),
         ValueError),
        ("sgd-int_param", lambda k: k.sgd_update(W.astype(int), W, None, lr=0.1), TypeError),
        ("sgd-str_grad", lambda k: k.sgd_update(W.copy(), W.astype(str), None, lr=0.1),
         TypeError),
    ]
    return cases


ERROR_CASES = _error_cases()


@pytest.mark.parametrize("call,error", [(c, e) for _, c, e in ERROR_CASES],
                         ids=[i for i, _, _ in ERROR_CASES])
def test_invalid_arguments_raise_the_same_error(call, error):
    raised = []
    for kernels in (C, P):
        with pytest.raises((TypeError, ValueError)) as info:
            call(kernels)
        raised.append(type(info.value))
    assert raised == [error, error]


# The kernel dtype comes from an array argument; anything but a float32/float64 ndarray there is a
# TypeError. (A list once passed the check, because np.dtype("float64") == None is True.)
NON_ARRAY_CASES = {
    "dense_forward-list_W": lambda k: k.dense_forward(
        np.ones((2, 3), np.float32), np.ones((3, 2)).tolist(), np.zeros(2)),
    "dense_forward-scalar_W": lambda k: k.dense_forward(np.ones((2, 1)), 2.0, np.zeros(1)),
    "dense_backward-list_W": lambda k: k.dense_backward(
        np.ones((1, 1)), np.ones((1, 1)), [[2.0]], np.ones((1, 1))),
    "bias_act_forward-list_Z": lambda k: k.bias_act_forward([[1.0, 2.0]], None),
    "bias_act_backward-list_A": lambda k: k.bias_act_backward([[1.0]], [[0.5]],
                                                              activation="sigmoid"),
    "softmax-list_scores": lambda k: k.softmax_cross_entropy([[1.0, 2.0]], [0]),
    "sgd-list_param": lambda k: k.sgd_update([1.0, 2.0], [1.0, 1.0], None, lr=0.1),
    "sgd-none_param": lambda k: k.sgd_update(None, [1.0, 1.0], None, lr=0.1),
}


@pytest.mark.parametrize("case", list(NON_ARRAY_CASES))
def test_non_array_float_arguments_are_rejected(case):
    for kernels in (C, P):
        with pytest.raises(TypeError):
            NON_ARRAY_CASES[case](kernels)


@pytest.mark.parametrize("alpha", [None, "0.1", [0.1], True])
@pytest.mark.parametrize("kernel", ["bias_act_forward", "bias_act_backward", "dense_forward"])
def test_non_numeric_alpha_is_a_type_error_naming_the_kernel(kernel, alpha):
    """Once a bare float() error ("float() argument must be ... not 'NoneType'") or a ValueError
    for a string."""
    X, b, W = np.ones((2, 3)), np.zeros(3), np.ones((3, 3))
    calls = {
        "bias_act_forward": lambda k: k.bias_act_forward(X, b, activation="leaky_relu",
                                                         alpha=alpha),
        "bias_act_backward": lambda k: k.bias_act_backward(X, X, activation="elu", alpha=alpha),
        "dense_forward": lambda k: k.dense_forward(X, W, b, activation="leaky_relu", alpha=alpha),
    }
    for kernels in (C, P):
        with pytest.raises(TypeError, match=f"{kernel}: alpha must be a real number"):
            calls[kernel](kernels)


def test_non_float_parameter_arrays_are_rejected():
    """The part of float_dtype's contract that holds: arrays of other dtypes."""
    for kernels in (C, P):
        for bad in (np.ones((3, 2), int), np.ones((3, 2), np.float16), np.ones((3, 2), bool),
                    np.ones((3, 2), complex)):
            with pytest.raises(TypeError):
                kernels.dense_forward(np.ones((2, 3)), bad, np.zeros(2))


@pytest.mark.parametrize("option,value", [("lr", None), ("lr", "0.1"), ("lr", True),
                                          ("momentum", "0.9"), ("weight_decay", None),
                                          ("dampening", [0.1])])
def test_sgd_update_rejects_non_numeric_hyperparameters_on_both(option, value):
    """Once, lr=None made the twin's parameters NaN while the compiled kernel raised TypeError."""
    for kernels in (C, P):
        p = np.ones(4)
        kwargs = dict(lr=0.1, momentum=0.5)
        kwargs[option] = value
        with pytest.raises(TypeError):
            kernels.sgd_update(p, np.ones(4), np.zeros(4), first_step=True, **kwargs)
        np.testing.assert_array_equal(p, np.ones(4))  # rejected before any write


@pytest.mark.parametrize("first_step", [False, True])
def test_sgd_update_with_momentum_needs_a_buffer(first_step):
    """momentum != 0 with momentum_buffer=None is a TypeError on both backends (it once read an
    uninitialised buffer). Run in a subprocess: a kernel handed a missing buffer might crash."""
    code = textwrap.dedent(f"""
        import numpy as np
        from fastnn import _kernels
        for kernels in (_kernels.CYTHON, _kernels.NUMPY):
            p = np.ones(4)
            try:
                kernels.sgd_update(p, np.ones(4), None, lr=0.1, momentum=0.9,
                                   first_step={first_step})
            except TypeError:
                print(kernels.name, "TypeError", bool((p == 1).all()))
            else:
                print(kernels.name, "no-error")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-1000:]}"
    assert result.stdout.split() == ["cython", "TypeError", "True", "numpy", "TypeError", "True"]


def test_sgd_update_without_momentum_accepts_no_buffer():
    for kernels in (C, P):
        p = np.ones(4, np.float32)
        assert kernels.sgd_update(p, np.full(4, 2.0), None, lr=0.25) is None
        np.testing.assert_array_equal(p, np.full(4, 0.5, np.float32))


# ------------------------------------------------------------------------------------------------
# In place: OUT buffers are written, aliases allowed, accumulate, need_dX


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_out_buffers_are_written_in_place(rng, kernels, dtype):
    n, k, m = 3, 33, 7
    X, W, b, A, dA = dense_inputs(rng, n, k, m, dtype, "elu", 1.3)
    want_fwd = P.dense_forward(X, W, b, activation="elu", alpha=1.3)
    want_bwd = P.dense_backward(dA, X, W, A, activation="elu", alpha=1.3)

    out = np.full((n, m), np.nan, dtype)
    result = kernels.dense_forward(X, W, b, activation="elu", alpha=1.3, out=out)
    assert result is out
    assert_close(out, want_fwd)

    out = np.full((n, m), np.nan, dtype)
    result = kernels.bias_act_forward(X @ W, b, activation="elu", alpha=1.3, out=out)
    assert result is out and np.shares_memory(result, out)
    assert_close(out, want_fwd)

    dZ, dW = np.full((n, m), np.nan, dtype), np.full((k, m), np.nan, dtype)
    db, dX = np.full(m, np.nan, dtype), np.full((n, k), np.nan, dtype)
    rX, rW, rb = kernels.dense_backward(dA, X, W, A, activation="elu", alpha=1.3, dZ=dZ, dW=dW,
                                        db=db, dX=dX)
    assert rX is dX and rW is dW and rb is db
    for got, want in zip((dX, dW, db), want_bwd):
        assert_close(got, want, scale=float(np.abs(want).max()))
    assert_close(dZ, P.bias_act_backward(dA, A, activation="elu", alpha=1.3)[0])

    dZ, db = np.full((n, m), np.nan, dtype), np.full(m, np.nan, dtype)
    rZ, rb = kernels.bias_act_backward(dA, A, activation="elu", alpha=1.3, dZ=dZ, db=db)
    assert rZ is dZ and rb is db
    assert_close(db, want_bwd[2], scale=float(np.abs(want_bwd[2]).max()))

    scores = rng.standard_normal((n, m)).astype(dtype)
    dscores = np.full((n, m), np.nan, dtype)
    loss, rd = kernels.softmax_cross_entropy(scores, [0, 1, 2], dscores=dscores)
    assert rd is dscores
    assert_close(dscores, P.softmax_cross_entropy(scores, [0, 1, 2])[1], scale=1 / n)

    param, buf = W.copy(), np.full_like(W, np.nan)
    grad = rng.standard_normal(W.shape).astype(dtype)
    assert kernels.sgd_update(param, grad, buf, lr=0.5, momentum=0.9, first_step=True) is None
    np.testing.assert_array_equal(buf, grad)  # first step: buf = g
    assert_close(param, (W - dtype(0.5) * grad).astype(dtype), scale=float(np.abs(W).max()) + 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_aliased_buffers(rng, kernels, act, alpha, dtype):
    n, m = 3, 33
    Z, b, A, dA = bias_inputs(rng, n, m, dtype, act, alpha)
    want = kernels.bias_act_forward(Z, b, activation=act, alpha=alpha)
    Z_alias = Z.copy()
    result = kernels.bias_act_forward(Z_alias, b, activation=act, alpha=alpha, out=Z_alias)
    assert result is Z_alias
    np.testing.assert_array_equal(Z_alias, want)

    want_dZ, want_db = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                                 db=np.empty(m, dtype))
    dA_alias = dA.copy()
    dZ, db = kernels.bias_act_backward(dA_alias, A, activation=act, alpha=alpha, dZ=dA_alias,
                                       db=np.empty(m, dtype))
    assert dZ is dA_alias
    np.testing.assert_array_equal(dZ, want_dZ)
    np.testing.assert_array_equal(db, want_db)

    X, W, b, A, dA = dense_inputs(rng, n, 7, m, dtype, act, alpha)
    want = kernels.dense_backward(dA, X, W, A, activation=act, alpha=alpha)
    dA_alias = dA.copy()
    got = kernels.dense_backward(dA_alias, X, W, A, activation=act, alpha=alpha, dZ=dA_alias)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(dA_alias, kernels.bias_act_backward(
        dA, A, activation=act, alpha=alpha)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_dscores_may_alias_scores(rng, kernels, dtype):
    scores = (5 * rng.standard_normal((17, 9))).astype(dtype)
    y = rng.integers(0, 9, size=17)
    want_loss, want_d = kernels.softmax_cross_entropy(scores, y)
    alias = scores.copy()
    loss, d = kernels.softmax_cross_entropy(alias, y, dscores=alias)
    assert d is alias
    assert loss == want_loss
    np.testing.assert_array_equal(d, want_d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_accumulate_adds_to_dW_and_db_and_overwrites_dX(rng, kernels, dtype):
    n, k, m = 5, 7, 33
    X, W, b, A, dA = dense_inputs(rng, n, k, m, dtype, "sigmoid")
    fresh_dX, fresh_dW, fresh_db = kernels.dense_backward(dA, X, W, A, activation="sigmoid")
    dW0 = rng.standard_normal((k, m)).astype(dtype)
    db0 = rng.standard_normal(m).astype(dtype)
    dW, db, dX = dW0.copy(), db0.copy(), np.full((n, k), 1e9, dtype)
    rX, rW, rb = kernels.dense_backward(dA, X, W, A, activation="sigmoid", dW=dW, db=db, dX=dX,
                                        accumulate=True)
    assert rW is dW and rb is db and rX is dX
    assert_close(dW, (dW0 + fresh_dW).astype(dtype), scale=float(np.abs(dW).max()))
    assert_close(db, (db0 + fresh_db).astype(dtype), scale=float(np.abs(db).max()))
    np.testing.assert_array_equal(dX, fresh_dX)
    # Without accumulate the same buffers are overwritten.
    kernels.dense_backward(dA, X, W, A, activation="sigmoid", dW=dW, db=db, dX=dX)
    np.testing.assert_array_equal(dW, fresh_dW)
    np.testing.assert_array_equal(db, fresh_db)
    # bias_act_backward accumulates into db as well.
    dZ, _ = kernels.bias_act_backward(dA, A, activation="sigmoid")
    db = db0.copy()
    kernels.bias_act_backward(dA, A, activation="sigmoid", db=db, accumulate=True)
    assert_close(db, (db0 + dZ.sum(axis=0, dtype=np.float64)).astype(dtype),
                 scale=float(np.abs(db).max()))


@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
def test_need_dX_false_returns_none_and_leaves_dX_alone(rng, kernels):
    X, W, b, A, dA = dense_inputs(rng, 3, 7, 5, np.float64, "tanh")
    dX = np.full((3, 7), 42.0)
    got = kernels.dense_backward(dA, X, W, A, activation="tanh", dX=dX, need_dX=False)
    assert got[0] is None
    assert np.all(dX == 42.0)
    want = kernels.dense_backward(dA, X, W, A, activation="tanh")
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


# ------------------------------------------------------------------------------------------------
# Extreme values


EXTREMES = np.array([0.0, 1e-30, 1e-8, 0.3, 0.624, 0.626, 1.0, 5.0, 10.0, 17.0, 20.0, 44.0,
                     50.0, 87.0, 88.5, 89.0, 100.0, 500.0, 709.0, 711.0, 1000.0, 1e4])
EXTREMES = np.concatenate([EXTREMES, -EXTREMES[1:]])


def _sigmoid_ref(z):
    return np.exp(-np.logaddexp(0.0, -z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_are_finite_and_correct_for_large_inputs(act, dtype):
    z = EXTREMES.astype(dtype)[None, :]
    z64 = z.astype(np.float64)
    want = (_sigmoid_ref(z64) if act == "sigmoid" else np.tanh(z64)).astype(dtype)
    tiny = 1e-37 if dtype == np.float32 else 1e-300  # float32 kernels may flush subnormals
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for kernels in (C, P):
            for got in (kernels.bias_act_forward(z, None, activation=act),
                        kernels.bias_act_forward(z.T.copy(), None, activation=act).T,
                        kernels.dense_forward(z.T.copy(), np.ones((1, 1), dtype),
                                              np.zeros(1, dtype), activation=act).T):
                assert np.all(np.isfinite(got)), kernels.name
                np.testing.assert_allclose(got, want, rtol=RTOL[np.dtype(dtype)], atol=tiny,
                                           err_msg=kernels.name)
                lo, hi = (0, 1) if act == "sigmoid" else (-1, 1)
                assert np.all((got >= lo) & (got <= hi))
            A = kernels.bias_act_forward(z, None, activation=act)
            dZ, db = kernels.bias_act_backward(np.ones_like(A), A, activation=act,
                                               db=np.empty(A.shape[1], dtype))
            a = A.astype(np.float64)
            deriv = a * (1 - a) if act == "sigmoid" else 1 - a * a
            assert np.all(np.isfinite(dZ)) and np.all(np.isfinite(db))
            np.testing.assert_allclose(dZ, deriv, rtol=RTOL[np.dtype(dtype)],
                                       atol=np.finfo(dtype).eps)
            np.testing.assert_allclose(db, dZ[0], rtol=RTOL[np.dtype(dtype)])
    # Symmetries: sigmoid(z) + sigmoid(-z) = 1, tanh(-z) = -tanh(z).
    for kernels in (C, P):
        pos = kernels.bias_act_forward(z, None, activation=act)
        neg = kernels.bias_act_forward(-z, None, activation=act)
        if act == "sigmoid":
            np.testing.assert_allclose(pos + neg, 1.0, rtol=0, atol=2 * np.finfo(dtype).eps)
        else:
            np.testing.assert_array_equal(neg, -pos)


def test_float32_tanh_is_within_3_2e_7_odd_and_bounded():
    """The compiled float32 tanh is a rational approximation (kernels.h): checked here far more
    tightly than the twin comparisons' 1e-5, on every 263rd float32 in [0, 11] (4e6 values, from
    subnormals to past where tanh rounds to 1) and their negatives. (Over every float32 in that
    range the largest relative error is 3.1e-7, at 6.22.)"""
    x = np.arange(0, 0x41300000, 263, dtype=np.uint32).view(np.float32)
    got = C.bias_act_forward(x[None, :], None, activation="tanh")[0]
    want = np.tanh(x.astype(np.float64))
    nonzero = want != 0
    rel = np.abs(got[nonzero] - want[nonzero]) / want[nonzero]
    assert rel.max() <= 3.2e-7
    assert np.all(got <= 1) and np.all(got[x > 0] > 0)
    np.testing.assert_array_equal(C.bias_act_forward(-x[None, :], None, activation="tanh")[0],
                                  -got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_activations_at_large_inputs(dtype):
    z = EXTREMES.astype(dtype)[None, :]
    for kernels in (C, P):
        np.testing.assert_array_equal(kernels.bias_act_forward(z, None, activation="relu"),
                                      np.maximum(z, 0))
        leaky = kernels.bias_act_forward(z, None, activation="leaky_relu", alpha=0.25)
        np.testing.assert_array_equal(leaky, np.where(z > 0, z, z * dtype(0.25)))
        elu = kernels.bias_act_forward(z, None, activation="elu", alpha=1.5)
        want = np.where(z > 0, z, 1.5 * np.expm1(np.minimum(z.astype(np.float64), 0)))
        np.testing.assert_allclose(elu, want.astype(dtype), rtol=RTOL[np.dtype(dtype)],
                                   atol=RTOL[np.dtype(dtype)])
        assert elu[0, -1] == dtype(-1.5)  # elu(-1e4) saturates at -alpha


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_at_large_scores(dtype):
    scores = np.array([[1e4, -1e4, 0.0],
                       [-1e4, -1e4, -1e4],
                       [1e4, 1e4, -1e4],
                       [-1e4, 1e4, 1e4]], dtype)
    y = np.array([0, 1, 2, 0])
    per_row = [0.0, math.log(3), 2e4 + math.log(2), 2e4 + math.log(2)]
    want_d = np.array([[0.0, 0.0, 0.0],
                       [1 / 3, 1 / 3 - 1, 1 / 3],
                       [0.5, 0.5, -1.0],
                       [-1.0, 0.5, 0.5]]) / 4
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for kernels in (C, P):
            loss, d = kernels.softmax_cross_entropy(scores, y)
            assert math.isfinite(loss) and np.all(np.isfinite(d))
            assert loss == pytest.approx(sum(per_row) / 4, rel=1e-13)
            np.testing.assert_allclose(d, want_d.astype(dtype), rtol=RTOL[np.dtype(dtype)],
                                       atol=1e-7 if dtype == np.float32 else 1e-16)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 2, 7, 33, 1000])
@pytest.mark.parametrize("level", [0.0, -1e4, 1e4, 123.25])
def test_uniform_scores_give_log_c(dtype, c, level):
    n = 3
    scores = np.full((n, c), level, dtype)
    y = np.arange(n) % c
    want_d = np.full((n, c), 1.0 / (c * n))
    want_d[np.arange(n), y] -= 1.0 / n
    for kernels in (C, P):
        loss, d = kernels.softmax_cross_entropy(scores, y)
        assert loss == pytest.approx(math.log(c), rel=1e-14, abs=1e-15)
        np.testing.assert_allclose(d, want_d.astype(dtype), rtol=RTOL[np.dtype(dtype)],
                                   atol=1e-8 if dtype == np.float32 else 1e-17)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_known_values(dtype):
    # Two classes with scores (0, d): loss = log(1 + e^d) for label 0, log(1 + e^-d) for label 1.
    d = np.array([1.0, -2.0, 0.5, 30.0])
    scores = np.stack([np.zeros_like(d), d], axis=1).astype(dtype)
    d = scores[:, 1].astype(np.float64)
    for label in (0, 1):
        y = np.full(4, label)
        want = np.mean(np.logaddexp(0, d if label == 0 else -d))
        for kernels in (C, P):
            loss, _ = kernels.softmax_cross_entropy(scores, y)
            assert loss == pytest.approx(want, rel=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_nan_and_inf_propagate_alike(act, alpha, dtype):
    """NaN in, NaN out on both backends (compiled relu, float32 elu and float32 sigmoid once
    mapped NaN to 0)."""
    z = np.array([[np.nan, -np.nan, np.inf, -np.inf, 1.0, -1.0]], dtype)
    with np.errstate(invalid="ignore"):
        got, want = call_both("bias_act_forward", z, None, activation=act, alpha=alpha)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.all(np.isnan(got[0, :2])), f"{act}({z[0, :2]}) = {got[0, :2]}"
    np.testing.assert_allclose(got[0, 2:], want[0, 2:], rtol=RTOL[np.dtype(dtype)])


# ------------------------------------------------------------------------------------------------
# Thread counts: shapes above the parallel threshold (N * M >= 65536)


@pytest.fixture
def restore_threads():
    previous = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(previous)
    assert fastnn.get_num_threads() == previous


def _per_thread_count(run):
    results = {}
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        if fastnn.openmp_enabled():
            assert _kernels.parallel.get_num_threads() == threads
        results[threads] = run()
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_threads_bias_act(rng, restore_threads, act, alpha, dtype):
    n, m = 256, 257
    assert n * m >= 65536
    Z, b, A, dA = bias_inputs(rng, n, m, dtype, act, alpha)
    want_fwd = P.bias_act_forward(Z, b, activation=act, alpha=alpha)
    want_dZ, want_db = P.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                           db=np.empty(m, dtype))
    db0 = rng.standard_normal(m).astype(dtype)
    want_acc = P.bias_act_backward(dA, A, activation=act, alpha=alpha, db=db0.copy(),
                                   accumulate=True)[1]
    db_scale = float(np.abs(dA).sum(axis=0).max()) * max(1.0, alpha)

    def run():
        fwd = C.bias_act_forward(Z, b, activation=act, alpha=alpha)
        dZ, db = C.bias_act_backward(dA, A, activation=act, alpha=alpha, db=np.empty(m, dtype))
        acc = C.bias_act_backward(dA, A, activation=act, alpha=alpha, db=db0.copy(),
                                  accumulate=True)[1]
        dZ_no_bias, no_db = C.bias_act_backward(dA, A, activation=act, alpha=alpha)  # own path
        assert no_db is None
        return fwd, dZ, db, acc, dZ_no_bias

    results = _per_thread_count(run)
    for fwd, dZ, db, acc, dZ_no_bias in results.values():
        assert_close(fwd, want_fwd)
        assert_close(dZ, want_dZ, scale=float(np.abs(dA).max()) * max(1.0, alpha))
        assert_close(db, want_db, scale=db_scale)
        assert_close(acc, want_acc, scale=db_scale + 5)
        np.testing.assert_array_equal(dZ_no_bias, dZ)
    one, two = results[1], results[2]
    np.testing.assert_array_equal(one[0], two[0])  # rows are independent: bitwise equal
    np.testing.assert_array_equal(one[1], two[1])
    assert_close(one[2], two[2], scale=db_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,alpha", [("relu", 0.0), ("elu", 0.7), ("tanh", 0.0)],
                         ids=["relu", "elu", "tanh"])
def test_threads_dense(rng, restore_threads, act, alpha, dtype):
    n, k, m = 300, 33, 250
    assert n * m >= 65536
    X, W, b, A, dA = dense_inputs(rng, n, k, m, dtype, act, alpha)
    want_fwd = P.dense_forward(X, W, b, activation=act, alpha=alpha)
    want_bwd = P.dense_backward(dA, X, W, A, activation=act, alpha=alpha)

    def run():
        return (C.dense_forward(X, W, b, activation=act, alpha=alpha),
                C.dense_backward(dA, X, W, A, activation=act, alpha=alpha))

    results = _per_thread_count(run)
    for fwd, bwd in results.values():
        assert_close(fwd, want_fwd)
        for g, w, scale in zip(bwd, want_bwd, backward_scales(X, W, dA, alpha)):
            assert_close(g, w, scale=scale)
    np.testing.assert_array_equal(results[1][0], results[2][0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_softmax_cross_entropy(rng, restore_threads, dtype):
    n, c = 128, 130
    assert n * c * 4 >= 65536
    scores = (4 * rng.standard_normal((n, c))).astype(dtype)
    y = rng.integers(0, c, size=n)
    want_loss, want_d = P.softmax_cross_entropy(scores, y)
    results = _per_thread_count(lambda: C.softmax_cross_entropy(scores, y))
    for loss, d in results.values():
        assert loss == pytest.approx(want_loss, rel=RTOL[np.dtype(dtype)])
        assert_close(d, want_d, scale=1 / n)
    np.testing.assert_array_equal(results[1][1], results[2][1])
    assert results[1][0] == pytest.approx(results[2][0], rel=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["plain_weight_decay", "nesterov", "dampening"])
def test_threads_sgd_update(rng, restore_threads, variant, dtype):
    shape = (300, 250)
    options = SGD_VARIANTS[variant]
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]

    def run_on(kernels):
        p, buf = p0.copy(), np.zeros(shape, dtype)
        for step, g in enumerate(grads):
            kernels.sgd_update(p, g, buf, lr=0.05, first_step=step == 0, **options)
        return p, buf

    want_p, want_buf = run_on(P)
    results = _per_thread_count(lambda: run_on(C))
    for p, buf in results.values():
        assert_close(p, want_p, scale=float(np.abs(want_p).max()))
        assert_close(buf, want_buf, scale=float(np.abs(want_buf).max()))
    np.testing.assert_array_equal(results[1][0], results[2][0])


# ------------------------------------------------------------------------------------------------
# Property-based: drawn shapes and values

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def float_matrix(draw, rows, cols, dtype, bound=30.0):
    return draw(hnp.arrays(dtype, (rows, cols), elements=st.floats(
        -bound, bound, allow_nan=False, width=np.dtype(dtype).itemsize * 8)))


@st.composite
def bias_act_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    act, alpha = draw(st.sampled_from(ACTIVATIONS))
    if act in ("leaky_relu", "elu"):
        alpha = draw(st.floats(0.01 if act == "elu" else 0.0, 3.0))
    Z = draw(float_matrix(n, m, dtype))
    b = draw(float_matrix(1, m, dtype))[0]
    dA = draw(float_matrix(n, m, dtype, bound=5.0))
    return dtype, act, alpha, Z, b, dA


@PROPERTY_SETTINGS
@given(bias_act_case())
def test_property_bias_act(case):
    dtype, act, alpha, Z, b, dA = case
    got, want = call_both("bias_act_forward", Z, b, activation=act, alpha=alpha)
    assert_close(got, want, scale=float(np.abs(want).max()) + 1e-30)
    (dZ_c, db_c), (dZ_p, db_p) = call_both("bias_act_backward", dA, want, activation=act,
                                           alpha=alpha, db=np.zeros(Z.shape[1], dtype))
    # |act'| <= max(1, alpha); see test_bias_act_backward_matches_twin for these scales.
    assert_close(dZ_c, dZ_p, scale=float(np.abs(dA).max()) * max(1.0, alpha))
    assert_close(db_c, db_p, scale=float(np.abs(dA).sum(axis=0).max()) * max(1.0, alpha))


@st.composite
def dense_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n, k, m = draw(st.integers(1, 5)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    act, alpha = draw(st.sampled_from(ACTIVATIONS))
    X = draw(float_matrix(n, k, dtype, bound=4.0))
    W = draw(float_matrix(k, m, dtype, bound=2.0))
    b = draw(float_matrix(1, m, dtype, bound=2.0))[0]
    dA = draw(float_matrix(n, m, dtype, bound=2.0))
    need_dX = draw(st.booleans())
    return dtype, act, alpha, X, W, b, dA, need_dX


@PROPERTY_SETTINGS
@given(dense_case())
def test_property_dense(case):
    dtype, act, alpha, X, W, b, dA, need_dX = case
    got, want = call_both("dense_forward", X, W, b, activation=act, alpha=alpha)
    # Scale: the magnitude of the terms summed in X @ W + b, not of the (maybe cancelled) result.
    term_scale = float((np.abs(X) @ np.abs(W)).max(initial=0) + np.abs(b).max()) + 1e-30
    assert_close(got, want, scale=term_scale)
    got, want = call_both("dense_backward", dA, X, W, want, activation=act, alpha=alpha,
                          need_dX=need_dX)
    if not need_dX:
        assert got[0] is None and want[0] is None
        got, want = got[1:], want[1:]
    scales = backward_scales(X, W, dA, alpha)[0 if need_dX else 1:]
    for g, w, scale in zip(got, want, scales):
        assert_close(g, w, scale=scale)


@st.composite
def softmax_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n, c = draw(st.integers(1, 8)), draw(st.integers(1, 30))
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0, 1e4]))
    scores = draw(float_matrix(n, c, dtype, bound=1.0)) * dtype(scale)
    y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
    return dtype, scores, y


@PROPERTY_SETTINGS
@given(softmax_case())
def test_property_softmax_cross_entropy(case):
    dtype, scores, y = case
    n = scores.shape[0]
    (loss_c, d_c), (loss_p, d_p) = call_both("softmax_cross_entropy", scores, y)
    assert math.isfinite(loss_c) and loss_c >= -1e-12
    # The loss is a difference of terms as large as the scores' spread.
    spread = float(np.abs(scores).max()) + 1.0
    assert loss_c == pytest.approx(loss_p, rel=RTOL[np.dtype(dtype)],
                                   abs=RTOL[np.dtype(dtype)] * spread)
    assert_close(d_c, d_p, scale=1.0 / n)


@st.composite
def sgd_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    size = draw(st.integers(1, 50))
    variant = draw(st.sampled_from(sorted(SGD_VARIANTS)))
    options = dict(SGD_VARIANTS[variant])
    if options["momentum"]:
        options["momentum"] = draw(st.floats(0.05, 0.99))
    lr = draw(st.floats(1e-4, 1.0))
    p = draw(float_matrix(1, size, dtype, bound=10.0))[0]
    grads = draw(st.lists(float_matrix(1, size, dtype, bound=10.0), min_size=1, max_size=4))
    return dtype, lr, options, p, [g[0] for g in grads]


@PROPERTY_SETTINGS
@given(sgd_case())
def test_property_sgd_update(case):
    dtype, lr, options, p0, grads = case
    results = []
    for kernels in (C, P):
        p, buf = p0.copy(), np.zeros_like(p0)
        for step, g in enumerate(grads):
            kernels.sgd_update(p, g, buf, lr=lr, first_step=step == 0, **options)
        results.append((p, buf))
    (p_c, buf_c), (p_p, buf_p) = results
    # Scale: the largest term in any update, so that cancellation leaves room for rounding.
    scale = 3 * max(float(np.abs(a).max()) for a in [p0, p_p, buf_p, *grads]) + 1e-30
    assert_close(p_c, p_p, scale=scale)
    assert_close(buf_c, buf_p, scale=scale)


# ------------------------------------------------------------------------------------------------
# Against torch.optim.SGD


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", sorted(SGD_VARIANTS))
def test_sgd_update_matches_torch(variant, dtype):
    torch = pytest.importorskip("torch")
    options = SGD_VARIANTS[variant]
    rng = np.random.default_rng(2024)
    shape = (33, 7)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(20)]

    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = torch.optim.SGD([tp], lr=0.05, momentum=options.get("momentum", 0.0),
                          dampening=options.get("dampening", 0.0),
                          weight_decay=options.get("weight_decay", 0.0),
                          nesterov=options.get("nesterov", False))
    mine = {kernels.name: (p0.copy(), np.zeros(shape, dtype)) for kernels in (C, P)}
    for step, g in enumerate(grads):
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        for kernels in (C, P):
            p, buf = mine[kernels.name]
            kernels.sgd_update(p, g, buf, lr=0.05, first_step=step == 0, **options)
        want = tp.detach().numpy()
        for name, (p, buf) in mine.items():
            assert p.dtype == want.dtype
            np.testing.assert_allclose(p, want, rtol=RTOL[np.dtype(dtype)],
                                       atol=RTOL[np.dtype(dtype)] * 10,
                                       err_msg=f"{name}, step {step}")
            if options["momentum"]:
                torch_buf = opt.state[tp]["momentum_buffer"].numpy()
                np.testing.assert_allclose(buf, torch_buf, rtol=RTOL[np.dtype(dtype)],
                                           atol=RTOL[np.dtype(dtype)] * 10,
                                           err_msg=f"{name} momentum buffer, step {step}")


@pytest.mark.backend_independent
def test_float32_tanh_saturates_where_numpy_does():
    """Where NumPy's float32 tanh returns +-1 the compiled one does too, so the gradient
    1 - tanh^2 is exactly 0 there on both backends (it was 4.8e-7 for any large input)."""
    x = np.arange(0x40E00000, 0x41400000, 7, dtype=np.uint32).view(np.float32)  # [7, 12)
    x = np.concatenate([x, np.float32([20, 100, 1e4, 1e30, 3.4e38, np.inf])])
    for z in (x, -x):
        got = C.bias_act_forward(z[None, :], None, activation="tanh")[0]
        ones = np.abs(np.tanh(z)) == 1
        assert ones.sum() > 1000
        np.testing.assert_array_equal(got[ones], np.tanh(z)[ones])
        np.testing.assert_allclose(got, np.tanh(z.astype(np.float64)), rtol=3.2e-7, atol=0)
    # A tanh layer fed huge pre-activations: the same dW (zero) on both backends.
    X = np.float32([[1e30, -1e30, 20.0], [50.0, -3e38, 1e4]])
    W = np.eye(3, dtype=np.float32)
    dA = np.ones((2, 3), np.float32)
    results = []
    for kernels in (C, P):
        A = kernels.dense_forward(X, W, np.zeros(3, np.float32), activation="tanh")
        _, dW, db = kernels.dense_backward(dA, X, W, A, activation="tanh")
        results.append((A, dW, db))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][1], 0)


@pytest.mark.backend_independent
def test_float32_tanh_saturates_at_the_same_point_on_both_backends():
    """Every float32 in [8.5, 10.5], both signs: the two backends return +-1 on the same inputs
    (from 9.010914, where tanh rounds to 1), so the gradient 1 - A**2 is 0 on both or on
    neither; elsewhere they agree within the kernel's few ulp."""
    x = np.arange(0x41080000, 0x41280001, dtype=np.uint32).view(np.float32)  # [8.5, 10.5]
    for z in (x, -x):
        Z = z[None, :]
        got, want = (k.bias_act_forward(Z, None, activation="tanh") for k in (C, P))
        np.testing.assert_array_equal(np.abs(got) == 1, np.abs(want) == 1)
        assert (np.abs(got) == 1).mean() > 0.7
        np.testing.assert_allclose(got, want, rtol=3.2e-7, atol=0)
        dA = np.ones_like(Z)
        dZ = [k.bias_act_backward(dA, a, activation="tanh")[0] for k, a in ((C, got), (P, want))]
        np.testing.assert_array_equal(dZ[0] == 0, dZ[1] == 0)
        # 1 - A**2 near 1 inherits A's error doubled, in absolute terms: 2 x 3.2e-7.
        np.testing.assert_allclose(dZ[0], dZ[1], rtol=0, atol=6.5e-7)
