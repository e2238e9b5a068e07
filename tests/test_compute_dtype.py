"""compute_dtype="bfloat16": a Sequential's GEMMs on bf16 operands, float32 elsewhere.

The oracle is written out here in NumPy: each Dense rounds its input and its weights to bfloat16
(round to nearest even), multiplies in float32, rounds act(Z + b); backward computes dZ in
float32, db from it, then rounds dZ for the dW and dX products. With identity and ReLU layers
(exact float32 epilogues) both backends match it bit for bit; other activations within one
bfloat16 rounding step.
"""
import threading
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _mixed
from fastnn._kernels.bf16_numpy import round_bfloat16 as rnd

from _support import assert_close

ACTS = {"identity": (lambda z: z, lambda a: np.ones_like(a)),
        "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
        "tanh": (np.tanh, lambda a: 1 - a * a)}


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "compute_dtype='bfloat16' runs by emulation")
        yield


def make(acts=("relu", "identity"), sizes=(13, 17, 5), seed=0, compute="bfloat16", **kw):
    layers = [fnn.Dense(a, b, activation=act) for a, b, act in zip(sizes, sizes[1:], acts)]
    return fnn.Sequential(*layers, seed=seed, compute_dtype=compute, **kw)


def oracle(model, X, dscores=None):
    """(scores, [(dW, db)] given dscores) of one bf16 forward and backward, in plain NumPy."""
    saved, A = [], X
    for layer in model.layers:
        act, grad = ACTS[layer.activation]
        Xb, Wb = rnd(A), rnd(layer.W.data)
        A = rnd(act(np.matmul(Xb, Wb) + layer.b.data).astype(np.float32))
        saved.append((Xb, Wb, A, grad))
    grads, dA = [], dscores
    for Xb, Wb, A_out, grad in reversed(saved if dscores is not None else []):
        dZ = (dA * grad(A_out)).astype(np.float32)
        db = dZ.sum(axis=0)
        dZb = rnd(dZ)
        grads.append((np.matmul(Xb.T, dZb), db))
        dA = np.matmul(dZb, Wb.T)
    return A, grads[::-1]


def batch(rng, n=11, d=13, k=5):
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, k, n)


@pytest.mark.parametrize("acts", [("relu", "identity"), ("identity", "relu")])
def test_bf16_step_is_the_oracle_bit_for_bit(rng, acts):
    model = make(acts)
    X, y = batch(rng)
    scores, _ = oracle(model, X)
    loss_value, out = model.forward_backward(X, y, "softmax_cross_entropy")
    np.testing.assert_array_equal(out, scores)
    assert np.array_equal(rnd(out), out)  # the scores are bf16 values
    expected_loss, dscores = fnn.losses.softmax_cross_entropy(scores.copy(), y)
    assert abs(loss_value - expected_loss) <= 1e-6 * max(1.0, abs(expected_loss))
    _, grads = oracle(model, X, dscores)
    for layer, (dW, db) in zip(model.layers, grads):
        assert_close(layer.b.grad, db)
        assert_close(layer.W.grad, dW)


def test_bf16_other_activations_within_one_rounding(rng):
    model = make(("tanh", "identity"))
    X, y = batch(rng)
    scores, _ = oracle(model, X)
    out = model.forward(X)
    np.testing.assert_allclose(out, scores, rtol=2 ** -7, atol=1e-3)


def test_float32_compute_is_unchanged(rng):
    X, y = batch(rng)
    a, b = make(compute="float32"), make(compute="float32")
    b.compute_dtype = "bfloat16"
    b.compute_dtype = "float32"
    np.testing.assert_array_equal(a.forward(X), b.forward(X))
    assert not np.array_equal(make().forward(X), a.forward(X))  # bf16 does differ


@pytest.mark.backend_independent
def test_backends_agree_in_bf16(rng):
    X, y = batch(rng, n=64, d=13)
    results = []
    for name in ("cython", "numpy"):
        if name == "cython" and not fnn.compiled_available():
            pytest.skip("the compiled backend is not built")
        with fnn.use_backend(name):
            model = make(("tanh", "relu", "identity"), sizes=(13, 33, 17, 5))
            opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
            for _ in range(5):
                model.train_step(X, y, "softmax_cross_entropy", opt)
            results.append(model.forward(X, training=False))
    np.testing.assert_allclose(results[0], results[1], rtol=2e-2, atol=2e-2)


