"""Freezing parameters (requires_grad / layer.freeze()) and loading part of a saved model: frozen
parameters are bit-identical after training, with every optimizer, on the compiled step and layer
by layer; optimizers keep no state for them; backward skips the layers below the first trainable
one; load_state_dict(strict=False) moves feature layers into a model with another top."""
import numpy as np
import pytest

import fastnn as fnn

OPTIMIZERS = {
    "sgd": lambda params: fnn.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=1e-3),
    "adagrad": lambda params: fnn.optim.Adagrad(params, lr=0.05, weight_decay=1e-3),
    "rmsprop": lambda params: fnn.optim.RMSprop(params, lr=1e-3, momentum=0.5, centered=True,
                                                weight_decay=1e-3),
    "adam": lambda params: fnn.optim.Adam(params, lr=1e-2, weight_decay=1e-3, amsgrad=True),
    "adamw": lambda params: fnn.optim.AdamW(params, lr=1e-2),
}


def make_model(dtype="float32", seed=0):
    return fnn.Sequential(fnn.Dense(12, 16, activation="relu"), fnn.BatchNorm(16),
                          fnn.Dropout(0.2), fnn.Dense(16, 8, activation="tanh"),
                          fnn.Dense(8, 5), dtype=dtype, seed=seed)


def data(rng, n=40):
    return rng.standard_normal((n, 12)), rng.integers(0, 5, n)


