"""Dropout: the counter-based mask (identical on both backends and every thread count), the
kernels against their twin, the layer's API and statistics, and a gradient check."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _backend, _kernels
from fastnn._hash import GOLDEN64, MASK64, dropout_key, mix64
from fastnn.gradient_check import numerical_gradient, relative_error

C = _kernels.CYTHON
P = _kernels.NUMPY
DTYPES = (np.float32, np.float64)
# Odd widths and batches, plus shapes above the single-thread threshold (65536 elements).
SHAPES = [(1, 1), (1, 7), (2, 33), (3, 1000), (17, 33), (64, 7), (300, 1000), (1024, 129)]
BIG_SHAPES = [(300, 1000), (1024, 129)]
PROBABILITIES = [0.0, 0.1, 0.5, 0.9]

compiled_only = pytest.mark.skipif(C is None, reason="the compiled backend is not built")


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request):
    previous = fnn.get_num_threads()
    fnn.set_num_threads(request.param)
    yield request.param
    fnn.set_num_threads(previous)


def reference_keep(key, p, flat_indices):
    """The documented rule, one element at a time in Python integers."""
    threshold = int(p * 2**32)
    return np.array([(mix64((key + i * GOLDEN64) & MASK64) >> 32) >= threshold
                     for i in flat_indices])


# ------------------------------------------------------------------------------------------------
# Kernels: compiled against twin


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("p", PROBABILITIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_backward_match_twin_bit_for_bit(rng, shape, dtype, p, threads):
    X = rng.standard_normal(shape).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    key = dropout_key(7, 3, 11)
    out_c, mask_c = C.dropout_forward(X, p=p, key=key)
    out_p, mask_p = P.dropout_forward(X, p=p, key=key)
    assert mask_c.dtype == mask_p.dtype == np.uint8
    np.testing.assert_array_equal(mask_c, mask_p)
    assert set(np.unique(mask_c)) <= {0, 1}
    np.testing.assert_array_equal(out_c, out_p)
    assert out_c.dtype == out_p.dtype == dtype
    dX_c = C.dropout_backward(dA, mask_c, p=p)
    dX_p = P.dropout_backward(dA, mask_p, p=p)
    np.testing.assert_array_equal(dX_c, dX_p)
    # The documented rule, element by element, on a few flat positions.
    flat = sorted({0, X.size // 2, X.size - 1})
    np.testing.assert_array_equal(mask_c.reshape(-1)[flat], reference_keep(key, p, flat))
    # Values: x / (1 - p) where kept, 0 where dropped.
    scale = dtype(1.0 / (1.0 - p))
    np.testing.assert_array_equal(out_c, np.where(mask_c == 1, X * scale, dtype(0)))
    np.testing.assert_array_equal(dX_c, np.where(mask_c == 1, dA * scale, dtype(0)))


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIG_SHAPES, ids=str)
def test_masks_do_not_depend_on_the_thread_count(rng, shape, dtype):
    X = rng.standard_normal(shape).astype(dtype)
    previous = fnn.get_num_threads()
    results = {}
    try:
        for n in (1, 2, 3):
            fnn.set_num_threads(n)
            results[n] = C.dropout_forward(X, p=0.3, key=12345)
    finally:
        fnn.set_num_threads(previous)
    for n in (2, 3):
        np.testing.assert_array_equal(results[n][1], results[1][1])
        np.testing.assert_array_equal(results[n][0], results[1][0])
    np.testing.assert_array_equal(results[1][1], P.dropout_forward(X, p=0.3, key=12345)[1])


@compiled_only
@pytest.mark.backend_independent
def test_mask_is_a_function_of_the_flat_index_only(rng):
    """Element i of a (4, 10) call equals element i of a (40,)-shaped-as-(1, 40) call."""
    X = rng.standard_normal((4, 10))
    for kernels in (C, P):
        _, a = kernels.dropout_forward(X, p=0.5, key=99)
        _, b = kernels.dropout_forward(X.reshape(1, 40), p=0.5, key=99)
        np.testing.assert_array_equal(a.reshape(-1), b.reshape(-1))
        _, c = kernels.dropout_forward(X, p=0.5, key=100)
        assert not np.array_equal(a, c)


def test_key_depends_on_seed_layer_and_step():
    keys = {dropout_key(s, l, t) for s in range(4) for l in range(4) for t in range(4)}
    assert len(keys) == 64
    assert dropout_key(1, 2, 3) == dropout_key(1, 2, 3)
    assert dropout_key(2**64 + 5, 0, 0) == dropout_key(5, 0, 0)  # seed mod 2**64
    assert all(0 <= k <= MASK64 for k in keys)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="non-negative integer"):
            dropout_key(bad, 0, 0)


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_forward_and_backward(rng, dtype):
    X0 = rng.standard_normal((300, 1000)).astype(dtype)
    dA0 = rng.standard_normal(X0.shape).astype(dtype)
    for kernels in (C, P):
        want, mask = kernels.dropout_forward(X0, p=0.4, key=5)
        X = X0.copy()
        out, mask2 = kernels.dropout_forward(X, p=0.4, key=5, out=X)
        assert out is X
        np.testing.assert_array_equal(X, want)
        np.testing.assert_array_equal(mask2, mask)
        want_dX = kernels.dropout_backward(dA0, mask, p=0.4)
        dA = dA0.copy()
        assert kernels.dropout_backward(dA, mask, p=0.4, dX=dA) is dA
        np.testing.assert_array_equal(dA, want_dX)
        # Given buffers are written and returned.
        out, m = np.empty_like(X0), np.empty(X0.shape, np.uint8)
        got = kernels.dropout_forward(X0, p=0.4, key=5, out=out, mask=m)
        assert got[0] is out and got[1] is m


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_read_only_inputs(rng, dtype):
    X = rng.standard_normal((33, 14)).astype(dtype)
    dA = rng.standard_normal((33, 14)).astype(dtype)
    views = {"strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
             "transposed": lambda a: np.asfortranarray(a)}
    for kernels in (C, P):
        want, mask = kernels.dropout_forward(X, p=0.3, key=17)
        want_dX = kernels.dropout_backward(dA, mask, p=0.3)
        for name, view in views.items():
            Xv, dAv = view(X), view(dA)
            assert not Xv.flags.c_contiguous
            got, got_mask = kernels.dropout_forward(Xv, p=0.3, key=17)
            np.testing.assert_array_equal(got, want, err_msg=f"{kernels.name} {name}")
            np.testing.assert_array_equal(got_mask, mask)
            np.testing.assert_array_equal(
                kernels.dropout_backward(dAv, view(mask), p=0.3), want_dX)
        read_only = X.copy()
        read_only.flags.writeable = False
        np.testing.assert_array_equal(kernels.dropout_forward(read_only, p=0.3, key=17)[0], want)
        # A bool mask is read like the uint8 one.
        np.testing.assert_array_equal(kernels.dropout_backward(dA, mask.astype(bool), p=0.3),
                                      want_dX)


def _outcome(call):
    try:
        call()
    except Exception as error:  # the point is to compare what each backend does
        return type(error), str(error)
    return None


@compiled_only
@pytest.mark.backend_independent
def test_bad_arguments_are_rejected_alike(rng):
    X = rng.standard_normal((3, 4))
    mask = np.ones((3, 4), np.uint8)
    cases = [
        ("int X", lambda k: k.dropout_forward(X.astype(np.int64), p=0.5, key=1), TypeError),
        ("float16 X", lambda k: k.dropout_forward(X.astype(np.float16), p=0.5, key=1), TypeError),
        ("1-D X", lambda k: k.dropout_forward(X[0], p=0.5, key=1), ValueError),
        ("p = 1", lambda k: k.dropout_forward(X, p=1.0, key=1), ValueError),
        ("p < 0", lambda k: k.dropout_forward(X, p=-0.1, key=1), ValueError),
        ("p nan", lambda k: k.dropout_forward(X, p=float("nan"), key=1), ValueError),
        ("p text", lambda k: k.dropout_forward(X, p="half", key=1), TypeError),
        ("key < 0", lambda k: k.dropout_forward(X, p=0.5, key=-1), ValueError),
        ("key >= 2**64", lambda k: k.dropout_forward(X, p=0.5, key=2**64), ValueError),
        ("float key", lambda k: k.dropout_forward(X, p=0.5, key=1.0), TypeError),
        ("out dtype", lambda k: k.dropout_forward(X, p=0.5, key=1,
                                                  out=np.empty((3, 4), np.float32)), TypeError),
        ("out shape", lambda k: k.dropout_forward(X, p=0.5, key=1, out=np.empty((4, 3))),
         ValueError),
        ("mask dtype", lambda k: k.dropout_forward(X, p=0.5, key=1,
                                                   mask=np.empty((3, 4), bool)), TypeError),
        ("mask not contiguous", lambda k: k.dropout_forward(
            X, p=0.5, key=1, mask=np.empty((3, 8), np.uint8)[:, ::2]), ValueError),
        ("backward float mask", lambda k: k.dropout_backward(X, mask.astype(float), p=0.5),
         TypeError),
        ("backward mask shape", lambda k: k.dropout_backward(X, mask[:2], p=0.5), ValueError),
        ("backward int dA", lambda k: k.dropout_backward(X.astype(int), mask, p=0.5), TypeError),
        ("backward p = 1", lambda k: k.dropout_backward(X, mask, p=1.0), ValueError),
        ("backward dX dtype", lambda k: k.dropout_backward(X, mask, p=0.5,
                                                           dX=np.empty((3, 4), np.float32)),
         TypeError),
    ]
    for name, call, error in cases:
        got_c, got_p = _outcome(lambda: call(C)), _outcome(lambda: call(P))
        assert got_c == got_p, name
        assert got_c is not None and got_c[0] is error, name


# ------------------------------------------------------------------------------------------------
# Statistics (each backend)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_and_mean_output(p):
    n = 1000 * 1000
    X = np.ones((1000, 1000), np.float64)
    out, mask = _backend.kernels.dropout_forward(X, p=p, key=dropout_key(2024, 1, 0))
    keep = 1 - p
    kept = mask.mean()
    assert abs(kept - keep) < 4 * np.sqrt(p * keep / n)
    # Inverted scaling: E[out] = x. Each output is 0 or 1/keep, with variance p/keep.
    assert abs(out.mean() - 1.0) < 4 * np.sqrt(p / keep / n)
    # Rows and columns are not biased: each row's kept fraction is near keep too.
    row_fraction = mask.mean(axis=1)
    assert np.all(np.abs(row_fraction - keep) < 6 * np.sqrt(p * keep / 1000))
    # Two steps' masks are independent: both kept with probability keep**2.
    _, other = _backend.kernels.dropout_forward(X, p=p, key=dropout_key(2024, 1, 1))
    both = np.mean(mask & other)
    assert abs(both - keep**2) < 4 * np.sqrt(keep**2 * (1 - keep**2) / n)


def test_mean_output_equals_input_for_real_activations(rng):
    X = rng.standard_normal((200, 500)) + 2.0
    totals = np.zeros_like(X)
    steps = 200
    for step in range(steps):
        totals += _backend.kernels.dropout_forward(X, p=0.5, key=dropout_key(1, 0, step))[0]
    # Per element: mean of `steps` draws of 0 or 2x; its standard error is |x| / sqrt(steps).
    z = (totals / steps - X) / (np.abs(X) / np.sqrt(steps))
    assert abs(z.mean()) < 4 / np.sqrt(X.size)
    assert 0.9 < z.std() < 1.1


def test_gradient_check_with_a_fixed_mask(rng):
    X = rng.standard_normal((6, 9))
    dA = rng.standard_normal((6, 9))
    key = dropout_key(3, 0, 0)
    _, mask = _backend.kernels.dropout_forward(X, p=0.4, key=key)
    assert 0 < mask.sum() < mask.size
    analytic = _backend.kernels.dropout_backward(dA, mask, p=0.4)
    numeric = numerical_gradient(
        lambda x: _backend.kernels.dropout_forward(x, p=0.4, key=key)[0], X, dA)
    assert relative_error(analytic, numeric) < 1e-7


# ------------------------------------------------------------------------------------------------
# The layer


def test_layer_arguments():
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"probability of dropping.*>= 0.0 and < 1.0"):
            fnn.Dropout(bad)
    for bad in ("half", "0.5", None, True):
        with pytest.raises(TypeError, match=r"Dropout: p \(the probability"):
            fnn.Dropout(bad)
    with pytest.raises(ValueError, match="seed"):
        fnn.Dropout(0.5, seed=-3)
    layer = fnn.Dropout()
    assert layer.p == 0.5 and layer.in_features is None and layer.out_features is None
    assert layer.parameters() == [] and repr(layer) == "Dropout(p=0.5)"


def test_inference_and_p_zero_are_the_identity(rng):
    X = rng.standard_normal((5, 8)).astype(np.float32)
    layer = fnn.Dropout(0.5, seed=0)
    assert layer.forward(X, training=False) is X
    assert layer.step == 0
    dA = rng.standard_normal((5, 8)).astype(np.float32)
    assert layer.backward(dA) is dA
    zero = fnn.Dropout(0.0, seed=0)
    assert zero.forward(X, training=True) is X
    assert zero.backward(dA) is dA


def test_training_forward_and_backward(rng):
    X = rng.standard_normal((40, 25)).astype(np.float32)
    dA = rng.standard_normal((40, 25)).astype(np.float32)
    layer = fnn.Dropout(0.25, seed=11)
    out = layer.forward(X, training=True)
    assert layer.step == 1
    kept = out != 0
    assert 0.6 < kept.mean() < 0.9
    np.testing.assert_array_equal(out[kept], X[kept] * np.float32(1 / 0.75))
    _, want_mask = _backend.kernels.dropout_forward(X, p=0.25, key=dropout_key(11, 0, 0))
    np.testing.assert_array_equal(kept, want_mask.astype(bool))
    dX = layer.backward(dA)
    np.testing.assert_array_equal(dX, np.where(kept, dA * np.float32(1 / 0.75), 0))
    assert layer.backward(dA, need_dX=False) is None
    with pytest.raises(ValueError, match=r"gradient of shape \(40, 25\)"):
        layer.backward(dA[:3])


def test_step_counter_reproducibility_and_seeds(rng):
    X = rng.standard_normal((30, 20))
    a, b, c = fnn.Dropout(0.5, seed=1), fnn.Dropout(0.5, seed=1), fnn.Dropout(0.5, seed=2)
    first = a.forward(X, training=True).copy()
    second = a.forward(X, training=True).copy()
    assert a.step == 2 and not np.array_equal(first, second)  # a new mask every step
    a.forward(X, training=False)
    assert a.step == 2  # inference does not advance the stream
    np.testing.assert_array_equal(b.forward(X, training=True), first)
    assert not np.array_equal(c.forward(X, training=True), first)
    a.reset_parameters()
    assert a.step == 0
    np.testing.assert_array_equal(a.forward(X, training=True), first)
    # Without a seed, two layers draw different streams.
    u, v = fnn.Dropout(0.5), fnn.Dropout(0.5)
    assert not np.array_equal(u.forward(X, training=True), v.forward(X, training=True))


def test_sequential_gives_each_layer_the_model_seed_and_its_index(rng):
    def model(seed):
        return fnn.Sequential(fnn.Dense(10, 30), fnn.Dropout(0.5), fnn.Dropout(0.5),
                              dtype="float64", seed=seed)

    m = model(4)
    assert [(l.seed, l.index) for l in m.layers[1:]] == [(4, 1), (4, 2)]
    X = rng.standard_normal((8, 10))
    m.forward(X, training=True)
    A = m.layers[0]._A
    mask1 = m.layers[1]._mask.copy()
    mask2 = m.layers[2]._mask.copy()
    assert not np.array_equal(mask1, mask2)  # same step, different layers
    np.testing.assert_array_equal(
        mask1, _backend.kernels.dropout_forward(A, p=0.5, key=dropout_key(4, 1, 0))[1])
    # Same seed, same masks; another seed, other masks.
    np.testing.assert_array_equal(model(4).forward(X, training=True),
                                  model(4).forward(X, training=True))
    assert not np.array_equal(model(4).forward(X, training=True),
                              model(5).forward(X, training=True))
    # No seed: a fresh stream, but still one per model.
    assert m.layers[1].seed != model(None).layers[1].seed
    # eval() makes the model deterministic.
    m.eval()
    np.testing.assert_array_equal(m.forward(X), m.forward(X))
    np.testing.assert_allclose(m.forward(X), X @ m.layers[0].W.data + m.layers[0].b.data,
                               rtol=1e-12)


def test_dtype_follows_the_model(rng):
    m = fnn.Sequential(fnn.Dense(4, 6), fnn.Dropout(0.5), dtype="float64", seed=0)
    assert m.layers[1].dtype == np.float64
    assert m.forward(rng.standard_normal((3, 4)), training=True).dtype == np.float64
    standalone = fnn.Dropout(0.5, seed=0)
    assert standalone.forward(np.ones((2, 3)), training=True).dtype == np.float32
