"""Sequential.train_step and the lazy zero_grad it relies on: the same numbers as the explicit
forward / loss / zero_grad / backward / step sequence, no array allocated per step on the compiled
backend, and a non-finite loss that leaves the parameters alone."""
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _step
from fastnn.layers import Parameter

OPTIMIZERS = {
    "sgd": lambda params: fnn.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=1e-4),
    "adam": lambda params: fnn.optim.Adam(params, lr=1e-2),
}


def make_model(kind, dtype="float32"):
    if kind == "plain":
        layers = [fnn.Dense(7, 33, activation="relu"), fnn.Dense(33, 5)]
    else:  # every layer type with parameters or a random mask
        layers = [fnn.Dense(7, 33), fnn.BatchNorm(33), fnn.ReLU(), fnn.Dropout(0.3),
                  fnn.Maxout(33, 9, pieces=3), fnn.PReLU(9), fnn.Dense(9, 5)]
    return fnn.Sequential(*layers, dtype=dtype, seed=3)


def batches(rng, n_batches=4, n=13, classes=5):
    return [(rng.standard_normal((n, 7)), rng.integers(0, classes, n)) for _ in range(n_batches)]


@pytest.mark.parametrize("kind", ["plain", "all_layers"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_train_step_equals_the_explicit_sequence(kind, optimizer, rng):
    fast, slow = make_model(kind, "float64"), make_model(kind, "float64")
    fast_opt, slow_opt = OPTIMIZERS[optimizer](fast.parameters()), \
        OPTIMIZERS[optimizer](slow.parameters())
    for X, y in batches(rng) * 2:
        fast_loss = fast.train_step(X, y, fnn.losses.softmax_cross_entropy, fast_opt)
        scores = slow.forward(X, training=True)
        slow_loss, dscores = fnn.losses.softmax_cross_entropy(scores, y)
        slow.zero_grad()
        slow.backward(dscores)
        slow_opt.step()
        assert isinstance(fast_loss, float)
        assert fast_loss == pytest.approx(slow_loss, rel=1e-12)
    for key, value in slow.state_dict().items():
        np.testing.assert_allclose(fast.state_dict()[key], value, rtol=1e-12, atol=1e-14,
                                   err_msg=key)


@pytest.mark.parametrize("loss", ["multiclass_hinge", fnn.losses.svm,
                                  lambda s, y: fnn.losses.softmax_cross_entropy(s, y)])
def test_train_step_takes_loss_names_functions_and_callables(loss, rng):
    model = make_model("plain", "float64")
    reference = make_model("plain", "float64")
    opt, ref_opt = fnn.optim.SGD(model.parameters(), lr=0.1), \
        fnn.optim.SGD(reference.parameters(), lr=0.1)
    function = fnn.losses.get(loss)
    for X, y in batches(rng):
        model.train_step(X, y, loss, opt)
        _, dscores = function(reference.forward(X, training=True), y)
        reference.zero_grad()
        reference.backward(dscores)
        ref_opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)


def test_train_step_learns(rng):
    centers = rng.standard_normal((5, 7)) * 3
    y = rng.integers(0, 5, 200)
    X = centers[y] + rng.standard_normal((200, 7))
    model = make_model("plain")
    opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
    losses = [model.train_step(X, y, "softmax_cross_entropy", opt) for _ in range(100)]
    assert losses[-1] < 0.2 * losses[0]
    assert np.mean(model.predict(X) == y) > 0.9


def test_non_finite_loss_raises_before_the_update(rng):
    model = make_model("plain")
    opt = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = batches(rng)[0]
    model.train_step(X, y, "softmax_cross_entropy", opt)
    before = model.state_dict()

    def exploding(scores, y):
        return float("nan"), np.ones_like(scores)

    with pytest.raises(FloatingPointError, match="not updated"):
        model.train_step(X, y, exploding, opt)
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)


def test_train_step_rejects_bad_input_like_forward(rng):
    model = make_model("plain")
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    X, y = batches(rng)[0]
    with pytest.raises(ValueError, match=r"layer 0 .*\(N, 7\)"):
        model.train_step(X[:, :6], y, "softmax_cross_entropy", opt)
    with pytest.raises(ValueError, match="label"):
        model.train_step(X, y + 5, "softmax_cross_entropy", opt)
    with pytest.raises(ValueError, match="unknown loss"):
        model.train_step(X, y, "cross_entropy_typo", opt)


