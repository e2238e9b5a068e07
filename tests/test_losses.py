"""The losses: multiclass hinge (svm), binary logistic, binary hinge, mse (and softmax
cross-entropy where every loss is checked).

- compiled == twin (backend_independent tests calling fastnn._kernels.CYTHON and .NUMPY): odd
  shapes, both dtypes, non-contiguous and other-dtype inputs, dscores aliasing, threads, error
  parity for bad labels and shapes;
- on the active backend (once per backend): float64 centered-difference gradient checks,
  agreement with torch.nn losses, stability for extreme scores, known values, losses.get.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import _backend, _kernels, losses
from fastnn.gradient_check import numerical_gradient, relative_error

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

DTYPES = (np.float32, np.float64)
NEW_LOSSES = ("multiclass_hinge", "binary_logistic", "binary_hinge", "mse")
ALL_LOSSES = ("softmax_cross_entropy",) + NEW_LOSSES
MULTICLASS = ("softmax_cross_entropy", "multiclass_hinge")
BINARY = ("binary_logistic", "binary_hinge")

needs_compiled = pytest.mark.skipif(C is None, reason="the compiled backend is not built")
independent = [pytest.mark.backend_independent, needs_compiled]


def make_case(rng, name, n, c, dtype, scale=3.0):
    """(scores, y) for loss `name`: (n, c) class scores, (n,) or (n, 1) binary scores with {0,1}
    labels, or (n, c) regression predictions and targets."""
    if name in MULTICLASS:
        return (scale * rng.standard_normal((n, c))).astype(dtype), rng.integers(0, c, size=n)
    if name in BINARY:
        shape = (n,) if c == 1 else (n, 1)
        return (scale * rng.standard_normal(shape)).astype(dtype), rng.integers(0, 2, size=n)
    return (scale * rng.standard_normal((n, c))).astype(dtype), rng.standard_normal((n, c))


def grad_scale(name, scores):
    """The magnitude of dscores' entries: 1/N per sample (hinge: up to (C-1)/N), mse 2|d|/size."""
    n = scores.shape[0]
    if name == "mse":
        return 2 * (float(np.abs(scores).max()) + 5) / scores.size
    if name == "multiclass_hinge":
        return max(scores.shape[1] - 1, 1) / n
    return 1.0 / n


def both(name, scores, y, **kwargs):
    out = []
    for kernels in (C, P):
        kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        out.append(getattr(kernels, name)(scores, y, **kw))
    return out


def assert_backends_agree(name, scores, y, results):
    (loss_c, d_c), (loss_p, d_p) = results
    dtype = np.asarray(scores).dtype
    rtol = RTOL[dtype]
    assert isinstance(loss_c, float) and isinstance(loss_p, float)
    # The loss sums terms as large as the scores (hinge margins, logistic's max(s, 0)).
    loss_scale = float(np.abs(scores).max()) * (scores.shape[1] if scores.ndim == 2 else 1) + 1
    if name == "mse":
        loss_scale = (float(np.abs(scores).max()) + float(np.abs(y).max())) ** 2
    assert loss_c == pytest.approx(loss_p, rel=rtol, abs=rtol * loss_scale)
    assert d_c.shape == d_p.shape == np.shape(scores)
    assert_close(d_c, d_p, grad_scale(name, np.asarray(scores)), rtol=rtol)


# ------------------------------------------------------------------------------------------------
# Compiled == twin