def _reference_scores(model, X):
    """The scores a model computes from its current parameters, by a fresh bf16 model."""
    sizes = (model.layers[0].W.shape[0],) + tuple(l.W.shape[1] for l in model.layers)
    fresh = make(tuple(l.activation for l in model.layers), sizes=sizes)
    fresh.load_state_dict(model.state_dict())
    return fresh.forward(X, training=False)


@pytest.mark.parametrize("change", ["data_write", "load_state_dict", "max_norm", "lbfgs",
                                    "reset", "second_step"])
def test_bf16_copy_follows_every_write(rng, change):
    model = make()
    X, y = batch(rng)
    opt = fnn.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    W = model.layers[0].W
    if change == "data_write":
        W.data[...] = 0.5 * W.data
    elif change == "load_state_dict":
        other = make(seed=7)
        model.load_state_dict(other.state_dict())
    elif change == "max_norm":
        fnn.regularization.MaxNorm(0.1)(model)
    elif change == "lbfgs":
        lbfgs = fnn.optim.LBFGS(model.parameters(), max_iter=3)
        lbfgs.step(lambda: model.forward_backward(X, y, "softmax_cross_entropy")[0])
    elif change == "reset":
        model.layers[0].reset_parameters("float32", np.random.default_rng(3))
    else:
        model.train_step(X, y, "softmax_cross_entropy", opt)
    np.testing.assert_array_equal(model.forward(X, training=False), _reference_scores(model, X))


def test_training_forward_uses_the_updated_weights(rng):
    model = make()
    X, y = batch(rng)
    opt = fnn.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        model.train_step(X, y, "softmax_cross_entropy", opt)
        expected = _reference_scores(model, X)
        _, scores = model.forward_backward(X, y, "softmax_cross_entropy")
        np.testing.assert_array_equal(scores, expected)


def test_inference_threads_agree(rng):
    model = make(sizes=(13, 64, 5))
    X, _ = batch(rng, n=200)
    expected = _reference_scores(model, X)
    model.layers[0].W.data  # the copies are stale: each thread's forward writes them again
    out = [None] * 4

    def run(i):
        for _ in range(20):
            out[i] = model.forward(X, training=False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in out:
        np.testing.assert_array_equal(o, expected)


def test_emulation_warns_once(rng, monkeypatch):
    monkeypatch.setattr(_mixed, "_warned", False)
    X, _ = batch(rng)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make()
        model.forward(X)
        model.forward(X)
        make().forward(X)
    emulated = [w for w in caught if "emulation" in str(w.message)]
    assert len(emulated) == 1 and emulated[0].category is RuntimeWarning


def test_float32_model_does_not_warn(rng, monkeypatch):
    monkeypatch.setattr(_mixed, "_warned", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(compute="float32").forward(batch(rng)[0])


@pytest.mark.parametrize("value, error", [("float16", ValueError), ("bf16", ValueError),
                                          (None, TypeError), (np.float32, TypeError)])
def test_bad_compute_dtype_is_refused(value, error):
    with pytest.raises(error, match="compute_dtype"):
        make(compute=value)
    model = make(compute="float32")
    with pytest.raises(error, match="compute_dtype"):
        model.compute_dtype = value
    assert model.compute_dtype == "float32"


def test_float64_model_refuses_bf16():
    with pytest.raises(ValueError, match="compute_dtype='bfloat16' needs dtype='float32'"):
        make(dtype="float64")


def test_bf16_training_tracks_float32(rng):
    # A small problem: bf16 training reaches float32's accuracy closely.
    X = rng.standard_normal((400, 13)).astype(np.float32)
    w = rng.standard_normal((13, 5)).astype(np.float32)
    y = (X @ w).argmax(axis=1)
    acc = {}
    for compute in ("float32", "bfloat16"):
        model = make(sizes=(13, 32, 5), compute=compute, seed=1)
        opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(150):
            model.train_step(X, y, "softmax_cross_entropy", opt)
        acc[compute] = float((model.predict(X) == y).mean())
    assert acc["float32"] > 0.9
    assert abs(acc["bfloat16"] - acc["float32"]) <= 0.03
