"""Every public argument is checked up front: a ValueError or TypeError naming the argument and
what it accepts, before anything runs or changes (issue 16's list of bare or late errors)."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import optim
from fastnn._validation import check_choice, check_float, check_int


def model(dtype="float32"):
    return fnn.Sequential(fnn.Dense(4, 3), seed=0, dtype=dtype)


X = np.random.default_rng(0).standard_normal((10, 4))
y = np.arange(10) % 3


@pytest.mark.backend_independent
class TestChecks:
    def test_int_accepts_numpy_integers_and_refuses_bool_and_floats(self):
        assert check_int("n", np.int64(3), low=1) == 3
        assert type(check_int("n", np.uint8(3))) is int
        for bad in (True, 3.0, "3", None):
            with pytest.raises(TypeError, match="n must be an integer"):
                check_int("n", bad)
        with pytest.raises(ValueError, match=r"n must be an integer >= 1 and <= 5, got 6"):
            check_int("n", 6, low=1, high=5)

    def test_float_accepts_numpy_numbers_and_refuses_strings_bool_nan_inf(self):
        assert check_float("x", np.float32(0.5), 0, 1) == 0.5
        assert check_float("x", np.int64(1), 0, 1) == 1.0
        for bad in ("0.1", True, None, 1j):
            with pytest.raises(TypeError, match="x must be a finite number"):
                check_float("x", bad)
        for bad in (float("nan"), float("inf"), -1.0):
            with pytest.raises(ValueError, match="x must be a finite number >= 0"):
                check_float("x", bad, 0)
        assert check_float("x", float("inf"), 0, finite=False) == float("inf")
        with pytest.raises(ValueError, match="> 0"):
            check_float("x", 0.0, 0, low_open=True)

    def test_choice(self):
        assert check_choice("mode", "a", ("a", "b")) == "a"
        with pytest.raises(ValueError, match="mode must be one of 'a', 'b', got 'c'"):
            check_choice("mode", "c", ("a", "b"))
        with pytest.raises(ValueError, match="mode must be one of"):
            check_choice("mode", [1], {"a"})


def test_model_of_parameter_free_layers_works_for_inference():
    m = fnn.Sequential(fnn.ReLU(), fnn.Tanh())
    assert m.in_features is None and m.out_features is None
    Z = np.array([[-1.0, 2.0, 0.5]])
    np.testing.assert_allclose(m.predict_proba(Z).sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(m.forward(Z, training=False), np.tanh(np.maximum(Z, 0)),
                               rtol=1e-6)
    loss, _ = m.forward_backward(Z, [1], "softmax_cross_entropy")
    assert np.isfinite(loss)
    m.summary(print_fn=lambda line: None)


def test_model_of_parameter_free_layers_saves_and_loads(tmp_path):
    m = fnn.Sequential(fnn.ReLU())
    fnn.save(m, tmp_path / "m.npz")
    loaded = fnn.load(tmp_path / "m.npz")
    Z = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(loaded.forward(Z, training=False), [[0.0, 2.0]])


@pytest.mark.backend_independent
class TestModel:
    def test_seed(self):
        with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
            fnn.Sequential(fnn.Dense(2, 2), seed=-1)
        with pytest.raises(TypeError, match="seed"):
            fnn.Sequential(fnn.Dense(2, 2), seed="0")
        a = fnn.Sequential(fnn.Dense(2, 2), seed=np.int64(3))
        b = fnn.Sequential(fnn.Dense(2, 2), seed=3)
        np.testing.assert_array_equal(a.parameters()[0].data, b.parameters()[0].data)

    def test_predict_batch_size(self):
        m = model()
        for bad, error in ((0, ValueError), (-1, ValueError), (2.0, TypeError)):
            with pytest.raises(error, match="batch_size"):
                m.predict(X, batch_size=bad)
        np.testing.assert_array_equal(m.predict(X, batch_size=np.int64(3)), m.predict(X))

    def test_train_step_refuses_a_missing_optimizer_before_running(self):
        m = model()
        before = m.state_dict()
        m.zero_grad()
        with pytest.raises(TypeError, match="optimizer"):
            m.train_step(X, y, "softmax_cross_entropy", None)
        # refused before forward and backward: no gradient was computed
        assert all(not p.grad.any() for p in m.parameters())
        for key, value in before.items():
            np.testing.assert_array_equal(m.state_dict()[key], value)


@pytest.mark.backend_independent
class TestTrainer:
    def trainer(self, **kwargs):
        m = model()
        return fnn.Trainer(m, optim.SGD(m.parameters(), lr=0.1), progress=False, **kwargs)

    def test_numpy_integers_are_accepted(self):
        t = self.trainer(batch_size=np.int64(8), epochs=np.int32(1), early_stopping=np.int64(2))
        assert t.batch_size == 8 and type(t.batch_size) is int
        t.fit(X, y)
        assert t.history.stop_reason == "completed"

    @pytest.mark.parametrize("kwargs, error, match", [
        (dict(early_stopping=True), TypeError, "early_stopping"),
        (dict(early_stopping=0), ValueError, "early_stopping"),
        (dict(early_stopping="val_loss"), TypeError, "early_stopping"),
        (dict(schedule="cosine"), TypeError, "schedule"),
        (dict(regularization=0.1), TypeError, "regularization"),
        (dict(constraint=3.0), TypeError, "constraint"),
        (dict(batch_size=True), TypeError, "batch_size"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(epochs=1.5), TypeError, "epochs"),
        (dict(ema=1.5), ValueError, "ema"),
        (dict(ema=float("nan")), ValueError, "ema"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(shuffle="yes"), TypeError, "shuffle"),
    ])
    def test_refused_at_construction(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            self.trainer(**kwargs)

    def test_optimizer_and_model_are_checked(self):
        m = model()
        with pytest.raises(TypeError, match="optimizer"):
            fnn.Trainer(m, None)
        with pytest.raises(TypeError, match="model"):
            fnn.Trainer("model", optim.SGD(m.parameters()))

    def test_fit_without_targets(self):
        t = self.trainer(epochs=1)
        with pytest.raises(TypeError, match="y"):
            t.fit(X, None)
        with pytest.raises(TypeError, match="validation_data"):
            t.fit(X, y, validation_data=X)
        assert t.epoch == 0

    def test_early_stopping_arguments(self):
        with pytest.raises(ValueError, match="patience"):
            fnn.EarlyStopping(patience=0)
        with pytest.raises(TypeError, match="min_delta"):
            fnn.EarlyStopping(min_delta="0.1")
        assert fnn.EarlyStopping(patience=np.int64(3)).patience == 3


@pytest.mark.backend_independent
class TestOptimizers:
    @pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop,
                                     optim.Adagrad])
    @pytest.mark.parametrize("lr, error", [("0.1", TypeError), (None, TypeError),
                                           (True, TypeError), (float("nan"), ValueError),
                                           (-1.0, ValueError), (float("inf"), ValueError)])
    def test_lr(self, cls, lr, error):
        with pytest.raises(error, match="lr"):
            cls(model().parameters(), lr=lr)

    def test_lr_accepts_numpy_floats(self):
        optim.SGD(model().parameters(), lr=np.float32(0.1)).step()

    def test_load_state_dict_of_another_optimizer_is_refused(self):
        m = model()
        adam = optim.Adam(m.parameters())
        m.train_step(X, y, "softmax_cross_entropy", adam)
        sgd = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        before = dict(sgd.param_groups[0])
        with pytest.raises(ValueError, match=r"SGD.load_state_dict: .*\['amsgrad', 'betas', "
                                             r"'eps'\].*Adam|another optimizer"):
            sgd.load_state_dict(adam.state_dict())
        assert sgd.param_groups[0] == before and not sgd.state

    def test_load_state_dict_checks_values_before_changing_anything(self):
        sgd = optim.SGD(model().parameters(), lr=0.1)
        state = sgd.state_dict()
        state["param_groups"][0]["lr"] = float("nan")
        with pytest.raises(ValueError, match="lr"):
            sgd.load_state_dict(state)
        assert sgd.param_groups[0]["lr"] == 0.1


@pytest.mark.backend_independent
def test_gradcheck_arguments():
    m = model("float64")
    for kwargs, error in ((dict(num_checks=0), ValueError), (dict(num_checks=2.0), TypeError),
                          (dict(h=0), ValueError), (dict(h=float("nan")), ValueError),
                          (dict(h="1e-5"), TypeError)):
        name = next(iter(kwargs))
        with pytest.raises(error, match=name):
            fnn.gradcheck(m, X, y, **kwargs)


@pytest.mark.backend_independent
class TestLayers:
    def test_dropout_p(self):
        with pytest.raises(TypeError, match="Dropout: p"):
            fnn.Dropout("0.5")
        assert fnn.Dropout(np.float32(0.25)).p == 0.25

    @pytest.mark.parametrize("make", [lambda a: fnn.LeakyReLU(alpha=a), lambda a: fnn.ELU(alpha=a),
                                      lambda a: fnn.Dense(2, 2, activation="elu", alpha=a)])
    def test_alpha_infinite_or_nan(self, make):
        for bad in (float("inf"), float("nan")):
            with pytest.raises(ValueError, match="alpha"):
                make(bad)

    @pytest.mark.parametrize("make", [lambda: fnn.ReLU(alpha=0.1), lambda: fnn.Tanh(alpha=2),
                                      lambda: fnn.Dense(2, 2, activation="relu", alpha=0.1),
                                      lambda: fnn.Dense(2, 2, alpha=0.5)])
    def test_alpha_given_to_an_activation_without_one_is_refused(self, make):
        with pytest.raises(ValueError, match="takes no alpha"):
            make()

    @pytest.mark.parametrize("value", [np.nan, np.inf])
    def test_init_giving_nonfinite_weights_is_refused(self, value):
        with pytest.raises(ValueError, match="init .* NaN or inf"):
            fnn.Dense(3, 2, init=lambda shape, rng: np.full(shape, value))
        with pytest.raises(ValueError, match="init .* NaN or inf"), np.errstate(over="ignore"):
            fnn.Dense(3, 2, init=1e300)  # overflows float32
        with pytest.raises(ValueError, match="returned shape"):
            fnn.Dense(3, 2, init=lambda shape, rng: np.zeros((2, 3)))
        with pytest.raises(TypeError, match="init"):
            fnn.Dense(3, 2, init=lambda shape, rng: "weights")


@pytest.mark.parametrize("layer", [fnn.Dense(3, 2), fnn.ReLU(), fnn.Tanh(), fnn.Dropout(0.5),
                                   fnn.BatchNorm(3), fnn.PReLU(3), fnn.Maxout(3, 2)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_standalone_layer_forward_refuses_nonfinite_input(layer, bad):
    Z = np.ones((4, 3))
    Z[1, 2] = bad
    for training in (False, True):
        with pytest.raises(ValueError, match="input contains NaN or inf"):
            layer.forward(Z, training=training)


def test_sequential_scans_its_input_once(monkeypatch):
    """The layers inside a Sequential do not scan again what it checked."""
    from fastnn import model as model_module
    from fastnn.layers import _base as layers
    calls = []
    real = layers.all_finite
    monkeypatch.setattr(layers, "all_finite", lambda X: calls.append(1) or real(X))
    monkeypatch.setattr(model_module, "all_finite", lambda X: calls.append(1) or real(X))
    m = fnn.Sequential(fnn.Dense(4, 5), fnn.ReLU(), fnn.Dense(5, 3), seed=0)
    m.forward(X, training=False)
    assert len(calls) == 1


def test_binary_hinge_refuses_labels_mixing_minus_one_and_zero():
    scores = np.zeros((3, 1))
    with pytest.raises(ValueError, match="mix -1 and 0"):
        fnn.losses.binary_hinge(scores, np.array([-1, 0, 1]))
    for good in ([-1, 1, 1], [0, 1, 0]):
        loss, _ = fnn.losses.binary_hinge(scores, np.array(good))
        assert loss == 1.0


@pytest.mark.backend_independent
class TestPreprocessing:
    from fastnn.preprocessing import PCA, MeanSubtraction, StandardScaler, ZCAWhitening
    ALL = (StandardScaler, MeanSubtraction, lambda: TestPreprocessing.PCA(1), ZCAWhitening)

    @pytest.mark.parametrize("make", ALL)
    @pytest.mark.parametrize("bad, error, match", [
        (np.array([[np.nan, 1.0], [1.0, 2.0], [0.0, 1.0]]), ValueError, "NaN or inf"),
        (np.array([[np.inf, 1.0], [1.0, 2.0], [0.0, 1.0]]), ValueError, "NaN or inf"),
        (np.ones((3, 2), complex), TypeError, "real numbers"),
        (np.ones((3, 2), object), TypeError, "real numbers"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "real numbers"),
        (np.ones((3, 0)), ValueError, ">= 1 features"),
        (np.ones((0, 2)), ValueError, "N >= 1"),
    ])
    def test_fit_refuses(self, make, bad, error, match):
        transformer = make()
        with pytest.raises(error, match=match):
            transformer.fit(bad)
        fitted = make().fit(np.arange(6.0).reshape(3, 2) ** 2)
        if bad.shape == (3, 2) or bad.dtype.kind == "U":
            with pytest.raises(error, match=match):
                fitted.transform(bad)

    def test_constructor_arguments(self):
        with pytest.raises(TypeError, match="eps"):
            self.StandardScaler(eps="1e-12")
        with pytest.raises(ValueError, match="per"):
            self.MeanSubtraction(per="pixel")
        with pytest.raises(TypeError, match="whiten"):
            self.PCA(whiten="yes")
        with pytest.raises(ValueError, match="n_components"):
            self.PCA(n_components=0)


@pytest.mark.backend_independent
def test_schedule_and_batchnorm_arguments_found_by_the_fuzz_suite():
    opt = optim.SGD(model().parameters(), lr=0.1)
    # a tiny float T_max made the cosine's argument inf: epoch counts are integers
    with pytest.raises(TypeError, match="T_max"):
        optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2.2e-309)
    with pytest.raises(TypeError, match="total_iters"):
        optim.lr_scheduler.LinearLR(opt, total_iters=2.5)
    # gamma ** epoch past the float range: refused as an infinite learning rate, not OverflowError
    schedule = optim.lr_scheduler.ExponentialLR(opt, gamma=5.6e102)
    with pytest.raises(ValueError, match="learning rate"):
        for _ in range(4):
            schedule.step()
    for bad, error in (("adam", TypeError), (None, TypeError), (1.5, ValueError)):
        with pytest.raises(error, match="momentum"):
            fnn.BatchNorm(2, momentum=bad)
    with pytest.raises(TypeError, match="eps"):
        fnn.BatchNorm(2, eps="1e-5")