# (9, 64) and (9, 67): rows long enough for the multiclass hinge's 8-lane row function, one with
# classes left over after the lanes.
SHAPES = [(1, 1), (1, 7), (3, 2), (3, 33), (17, 7), (9, 64), (9, 67), (64, 1000), (1000, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.backend_independent
@needs_compiled
def test_kernel_matches_twin(rng, name, shape, dtype):
    n, c = shape
    scores, y = make_case(rng, name, n, c, dtype)
    results = both(name, scores, y)
    assert_backends_agree(name, scores, y, results)
    assert math.isfinite(results[0][0])
    if name in BINARY:
        assert results[0][1].shape == scores.shape  # (N,) stays (N,), (N, 1) stays (N, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["multiclass_hinge", "mse"])
@pytest.mark.backend_independent
@needs_compiled
def test_kernel_matches_twin_with_1_and_2_threads(rng, name, dtype):
    n, c = 300, 251  # n * c > 65536: the threaded path
    scores, y = make_case(rng, name, n, c, dtype)
    want = getattr(P, name)(scores, y)
    previous = fastnn.get_num_threads()
    try:
        got = {}
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            got[threads] = getattr(C, name)(scores, y)
    finally:
        fastnn.set_num_threads(previous)
    for result in got.values():
        assert_backends_agree(name, scores, y, [result, want])
    np.testing.assert_array_equal(got[1][1], got[2][1])  # elementwise/row-wise gradients
    assert got[1][0] == pytest.approx(got[2][0], rel=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [1, 2, 7, 8, 9, 16, 33, 1000])
@pytest.mark.backend_independent
@needs_compiled
def test_softmax_finds_the_row_maximum_wherever_it_is(classes, dtype):
    """One score 1e4 above the rest, in every position the compiled row max treats differently
    (its 8 lanes, the leftover columns, the first): missing it would exponentiate +1e4."""
    positions = sorted({0, 1, 7, 8, 9, classes // 2, classes - 2, classes - 1} & set(range(classes)))
    scores = np.zeros((len(positions), classes), dtype)
    scores[np.arange(len(positions)), positions] = 1e4
    right = np.array(positions)
    wrong = (right + 1) % classes
    for y, want in ((right, 0.0), (wrong, 1e4 if classes > 1 else 0.0)):
        for kernels in (C, P):
            loss, dscores = kernels.softmax_cross_entropy(scores, y)
            assert loss == pytest.approx(want, rel=RTOL[np.dtype(dtype)]), kernels.name
            onehot = np.zeros_like(dscores)
            onehot[np.arange(len(y)), y] = 1
            softmax = np.zeros_like(dscores)
            softmax[np.arange(len(positions)), positions] = 1
            np.testing.assert_allclose(dscores, (softmax - onehot) / len(y), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.backend_independent
@needs_compiled
def test_nan_scores_give_the_same_loss_on_both_backends(dtype):
    """A NaN score: the binary hinge's loss is NaN (np.maximum propagates it); the multiclass
    hinge leaves a NaN margin out (not > 0), in short rows and in long ones alike."""
    for kernels in (C, P):
        loss, d = kernels.binary_hinge(np.array([1.0, np.nan, -2.0], dtype), [1, 0, 0])
        assert math.isnan(loss) and np.array_equal(d, np.zeros(3, dtype))
    for classes in (3, 67):
        scores = np.zeros((2, classes), dtype)
        scores[0, 1] = np.nan
        scores[1, 0] = np.nan  # the label's own score
        (loss_c, d_c), (loss_p, d_p) = both("multiclass_hinge", scores, np.array([0, 0]))
        assert loss_c == pytest.approx(loss_p) and np.isfinite(loss_c)
        np.testing.assert_array_equal(d_c, d_p)


def _strided(a, rng):
    big = rng.standard_normal(tuple(2 * s + 1 for s in a.shape)).astype(a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    return view


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.backend_independent
@needs_compiled
def test_non_contiguous_and_other_dtype_inputs(rng, name, dtype):
    scores, y = make_case(rng, name, 9, 5, dtype)
    odd_scores = _strided(scores, rng)
    assert not odd_scores.flags.c_contiguous
    if name == "mse":
        odd_y = [np.asfortranarray(y), y.astype(np.float32), np.rint(y).astype(np.int32)]
        ys = [y, y.astype(np.float32).astype(dtype), np.rint(y)]
    else:
        odd_y = [y.astype(np.int32), y.astype(np.uint8), y.astype(np.float64),
                 _strided(y.astype(np.int64), rng)]
        ys = [y] * 4
        if name in BINARY:
            odd_y.append(y.astype(bool))
            ys.append(y)
    for kernels in (C, P):
        kernel = getattr(kernels, name)
        want_loss, want_d = kernel(scores, y)
        loss, d = kernel(odd_scores, y)
        assert loss == want_loss
        np.testing.assert_array_equal(d, want_d)
        assert d.dtype == np.dtype(dtype) and d.flags.c_contiguous
        for labels, plain in zip(odd_y, ys):
            loss, d = kernel(scores, labels)
            ref_loss, ref_d = kernel(scores, plain.astype(dtype) if name == "mse" else plain)
            assert loss == pytest.approx(ref_loss, rel=RTOL[np.dtype(dtype)])
            assert_close(d, ref_d, grad_scale(name, scores), rtol=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.backend_independent
@needs_compiled
def test_scores_of_other_dtypes_are_rejected_alike(name):
    for bad in (np.ones((3, 2), np.float16), np.ones((3, 2), np.int64), [[1.0, 2.0]] * 3,
                np.ones((3, 2), complex)):
        if name in BINARY and isinstance(bad, np.ndarray):
            bad = bad[:, :1]
        for kernels in (C, P):
            with pytest.raises(TypeError):
                getattr(kernels, name)(bad, np.zeros((3, 2)) if name == "mse" else [0, 1, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.parametrize("kernels", [C, P], ids=["cython", "numpy"])
@pytest.mark.backend_independent
@needs_compiled
def test_dscores_buffer_and_aliasing(rng, kernels, name, dtype):
    scores, y = make_case(rng, name, 17, 9, dtype)
    kernel = getattr(kernels, name)
    want_loss, want_d = kernel(scores, y)
    out = np.full(scores.shape, np.nan, dtype)
    loss, d = kernel(scores, y, dscores=out)
    assert d is out and loss == want_loss
    np.testing.assert_array_equal(d, want_d)
    alias = scores.copy()
    loss, d = kernel(alias, y, dscores=alias)  # written over the scores it reads
    assert d is alias and loss == want_loss
    np.testing.assert_array_equal(d, want_d)
    if name == "mse":  # and over the targets it reads
        target = y.astype(dtype)
        want_loss, want_d = kernel(scores, target.copy())
        loss, d = kernel(scores, target, dscores=target)
        assert d is target and loss == want_loss
        np.testing.assert_array_equal(d, want_d)


@pytest.mark.parametrize("name", NEW_LOSSES)
@pytest.mark.backend_independent
@needs_compiled
def test_bad_dscores_buffers_raise_the_same_error(name):
    scores, y = make_case(np.random.default_rng(0), name, 4, 3, np.float64)
    non_contiguous = np.zeros(scores.shape + (2,))[..., 0]
    assert not non_contiguous.flags.c_contiguous
    bad = {TypeError: [np.zeros(scores.shape, np.float32), scores.tolist()],
           ValueError: [np.zeros((5,) + scores.shape[1:]), non_contiguous]}
    for error, buffers in bad.items():
        for buffer in buffers:
            for kernels in (C, P):
                with pytest.raises(error):
                    getattr(kernels, name)(scores, y, dscores=buffer)


# (loss, description, scores shape or array, labels) -> the error both backends must raise
ERROR_CASES = [
    ("multiclass_hinge", "label_out_of_range", (4, 3), [0, 1, 3, 0], ValueError),
    ("multiclass_hinge", "negative_label", (4, 3), [0, -1, 1, 2], ValueError),
    ("multiclass_hinge", "non_integer_label", (4, 3), [0, 1.5, 1, 2], ValueError),
    ("multiclass_hinge", "nan_label", (4, 3), [0, np.nan, 1, 2], ValueError),
    ("multiclass_hinge", "string_labels", (4, 3), ["a", "b", "c", "d"], TypeError),
    ("multiclass_hinge", "labels_2d", (4, 3), [[0], [1], [1], [2]], ValueError),
    ("multiclass_hinge", "too_few_labels", (4, 3), [0, 1, 2], ValueError),
    ("multiclass_hinge", "scores_1d", (3,), [0, 1, 2], ValueError),
    ("multiclass_hinge", "scores_3d", (2, 3, 1), [0, 1], ValueError),
    ("multiclass_hinge", "empty_batch", (0, 3), [], ValueError),
    ("binary_logistic", "plus_minus_one", (4,), [-1, 1, 1, -1], ValueError),
    ("binary_logistic", "label_two", (4,), [0, 2, 1, 0], ValueError),
    ("binary_logistic", "label_half", (4,), [0, 0.5, 1, 0], ValueError),
    ("binary_logistic", "nan_label", (4,), [0, np.nan, 1, 0], ValueError),
    ("binary_logistic", "string_labels", (4,), ["0", "1", "1", "0"], TypeError),
    ("binary_logistic", "too_few_labels", (4,), [0, 1], ValueError),
    ("binary_logistic", "labels_n_by_2", (4,), np.zeros((4, 2)), ValueError),
    ("binary_logistic", "scores_n_by_2", (4, 2), [0, 1, 1, 0], ValueError),
    ("binary_logistic", "scores_0d", (), [1], ValueError),
    ("binary_logistic", "empty_batch", (0,), [], ValueError),
    ("binary_hinge", "label_two", (4,), [-1, 2, 1, 0], ValueError),
    ("binary_hinge", "label_half", (4,), [1, 0.5, 1, 0], ValueError),
    ("binary_hinge", "too_many_labels", (4, 1), [1, 0, 1, 0, 1], ValueError),
    ("binary_hinge", "scores_n_by_3", (4, 3), [1, 0, 1, 0], ValueError),
    ("binary_hinge", "empty_batch", (0, 1), [], ValueError),
    ("mse", "target_shape", (4, 3), np.zeros((4, 2)), ValueError),
    ("mse", "target_flat", (4, 3), np.zeros(12), ValueError),
    ("mse", "string_targets", (2, 2), np.full((2, 2), "a"), TypeError),
    ("mse", "complex_targets", (2, 2), np.ones((2, 2), complex), TypeError),
    ("mse", "no_targets", (2, 2), None, TypeError),
    ("mse", "empty_batch", (0, 3), np.zeros((0, 3)), ValueError),
]


@pytest.mark.parametrize("name,what,shape,labels,error", ERROR_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in ERROR_CASES])
@pytest.mark.backend_independent
@needs_compiled
def test_bad_arguments_raise_the_same_error(name, what, shape, labels, error):
    scores = np.random.default_rng(0).standard_normal(shape)
    raised = []
    for kernels in (C, P):
        with pytest.raises((TypeError, ValueError)) as info:
            getattr(kernels, name)(scores, labels)
        raised.append(type(info.value))
    assert raised == [error, error]


@pytest.mark.backend_independent
@needs_compiled
def test_binary_hinge_accepts_both_label_conventions():
    scores = np.array([0.3, -2.0, 1.5, 0.9, -0.2])
    pm, zero_one = np.array([1, -1, -1, 1, 1]), np.array([1, 0, 0, 1, 1])
    for kernels in (C, P):
        a, b = kernels.binary_hinge(scores, pm), kernels.binary_hinge(scores, zero_one)
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])
        c = kernels.binary_hinge(scores, zero_one.astype(bool))
        assert c[0] == a[0]


# ------------------------------------------------------------------------------------------------
# Property-based: compiled == twin on drawn shapes and values


@st.composite
def loss_case(draw):
    name = draw(st.sampled_from(NEW_LOSSES))
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(1, 8))
    c = 1 if name in BINARY else draw(st.integers(1, 12))
    shape = (n,) if name in BINARY and draw(st.booleans()) else (n, c)
    bound = draw(st.sampled_from([1e-3, 1.0, 50.0, 1e4]))
    scores = draw(hnp.arrays(dtype, shape, elements=st.floats(
        -1, 1, allow_nan=False, width=np.dtype(dtype).itemsize * 8))) * dtype(bound)
    if name == "mse":
        y = draw(hnp.arrays(np.float64, shape, elements=st.floats(-bound, bound)))
    elif name in BINARY:
        y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    else:
        y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
    return name, scores, y


@settings(max_examples=40, deadline=None)
@given(loss_case())
@pytest.mark.backend_independent
@needs_compiled
def test_property_kernel_matches_twin(case):
    name, scores, y = case
    results = both(name, scores, y)
    assert_backends_agree(name, scores, y, results)
    assert math.isfinite(results[0][0]) and np.all(np.isfinite(results[0][1]))


# ------------------------------------------------------------------------------------------------
# Gradient checks on the active backend (float64 centered differences)


def away_from_kinks(name, scores, y, margin=1e-2):
    """Move scores so that every hinge margin is at least `margin` from its kink."""
    scores = scores.copy()
    if name == "multiclass_hinge":
        rows = np.arange(scores.shape[0])
        for _ in range(10):
            m = scores - scores[rows, y][:, None] + 1
            m[rows, y] = 1.0
            near = np.abs(m) < margin
            scores[near] += 3 * margin
        m = scores - scores[rows, y][:, None] + 1
        m[rows, y] = 1.0
        assert np.abs(m).min() >= margin
    elif name == "binary_hinge":
        t = np.where(np.asarray(y).reshape(-1) > 0, 1.0, -1.0).reshape(np.shape(scores)[:1] +
                                                                       (1,) * (scores.ndim - 1))
        m = 1 - t * scores
        scores = np.where(np.abs(m) < margin, scores + 3 * margin, scores)
        assert np.abs(1 - t * scores).min() >= margin
    return scores


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (5, 3), (8, 10), (16, 1)], ids=str)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradient_matches_centered_differences(rng, name, shape):
    n, c = shape
    if name in MULTICLASS and c == 1 and name == "softmax_cross_entropy":
        c = 2
    scores, y = make_case(rng, name, n, c, np.float64, scale=2.0)
    scores = away_from_kinks(name, scores, y)
    loss_fn = getattr(losses, name)
    loss, analytic = loss_fn(scores, y)
    assert analytic.shape == scores.shape and analytic.dtype == np.float64
    x = scores.copy()
    numeric = numerical_gradient(lambda z: loss_fn(z, y)[0], x, h=1e-6)
    np.testing.assert_array_equal(x, scores)  # restored
    error = relative_error(analytic, numeric)
    assert error < 1e-7, f"relative error {error:.2e}"
    if not (name == "multiclass_hinge" and c == 1):
        assert np.abs(numeric).max() > 1e-3  # not vacuous


# ------------------------------------------------------------------------------------------------
# Against torch.nn losses


def _torch_reference(torch, name, scores, y):
    s = torch.tensor(scores, requires_grad=True)
    if name == "softmax_cross_entropy":
        loss = torch.nn.CrossEntropyLoss()(s, torch.tensor(y))
    elif name == "multiclass_hinge":  # torch divides each sample's sum by C
        loss = torch.nn.MultiMarginLoss(p=1, margin=1.0)(s, torch.tensor(y)) * scores.shape[1]
    elif name == "binary_logistic":
        loss = torch.nn.BCEWithLogitsLoss()(s, torch.tensor(y, dtype=s.dtype).reshape(s.shape))
    elif name == "binary_hinge":  # the formula: mean of max(0, 1 - t s), t = 2y - 1
        t = torch.tensor(2.0 * np.asarray(y) - 1.0, dtype=s.dtype).reshape(s.shape)
        loss = torch.clamp(1 - t * s, min=0).mean()
    else:
        loss = torch.nn.MSELoss()(s, torch.tensor(y, dtype=s.dtype))
    loss.backward()
    return float(loss.detach()), s.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (7, 3), (33, 10), (64, 1)], ids=str)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_matches_torch(rng, name, shape, dtype):
    torch = pytest.importorskip("torch")
    n, c = shape
    if name in MULTICLASS and c == 1:
        c = 4
    scores, y = make_case(rng, name, n, c, dtype)
    if name == "mse":
        y = y.astype(dtype)
    scores = away_from_kinks(name, scores, y).astype(dtype)
    want_loss, want_d = _torch_reference(torch, name, scores, y)
    loss, d = getattr(losses, name)(scores, y)
    rtol = 2 * RTOL[np.dtype(dtype)]
    assert loss == pytest.approx(want_loss, rel=rtol, abs=rtol)
    assert_close(d, want_d.astype(dtype), grad_scale(name, scores), rtol=rtol)


# ------------------------------------------------------------------------------------------------
# Stability and known values on the active backend


def _extreme_case(name, level, dtype):
    rng = np.random.default_rng(8)
    if name in BINARY:
        scores = np.array([level, -level, level, -level, 0.0, level / 2], dtype)
        y = np.array([1, 1, 0, 0, 1, 1])
    elif name in MULTICLASS:
        scores = (level * rng.choice([-1.0, 1.0, 0.5, 0.0], size=(6, 5))).astype(dtype)
        y = rng.integers(0, 5, size=6)
    else:
        scores = (level * rng.choice([-1.0, 1.0], size=(6, 5))).astype(dtype)
        y = (-scores.astype(np.float64) / 2)
    return scores, y


def _reference_loss(name, scores, y):
    """The loss in float64 (in log-space where exp would overflow), for extreme values."""
    s = np.asarray(scores, np.float64)
    if name == "softmax_cross_entropy":
        mx = s.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(s - mx).sum(axis=1))
        return float(np.mean(lse - s[np.arange(len(y)), y]))
    if name == "multiclass_hinge":
        m = np.maximum(0, s - s[np.arange(len(y)), y][:, None] + 1)
        m[np.arange(len(y)), y] = 0
        return float(m.sum() / len(y))
    if name == "binary_logistic":
        return float(np.mean(np.logaddexp(0, s) - y * s))
    if name == "binary_hinge":
        return float(np.mean(np.maximum(0, 1 - (2 * y - 1) * s)))
    return float(np.mean((s - y) ** 2))