def snapshot(model):
    return [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("path", ["train_step", "layer_by_layer"])
def test_frozen_parameters_are_bit_identical_after_training(path, optimizer, dtype, backend,
                                                            rng):
    model = make_model(dtype)
    for layer in model.layers[:2]:
        layer.freeze()
    model.layers[3].b.requires_grad = False  # a single parameter of a layer in the middle
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert len(frozen) == 5
    before = snapshot(model)
    opt = OPTIMIZERS[optimizer](model.parameters())
    X, y = data(rng)
    for _ in range(5):
        if path == "train_step":
            model.train_step(X, y, "softmax_cross_entropy", opt)
        else:
            _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
            model.zero_grad()
            model.backward(dscores)
            fnn.regularization.L2(1e-2)(model)
            opt.step()
            fnn.regularization.MaxNorm(0.1)(model)
    if path == "train_step" and backend == "cython":
        assert model._compiled.plan is not None  # freezing keeps the compiled step
    for p, old in zip(model.parameters(), before):
        if p.requires_grad:
            assert not np.array_equal(p.data, old), p
        else:
            np.testing.assert_array_equal(p.data, old)
    assert all(p not in opt.state for p in frozen)
    assert all(opt.state[p] for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("frozen_layers", [(0,), (0, 1), (3,), (0, 1, 3), (0, 1, 3, 4)])
def test_freezing_leaves_the_other_gradients_and_updates_as_they_were(frozen_layers, backend,
                                                                      rng):
    # The trainable parameters follow the same trajectory whether or not the others are frozen,
    # as long as the frozen ones do not move: compare against a model whose optimizer does not
    # hold the frozen parameters at all.
    X, y = data(rng)
    model, reference = make_model("float64"), make_model("float64")
    for i in frozen_layers:
        model.layers[i].freeze()
    trainable = [q for p, q in zip(model.parameters(), reference.parameters()) if p.requires_grad]
    opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
    ref_opt = fnn.optim.Adam(trainable, lr=1e-2) if trainable else None
    for _ in range(4):
        loss = model.train_step(X, y, "softmax_cross_entropy", opt)
        ref_loss, _ = reference.forward_backward(X, y, "softmax_cross_entropy")
        if ref_opt is not None:
            ref_opt.step()
        assert loss == ref_loss
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_backward_skips_the_layers_below_the_first_trainable_one(backend, rng):
    X, y = data(rng)
    model = make_model("float64")
    model.layers[0].freeze()
    model.layers[1].freeze()
    calls = []
    original = fnn.BatchNorm.backward

    def counting(self, dA, need_dX=True):
        calls.append(need_dX)
        return original(self, dA, need_dX)

    fnn.BatchNorm.backward = counting  # (patching the class keeps the compiled path off it)
    try:
        _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
        model.zero_grad()
        model.backward(dscores)
        assert calls == []
        model.backward(dscores, input_grad=True)  # the input gradient needs every layer
        assert calls == [True]
        model.layers[1].unfreeze()
        model.zero_grad()
        model.backward(dscores)
        assert calls == [True, False]
    finally:
        fnn.BatchNorm.backward = original
    assert model.layers[0].W._grad_is_zero  # no gradient was computed for it


def test_the_compiled_plan_follows_freezing_and_unfreezing(backend, rng):
    X, y = data(rng)
    model = make_model()
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    plan = model._compiled.plan
    first = model.layers[0].W.data.copy()
    model.layers[0].freeze()
    model.train_step(X, y, "softmax_cross_entropy", opt)
    np.testing.assert_array_equal(model.layers[0].W.data, first)
    if backend == "cython":
        assert model._compiled.plan is not plan  # rebuilt
    model.layers[0].unfreeze()
    model.train_step(X, y, "softmax_cross_entropy", opt)
    assert not np.array_equal(model.layers[0].W.data, first)


def test_a_fully_frozen_model_trains_nothing(backend, rng):
    X, y = data(rng)
    model = make_model()
    for layer in model.layers:
        layer.freeze()
    before = snapshot(model)
    opt = fnn.optim.Adam(model.parameters())
    loss = model.train_step(X, y, "softmax_cross_entropy", opt)
    assert np.isfinite(loss) and opt.state == {}
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, old)


def test_penalties_skip_frozen_weights(rng):
    model = make_model("float64")
    model.layers[0].freeze()
    penalty = fnn.regularization.L2(1.0)
    expected = sum(0.5 * float(np.sum(p.data ** 2)) for p in model.parameters()
                   if p.is_weight and p.requires_grad)
    model.zero_grad()
    assert penalty(model) == pytest.approx(expected)
    assert model.layers[0].W._grad_is_zero


def test_freeze_api_and_argument_checks():
    layer = fnn.Dense(3, 2)
    assert layer.freeze() is layer and layer.frozen
    assert not layer.W.requires_grad and "frozen" in repr(layer.W)
    assert layer.unfreeze() is layer and not layer.frozen and layer.W.requires_grad
    assert not fnn.ReLU().frozen  # no parameters: nothing to freeze
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        layer.W.requires_grad = "no"
    layer.W.requires_grad = np.bool_(False)
    assert layer.W.requires_grad is False


def test_frozen_flags_survive_save_load_and_checkpoints(tmp_path, backend, rng):
    X, y = data(rng)
    model = make_model()
    model.layers[0].freeze()
    model.layers[3].b.requires_grad = False
    opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
    model.train_step(X, y, "softmax_cross_entropy", opt)
    fnn.save_checkpoint(tmp_path / "run.npz", model, opt)
    loaded = fnn.load(tmp_path / "run.npz")
    assert [p.requires_grad for p in loaded.parameters()] == \
        [p.requires_grad for p in model.parameters()]
    resumed, resumed_opt, _ = fnn.load_checkpoint(tmp_path / "run.npz")
    for _ in range(2):
        model.train_step(X, y, "softmax_cross_entropy", opt)
        resumed.train_step(X, y, "softmax_cross_entropy", resumed_opt)
    for p, q in zip(model.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_transfer_learning_load_features_freeze_them_retrain_the_top(tmp_path, backend, rng):
    X, y = data(rng)
    source = make_model(seed=1)
    opt = fnn.optim.SGD(source.parameters(), lr=0.1)
    for _ in range(3):
        source.train_step(X, y, "softmax_cross_entropy", opt)
    source.save(tmp_path / "source.npz")

    # Same feature layers, a new top with 3 classes instead of 5.
    target = fnn.Sequential(fnn.Dense(12, 16, activation="relu"), fnn.BatchNorm(16),
                            fnn.Dropout(0.2), fnn.Dense(16, 8, activation="tanh"),
                            fnn.Dense(8, 3), seed=2)
    top = [p.data.copy() for p in target.layers[4].parameters()]
    with pytest.raises(ValueError, match="4.W has shape"):
        target.load_state_dict(fnn.load(tmp_path / "source.npz").state_dict())
    result = target.load_state_dict(fnn.load(tmp_path / "source.npz").state_dict(),
                                    strict=False)
    assert result.mismatched_keys == ["4.W", "4.b"]
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, array in source.state_dict().items():
        if not key.startswith("4."):
            np.testing.assert_array_equal(target.state_dict()[key], array)
    for p, old in zip(target.layers[4].parameters(), top):
        np.testing.assert_array_equal(p.data, old)  # the new top kept its initialization

    for layer in target.layers[:4]:
        layer.freeze()
    features = [p.data.copy() for layer in target.layers[:4] for p in layer.parameters()]
    opt = fnn.optim.Adam(target.parameters(), lr=1e-2)
    y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # learnable from the features
    history = fnn.Trainer(target, opt, batch_size=16, epochs=10, progress=False,
                          regularization=fnn.regularization.L2(1e-3)).fit(X, y3)
    assert history.train_loss[-1] < history.train_loss[0]
    now = [p.data for layer in target.layers[:4] for p in layer.parameters()]
    for p, old in zip(now, features):
        np.testing.assert_array_equal(p, old)


def test_load_state_dict_reports_missing_and_unexpected_keys(rng):
    small = fnn.Sequential(fnn.Dense(4, 3), seed=0)
    big = fnn.Sequential(fnn.Dense(4, 3), fnn.Dense(3, 2), seed=1)
    result = small.load_state_dict(big.state_dict(), strict=False)
    assert result == ([], ["1.W", "1.b"], [])
    np.testing.assert_array_equal(small.layers[0].W.data, big.layers[0].W.data)
    result = big.load_state_dict(fnn.Sequential(fnn.Dense(4, 3), seed=5).state_dict(),
                                 strict=False)
    assert result.missing_keys == ["1.W", "1.b"]
    assert big.load_state_dict(big.state_dict()) == ([], [], [])
    with pytest.raises(ValueError, match="missing keys"):
        big.load_state_dict(small.state_dict())
    with pytest.raises(TypeError, match="strict must be True or False"):
        big.load_state_dict(big.state_dict(), strict="no")
    with pytest.raises(TypeError, match="state must be a dict"):
        big.load_state_dict([1, 2])


@pytest.mark.parametrize("frozen, match", [("W", "a list of parameter names"),
                                           ([1], "a list of parameter names"),
                                           (["gamma"], "some of its parameters")])
def test_a_file_with_a_bad_frozen_entry_is_refused(frozen, match, tmp_path):
    import json

    from fastnn import io as fio
    model = fnn.Sequential(fnn.Dense(4, 3), seed=0)
    model.layers[0].freeze()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays[fio.METADATA]))
    assert meta["layers"][0]["frozen"] == ["W", "b"]
    meta["layers"][0]["frozen"] = frozen
    arrays[fio.METADATA] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match=match):
        fnn.load(path)