@pytest.fixture(params=["openblas", "onednn"])
def engine(request):
    """Each GEMM engine in turn (oneDNN for every product, where it loads), set back after."""
    previous = fnn.gemm_engine_info()["requested"]
    try:
        fnn.set_gemm_engine(request.param)
    except ImportError as error:
        pytest.skip(str(error))
    yield request.param
    fnn.set_gemm_engine(previous)


@pytest.mark.parametrize("kind", ["plain", "all_layers"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning")
def test_compiled_train_step_allocates_no_arrays_in_steady_state(kind, optimizer, compute_dtype,
                                                                 engine, backend, rng):
    if backend != "cython":
        pytest.skip("the NumPy twin computes with temporaries by design")
    model = make_model(kind)
    model.compute_dtype = compute_dtype
    opt = OPTIMIZERS[optimizer](model.parameters())
    data = [(X.astype(np.float32), y) for X, y in batches(rng, n=256)]
    for X, y in data:  # sizes the layers' buffers and the optimizer's state
        model.train_step(X, y, "softmax_cross_entropy", opt)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for X, y in data * 5:
            model.train_step(X, y, "softmax_cross_entropy", opt)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Array views and small Python objects only, less than the smallest per-batch array (the
    # scores, 256 x 5 float32 = 5120 bytes).
    assert peak - start < 4096
    assert current - start < 4096


def test_zero_grad_marks_and_the_next_read_sees_zeros(rng):
    p = Parameter(np.ones(4), "w")
    p.grad[...] = [1, 2, 3, 4]
    held = p.grad
    p.zero_grad()
    np.testing.assert_array_equal(held, [1, 2, 3, 4])  # no pass over memory in zero_grad
    np.testing.assert_array_equal(p.grad, np.zeros(4))
    assert p.grad is held


def test_backward_after_zero_grad_overwrites_without_reading(rng):
    model = make_model("all_layers", "float64")
    X, y = batches(rng)[0]
    _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
    model.zero_grad()
    model.backward(dscores)
    once = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p._grad[...] = np.nan  # stale contents a marked-zero gradient may hold
    model.zero_grad()
    model.backward(dscores)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_array_equal(p.grad, g)


def test_grad_assignment_copies_and_checks_the_shape():
    p = Parameter(np.zeros((2, 3)), "W")
    array = p.grad
    p.grad = np.ones((2, 3))
    assert p.grad is array and np.all(array == 1)
    p.grad += 1
    np.testing.assert_array_equal(p.grad, np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match=r"Parameter W: grad must have shape \(2, 3\)"):
        p.grad = np.ones(6)


@pytest.mark.parametrize("kind", ["plain", "compiled_layers", "all_layers"])
def test_forward_backward_gives_the_explicit_sequences_gradients_and_scores(kind, rng):
    """forward_backward is train_step without the update: the loss, the scores and every
    parameter's gradient of forward / loss / zero_grad / backward, on both backends and whether
    or not the step is compiled (Dense/BatchNorm/ReLU/Dropout models are, Maxout/PReLU not)."""
    if kind == "compiled_layers":
        make = lambda: fnn.Sequential(fnn.Dense(7, 33), fnn.BatchNorm(33), fnn.ReLU(),  # noqa
                                      fnn.Dropout(0.3), fnn.Dense(33, 5), dtype="float64",
                                      seed=3)
    else:
        make = lambda: make_model(kind, "float64")  # noqa: E731
    fast, slow = make(), make()
    compiled = fnn.get_backend() == "cython" and kind != "all_layers" and \
        _step.step_module() is not None
    for X, y in batches(rng) * 2:
        loss, scores = fast.forward_backward(X, y, "softmax_cross_entropy")
        assert (fast._compiled.plan is not None) == compiled
        want_scores = slow.forward(X, training=True)
        want_loss, dscores = fnn.losses.softmax_cross_entropy(want_scores, y)
        slow.zero_grad()
        slow.backward(dscores)
        assert isinstance(loss, float)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-12, atol=1e-12)
        for p, q in zip(fast.parameters(), slow.parameters()):
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12, err_msg=p.name)
        for p, q in zip(fast.parameters(), slow.parameters()):  # the same update on both
            p.data -= 0.1 * p.grad
            q.data -= 0.1 * q.grad
