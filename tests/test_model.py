"""Dense and Sequential: the documented API, error messages, and training on both backends."""
import numpy as np
import pytest

import fastnn as fnn


def make_model(dtype="float32", seed=0):
    return fnn.Sequential(fnn.Dense(64, 128, activation="relu", init="he"), fnn.Dense(128, 10),
                          dtype=dtype, seed=seed)


def blobs(rng, n=300, d=64, classes=10):
    centers = rng.standard_normal((classes, d)) * 3
    y = rng.integers(0, classes, n)
    return centers[y] + rng.standard_normal((n, d)), y


def test_documented_example_trains(rng):
    X, y = blobs(rng)
    model = make_model()
    opt = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)
    first = None
    for _ in range(30):
        scores = model.forward(X, training=True)
        loss, dscores = fnn.losses.softmax_cross_entropy(scores, y)
        first = loss if first is None else first
        model.zero_grad()
        model.backward(dscores)
        opt.step()
    assert loss < 0.2 * first
    assert np.mean(model.predict(X) == y) > 0.95
    proba = model.predict_proba(X)
    assert proba.shape == (300, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(X))


def test_call_equals_forward_and_returns_a_fresh_array(rng):
    model = make_model()
    X = rng.standard_normal((5, 64))
    a = model(X)
    b = model.forward(X)
    np.testing.assert_array_equal(a, b)
    model.forward(rng.standard_normal((5, 64)))
    np.testing.assert_array_equal(a, b)  # earlier results are not overwritten


def test_same_seed_same_model_different_seed_different_model():
    a, b, c = make_model(seed=1), make_model(seed=1), make_model(seed=2)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        if pa.name == "W":
            assert not np.array_equal(pa.data, pc.data)


def test_parameters_flat_list_in_layer_order():
    model = make_model()
    params = model.parameters()
    assert [p.name for p in params] == ["W", "b", "W", "b"]
    assert [p.shape for p in params] == [(64, 128), (128,), (128, 10), (10,)]
    assert all(p.dtype == np.float32 and p.grad.shape == p.shape for p in params)
    assert all(np.all(p.data == 0) for p in params if p.name == "b")


def test_writing_data_in_place_changes_the_model(rng):
    model = make_model()
    X = rng.standard_normal((4, 64))
    for p in model.parameters():
        p.data[...] = 0
    np.testing.assert_array_equal(model.forward(X), np.zeros((4, 10)))
    model.parameters()[-1].data[:] = np.arange(10)
    np.testing.assert_array_equal(model.predict(X), [9, 9, 9, 9])


def test_backward_accumulates_and_zero_grad_clears(rng):
    model = make_model()
    X, y = blobs(rng, n=16)
    _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X), y)
    model.zero_grad()
    model.backward(dscores)
    once = [p.grad.copy() for p in model.parameters()]
    model.backward(dscores)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-5, atol=1e-7)
    model.zero_grad()
    assert all(np.all(p.grad == 0) for p in model.parameters())
    model.backward(dscores)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, g, rtol=1e-6, atol=1e-8)


def test_gradients_accumulate_over_micro_batches(rng):
    """Two half-batch backward passes (each scaled by 1/2) equal one full-batch pass."""
    X, y = blobs(rng, n=20)
    model = make_model(dtype="float64")
    model.zero_grad()
    model.backward(fnn.losses.softmax_cross_entropy(model.forward(X), y)[1])
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    for half in (slice(0, 10), slice(10, 20)):
        _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X[half]), y[half])
        model.backward(dscores / 2)
    for p, g in zip(model.parameters(), full):
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_respected_and_input_converted(dtype, rng):
    model = make_model(dtype=dtype)
    X = rng.integers(0, 5, (3, 64))  # integer input is converted
    assert model.forward(X).dtype == np.dtype(dtype)
    assert model.forward(np.asfortranarray(rng.standard_normal((3, 64)))).dtype == dtype
    assert model.forward(X.tolist()).shape == (3, 10)


def test_non_contiguous_input_gives_the_same_result(rng):
    model = make_model()
    X = rng.standard_normal((64, 8)).T  # (8, 64), not C-contiguous
    np.testing.assert_array_equal(model.forward(X), model.forward(np.ascontiguousarray(X)))


