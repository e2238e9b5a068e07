"""Threads: inference on one model from several threads gives each call its own result;
training calls on one model from two threads at once are refused."""
import threading

import numpy as np
import pytest

import fastnn as fnn


def _model(dtype="float32"):
    return fnn.Sequential(
        fnn.Dense(12, 32), fnn.BatchNorm(32), fnn.ReLU(), fnn.Dropout(0.3),
        fnn.Maxout(32, 16, pieces=3), fnn.PReLU(16), fnn.Dense(16, 24, activation="tanh"),
        fnn.Sigmoid(), fnn.Dense(24, 5), dtype=dtype, seed=0)


def _in_threads(work, n_threads):
    errors, barrier = [], threading.Barrier(n_threads)

    def run(t):
        try:
            barrier.wait()
            work(t)
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_concurrent_inference_equals_serial(rng, dtype):
    model = _model(dtype)
    X = rng.standard_normal((64, 12))
    model.train_step(X, rng.integers(0, 5, 64), "softmax_cross_entropy",
                     fnn.optim.SGD(model.parameters(), lr=0.1))
    model.eval()
    n_threads, calls = 4, 60
    # Each thread its own inputs, of its own batch size, so that any sharing shows.
    inputs = [rng.standard_normal((8 + 5 * t, 12)) for t in range(n_threads)]
    serial = [model.predict_proba(x) for x in inputs]
    results = [[] for _ in range(n_threads)]

    def work(t):
        for i in range(calls):
            if i % 3 == 0:
                results[t].append(model.forward(inputs[t]))
            else:
                results[t].append(model.predict_proba(inputs[t]))

    assert not _in_threads(work, n_threads)
    for t in range(n_threads):
        want_scores = model.forward(inputs[t])
        for i, got in enumerate(results[t]):
            np.testing.assert_array_equal(got, want_scores if i % 3 == 0 else serial[t])


@pytest.mark.parametrize("compiled", [True, False])
def test_inference_does_not_disturb_the_compiled_step(rng, compiled):
    """A prediction between training steps leaves the layers' saved state as the step left it
    (the monitoring of Trainer reads it), the compiled step's included."""
    model = _model() if not compiled else fnn.Sequential(
        fnn.Dense(12, 32), fnn.BatchNorm(32), fnn.ReLU(), fnn.Dropout(0.3), fnn.Dense(32, 5),
        seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.01)
    X, y = rng.standard_normal((32, 12)), rng.integers(0, 5, 32)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    for layer in model.layers[:3]:
        def saved():
            return layer._A if hasattr(layer, "_A") else layer._X
        trained = saved()
        model.predict(X[:7])
        assert not np.shares_memory(saved(), trained)
        model.train_step(X, y, "softmax_cross_entropy", opt)
        assert saved().shape == trained.shape and np.shares_memory(saved(), trained)
    if compiled and fnn.get_backend() == "cython":
        assert model._compiled.plan is not None


def _blocking_loss(started, release):
    def loss(scores, y):
        started.set()
        release.wait(5)
        return fnn.losses.softmax_cross_entropy(scores, y)
    return loss


def test_concurrent_training_is_refused(rng):
    model = _model()
    opt = fnn.optim.SGD(model.parameters(), lr=0.01)
    X, y = rng.standard_normal((16, 12)), rng.integers(0, 5, 16)
    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=model.train_step,
                              args=(X, y, _blocking_loss(started, release), opt))
    thread.start()
    try:
        assert started.wait(5)
        before = [p.data.copy() for p in model.parameters()]
        for name, call in [
                ("train_step", lambda: model.train_step(X, y, "softmax_cross_entropy", opt)),
                ("forward_backward", lambda: model.forward_backward(X, y, "svm")),
                ("forward", lambda: model.forward(X, training=True)),
                ("backward", lambda: model.backward(np.ones((16, 5), np.float32)))]:
            with pytest.raises(RuntimeError, match=f"{name}: another thread is training"):
                call()
        with pytest.raises(RuntimeError, match="inference while another thread trains"):
            model.predict(X)
        for p, old in zip(model.parameters(), before):
            np.testing.assert_array_equal(p.data, old)
    finally:
        release.set()
        thread.join()
    # Free again once the other thread's step is done.
    model.train_step(X, y, "softmax_cross_entropy", opt)
    model.predict(X)