@pytest.mark.parametrize("level,dtype", [(1e4, np.float32), (1e4, np.float64),
                                         (1e30, np.float64)], ids=["1e4-f32", "1e4-f64",
                                                                   "1e30-f64"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_extreme_scores_give_finite_values_without_warnings(name, level, dtype):
    scores, y = _extreme_case(name, level, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, d = getattr(losses, name)(scores, y)
    assert math.isfinite(loss)
    assert np.all(np.isfinite(d))
    assert loss == pytest.approx(_reference_loss(name, scores, y), rel=1e-6)
    if name != "mse":  # every per-sample gradient is bounded by 1 (hinge: C - 1) over N
        assert np.abs(d).max() <= grad_scale(name, scores) * (1 + 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_known_values(dtype):
    n = 4
    # multiclass hinge: the correct class ahead by more than 1 everywhere -> 0 and no gradient
    scores = np.array([[5.0, 1.0, 2.0], [0.0, 3.1, 2.0], [-1.0, -3.0, 0.5], [2.0, 2.0, 4.5]],
                      dtype)
    loss, d = losses.multiclass_hinge(scores, [0, 1, 2, 2])
    assert loss == 0.0 and not d.any()
    # ... all scores equal -> each wrong class contributes a margin of 1
    loss, d = losses.svm(np.zeros((n, 5), dtype), [0, 1, 2, 3])
    assert loss == pytest.approx(4.0)
    want = np.full((n, 5), 1 / n)
    want[np.arange(n), [0, 1, 2, 3]] = -4 / n
    np.testing.assert_allclose(d, want, rtol=1e-7)
    # ... a margin exactly at the kink (s_j - s_y + 1 = 0) counts as inactive on every backend
    loss, d = losses.multiclass_hinge(np.array([[1.0, 0.0]], dtype), [0])
    assert loss == 0.0 and not d.any()
    # binary logistic at s = 0: ln 2, gradient (1/2 - y) / N
    loss, d = losses.binary_logistic(np.zeros(n, dtype), [0, 1, 1, 0])
    assert loss == pytest.approx(math.log(2), rel=1e-7)
    np.testing.assert_allclose(d, np.array([0.5, -0.5, -0.5, 0.5]) / n, rtol=1e-7)
    # binary hinge: s = 0 -> 1 each; t s = 1 (on the kink) -> 0; t s = 3 -> 0; t s = -2 -> 3
    loss, d = losses.binary_hinge(np.array([0.0, 1.0, -3.0, 2.0], dtype), [1, 1, 0, 0])
    assert loss == pytest.approx((1 + 0 + 0 + 3) / n)
    np.testing.assert_allclose(d, np.array([-1, 0, 0, 1]) / n, rtol=1e-7)
    # mse
    loss, d = losses.mse(np.array([[1.0, 2.0], [3.0, 4.0]], dtype), [[0.0, 2.0], [5.0, 4.0]])
    assert loss == pytest.approx((1 + 0 + 4 + 0) / 4)
    np.testing.assert_allclose(d, np.array([[2, 0], [-4, 0]]) / 4, rtol=1e-7)
    # softmax cross-entropy of equal scores: ln C
    loss, _ = losses.softmax_cross_entropy(np.zeros((n, 7), dtype), [0, 1, 2, 3])
    assert loss == pytest.approx(math.log(7), rel=1e-6)


def test_public_losses_use_the_active_backend(backend, rng):
    for name in ALL_LOSSES:
        scores, y = make_case(rng, name, 5, 4, np.float64)
        got = getattr(losses, name)(scores, y)
        want = getattr(_backend.kernels, name)(scores, y)
        assert _backend.kernels.name == backend
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_get_by_name_alias_and_callable():
    for name in ALL_LOSSES:
        assert losses.get(name) is getattr(losses, name)
    assert losses.get("svm") is losses.multiclass_hinge
    assert losses.svm is losses.multiclass_hinge

    def custom(scores, y):
        return 0.0, np.zeros_like(scores)

    assert losses.get(custom) is custom
    for bad in ("hinge", "SVM", "", None, 3):
        with pytest.raises(ValueError, match="unknown loss"):
            losses.get(bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_accepts_0d_arrays(dtype):
    """0-d prediction and target (as torch.nn.MSELoss accepts); once a ValueError 'targets must be
    1-D, got shape ()' because the 0-d scores were converted to shape (1,)."""
    loss, d = losses.mse(np.array(1.0, dtype), np.array(0.5))
    assert loss == 0.25 and d.shape == () and d.dtype == np.dtype(dtype) and float(d) == 1.0