def test_predict_in_chunks_equals_one_pass(rng):
    model = make_model(dtype="float64")
    X = rng.standard_normal((50, 64))
    np.testing.assert_allclose(model.predict_proba(X, batch_size=7), model.predict_proba(X),
                               rtol=1e-12)


def test_state_dict_round_trip(rng):
    a, b = make_model(seed=0), make_model(seed=1)
    b.load_state_dict(a.state_dict())
    X = rng.standard_normal((5, 64))
    np.testing.assert_array_equal(a.forward(X), b.forward(X))
    with pytest.raises(ValueError, match="missing keys"):
        b.load_state_dict({"0.W": a.parameters()[0].data})


# --- bad input: clear errors that name the layer and what was expected -------------------------

def test_wrong_feature_count_names_the_layer(rng):
    model = make_model()
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\(64 -> 128, relu\)\).*\(N, 64\).*\(5, 63\)"):
        model.forward(rng.standard_normal((5, 63)))


def test_one_dimensional_input(rng):
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 64\)"):
        make_model().forward(rng.standard_normal(64))


def test_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        make_model().forward(np.zeros((0, 64)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(bad, rng):
    X = rng.standard_normal((5, 64))
    X[3, 7] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        make_model().forward(X)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_finite_input_is_not_mistaken_for_inf():
    X = np.full((4, 64), 3e38, dtype=np.float32)  # the cheap sum overflows; values are finite
    assert make_model().forward(X).shape == (4, 10)


def test_non_numeric_input():
    with pytest.raises(TypeError, match="real numbers"):
        make_model().forward(np.array([["a"] * 64]))
    with pytest.raises(TypeError, match="real numbers"):
        make_model().forward(np.ones((2, 64), dtype=complex))


def test_backward_errors(rng):
    model = make_model()
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.zeros((2, 10)))
    model.forward(rng.standard_normal((4, 64)))
    with pytest.raises(ValueError, match=r"layer 1 .*gradient of shape \(4, 10\)"):
        model.backward(np.zeros((4, 9)))


def test_mismatched_layers_and_bad_arguments():
    with pytest.raises(ValueError, match="layer 1.*expects 64 input features.*outputs 128"):
        fnn.Sequential(fnn.Dense(64, 128), fnn.Dense(64, 10))
    with pytest.raises(ValueError, match="at least one layer"):
        fnn.Sequential()
    with pytest.raises(TypeError, match="not a fastnn layer"):
        fnn.Sequential(fnn.Dense(2, 2), "relu")
    with pytest.raises(TypeError, match="float32 or float64"):
        fnn.Sequential(fnn.Dense(2, 2), dtype="float16")
    with pytest.raises(ValueError, match="unknown activation"):
        fnn.Dense(2, 2, activation="swish")
    with pytest.raises(ValueError, match="unknown init"):
        fnn.Dense(2, 2, init="orthogonal")
    with pytest.raises(ValueError, match="positive integer"):
        fnn.Dense(0, 2)


def test_initializers_have_the_documented_scale():
    big = 2000
    he = fnn.Dense(big, 500, activation="relu", seed=1).W.data
    xavier = fnn.Dense(big, 500, activation="tanh", seed=1).W.data
    small = fnn.Dense(big, 500, init=0.01, seed=1).W.data
    np.testing.assert_allclose(he.std(), np.sqrt(2 / big), rtol=0.01)
    np.testing.assert_allclose(xavier.std(), np.sqrt(1 / big), rtol=0.01)
    np.testing.assert_allclose(small.std(), 0.01, rtol=0.01)
    assert abs(he.mean()) < 1e-3


def test_both_backends_train_identically(rng):
    X, y = blobs(rng, n=64)
    curves = {}
    for name in ("cython", "numpy"):
        if name == "cython" and not fnn.compiled_available():
            pytest.skip("compiled backend not built")
        with fnn.use_backend(name):
            model = make_model(dtype="float64", seed=3)
            opt = fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            curve = []
            for _ in range(10):
                loss, dscores = fnn.losses.softmax_cross_entropy(model.forward(X), y)
                model.zero_grad()
                model.backward(dscores)
                opt.step()
                curve.append(loss)
            curves[name] = curve
    np.testing.assert_allclose(curves["cython"], curves["numpy"], rtol=1e-10)
