"""Sample weights: fastnn.losses.weighted is the weighted mean of a loss, exactly; Trainer.fit's
sample_weight weights each sample's loss; io.to_bytes/from_bytes round-trip a checkpoint."""
import numpy as np
import pytest

import fastnn


def blobs(n=240, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, 5)) * 4
    y = rng.integers(0, classes, n)
    return centers[y] + rng.standard_normal((n, 5)), y


def test_weighted_loss_equals_repetition():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((9, 4)).astype(np.float32)
    y = rng.integers(0, 4, 9)
    w = np.array([0, 1, 2, 3, 1, 0, 2, 1, 1])
    value, grad = fastnn.losses.weighted("softmax_cross_entropy", w)(scores, y)
    rows = np.repeat(np.arange(9), w)
    ref_value, ref_grad = fastnn.losses.softmax_cross_entropy(scores[rows], y[rows])
    summed = np.zeros_like(grad)
    np.add.at(summed, rows, ref_grad)
    assert value == pytest.approx(ref_value, rel=1e-6)
    np.testing.assert_allclose(grad, summed, atol=1e-7)
    targets = rng.standard_normal((9, 2))
    value, grad = fastnn.losses.weighted("mse", w)(scores[:, :2], targets)
    assert value == pytest.approx(fastnn.losses.mse(scores[rows, :2], targets[rows])[0],
                                  rel=1e-6)


def test_trainer_sample_weight_equals_repeated_samples_full_batch():
    """With one batch of all the data, weight k is exactly k copies of the sample."""
    X, y = blobs(n=40)
    w = np.arange(40) % 3
    rows = np.repeat(np.arange(40), w)

    def train(Xs, ys, weight):
        model = fastnn.Sequential(fastnn.Dense(5, 8, activation="tanh"), fastnn.Dense(8, 3),
                                  dtype="float64", seed=0)
        opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
        fastnn.Trainer(model, opt, batch_size=1000, epochs=5, progress=False, monitor=False,
                       shuffle=False).fit(Xs, ys, sample_weight=weight)
        return model.state_dict()

    weighted, repeated = train(X, y, w), train(X[rows], y[rows], None)
    for key in weighted:
        np.testing.assert_allclose(weighted[key], repeated[key], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        train(X, y, -np.ones(40))


def test_weighted_loss_of_zero_weights_is_zero():
    scores = np.ones((3, 2), np.float32)
    value, grad = fastnn.losses.weighted("softmax_cross_entropy", np.zeros(3))(scores,
                                                                               np.array([0, 1, 0]))
    assert value == 0.0 and not grad.any()


def test_model_bytes_round_trip():
    model = fastnn.Sequential(fastnn.Dense(5, 4, activation="relu"), fastnn.Dense(4, 3), seed=1)
    opt = fastnn.optim.Adam(model.parameters(), lr=0.01)
    X, y = blobs(n=20)
    model.train_step(X.astype(np.float32), y, "softmax_cross_entropy", opt)
    again = fastnn.io.from_bytes(fastnn.io.to_bytes(model, opt, extra={"k": [1, 2]}))
    np.testing.assert_array_equal(again.model.forward(X, training=False),
                                  model.forward(X, training=False))
    assert again.extra == {"k": [1, 2]} and type(again.optimizer) is fastnn.optim.Adam
    with pytest.raises(ValueError, match="not a fastnn file"):
        fastnn.io.from_bytes(b"not a zip archive")
