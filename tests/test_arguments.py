"""More of issue 16's cases: every public argument checked up front, with a message naming it
(beside test_validation.py)."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import preprocessing as pp

X = np.random.default_rng(0).standard_normal((20, 4))
y = np.arange(20) % 3


def model(**kwargs):
    return fnn.Sequential(fnn.Dense(4, 3), seed=0, **kwargs)


def trainer(**kwargs):
    m = model()
    return fnn.Trainer(m, fnn.optim.SGD(m.parameters(), lr=0.1), progress=False, **kwargs)


BAD_DATA = [(np.full((3, 2), np.nan), ValueError, "NaN or inf"),
            (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "NaN or inf"),
            (np.ones((3, 2)) * 1j, TypeError, "real numbers"),
            (np.array([[1, "a"]], dtype=object), TypeError, "real numbers"),
            (np.ones((3, 0)), ValueError, ">= 1 features")]


@pytest.mark.parametrize("make", [pp.StandardScaler, pp.MeanSubtraction, pp.PCA,
                                  pp.ZCAWhitening])
@pytest.mark.parametrize("data, error, match", BAD_DATA)
def test_preprocessing_refuses_bad_data(make, data, error, match):
    with pytest.raises(error, match=match):
        make().fit(data)
    fitted = make().fit(np.random.default_rng(1).standard_normal((10, 2)))
    if data.shape[1] == 2:
        with pytest.raises(error, match=match):
            fitted.transform(data)


@pytest.mark.parametrize("layer", [fnn.Dense(2, 2), fnn.ReLU(), fnn.Tanh(), fnn.Dropout(0.5),
                                   fnn.BatchNorm(2), fnn.PReLU(2), fnn.Maxout(2, 2)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_standalone_layers_refuse_non_finite_input(layer, bad):
    X = np.ones((3, 2))
    X[1, 0] = bad
    for training in (False, True):
        with pytest.raises(ValueError, match="NaN or inf"):
            layer.forward(X, training=training)


def test_sequential_still_refuses_non_finite_input_and_its_layers_do_not_look_again():
    m = fnn.Sequential(fnn.Dense(4, 8), fnn.ReLU(), fnn.Dense(8, 3), seed=0)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="layer 0.*NaN or inf"):
        m.predict(bad)
    # Inside a Sequential a hidden layer's overflowing output is not an input error.
    m.layers[0].W.data[...] = 1e30
    m.predict(X * 1e10)
    # the flag does not leak out of the model's forward
    with pytest.raises(ValueError, match="NaN or inf"):
        m.layers[2].forward(np.full((2, 8), np.nan))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fnn.Dropout("0.5"), TypeError, r"p \(the probability"),
    (lambda: fnn.Dropout(np.float32(0.25)), None, None),
    (lambda: fnn.LeakyReLU(alpha=np.inf), ValueError, "alpha"),
    (lambda: fnn.ELU(alpha=np.nan), ValueError, "alpha"),
    (lambda: fnn.Dense(2, 2, "elu", alpha=np.inf), ValueError, "alpha"),
    (lambda: fnn.ReLU(alpha=0.3), ValueError, "relu activation takes no alpha"),
    (lambda: fnn.Sigmoid(alpha=1.0), ValueError, "takes no alpha"),
    (lambda: fnn.Dense(2, 2, "tanh", alpha=0.2), ValueError, "takes no alpha"),
    (lambda: fnn.Dense(2, 2, init=lambda s, r: np.full(s, np.nan)), ValueError, "NaN or inf"),
    (lambda: fnn.Dense(2, 2, init=lambda s, r: np.full(s, np.inf)), ValueError, "NaN or inf"),
    (lambda: fnn.Dense(2, 2, init=lambda s, r: np.ones((3, 3))), ValueError, "shape"),
    (lambda: fnn.losses.binary_hinge(np.zeros(3), np.array([-1, 0, 1])), ValueError, "mix -1 and 0"),
    (lambda: fnn.optim.SGD(model().parameters(), lr=0.1).load_state_dict(
        fnn.optim.Adam(model().parameters()).state_dict()), ValueError, "momentum"),
    (lambda: fnn.optim.Adam(model().parameters()).load_state_dict(
        fnn.optim.SGD(model().parameters()).state_dict()), ValueError, "betas"),
    (lambda: fnn.gradcheck(model(dtype="float64"), X, y, num_checks=0), ValueError, "num_checks"),
    (lambda: fnn.gradcheck(model(dtype="float64"), X, y, num_checks=2.0), TypeError, "num_checks"),
    (lambda: fnn.gradcheck(model(dtype="float64"), X, y, h=0), ValueError, "h "),
    (lambda: fnn.gradcheck(model(dtype="float64"), X, y, h=np.nan), ValueError, "h "),
    (lambda: model().predict(X, batch_size=0), ValueError, "batch_size"),
    (lambda: model().predict(X, batch_size=True), TypeError, "batch_size"),
    (lambda: model().predict(X, batch_size=np.int64(7)), None, None),
    (lambda: trainer().fit(X, None), TypeError, "y .*got None"),
    (lambda: trainer().fit(X, y, validation_data=X), TypeError, "validation_data"),
    (lambda: fnn.optim.SGD(model().parameters(), lr="0.1"), TypeError, "lr"),
    (lambda: fnn.optim.Adam(model().parameters(), eps=None), TypeError, "eps"),
    (lambda: pp.PCA(n_components=np.nan), ValueError, "n_components"),
    (lambda: fnn.Sequential(fnn.Dense(4, 3), seed=-1), ValueError, "seed"),
    (lambda: fnn.Sequential(fnn.Dense(4, 3), seed=1.5), TypeError, "seed"),
    (lambda: fnn.Sequential(fnn.Dense(4, 3), seed=np.uint32(3)), None, None),
    (lambda: model(compute_dtype="float16"), ValueError, "compute_dtype"),
    (lambda: model(compute_dtype=None), TypeError, "compute_dtype"),
    (lambda: model(dtype="float64", compute_dtype="bfloat16"), ValueError, "compute_dtype"),
    (lambda: trainer(compute_dtype="bf16"), ValueError, "compute_dtype"),
    (lambda: trainer(compute_dtype=32), TypeError, "compute_dtype"),
    (lambda: trainer(compute_dtype="bfloat16"), None, None),
    (lambda: trainer(schedule="cosine"), TypeError, "schedule"),
    (lambda: trainer(regularization=0.1), TypeError, "regularization"),
    (lambda: trainer(constraint=3.0), TypeError, "constraint"),
    (lambda: trainer(early_stopping=0), ValueError, "early_stopping"),
    (lambda: trainer(early_stopping="val_loss"), TypeError, "early_stopping"),
    (lambda: trainer(batch_size=True), TypeError, "batch_size"),
    (lambda: trainer(batch_size=np.int64(8), epochs=np.int32(1)), None, None),
    (lambda: trainer(ema=1.0), ValueError, "ema"),
    (lambda: trainer(update_ratio_range=1e-3), TypeError, "update_ratio_range"),
    (lambda: trainer(update_ratio_range=(1e-5, "x")), TypeError, r"update_ratio_range\[1\]"),
    (lambda: trainer(gap_threshold=np.nan), ValueError, "gap_threshold"),
    (lambda: trainer(dead_threshold="0.5"), TypeError, "dead_threshold"),
    (lambda: trainer(gap_threshold=np.inf, dead_threshold=np.float32(0.4)), None, None),
    (lambda: trainer(seed=-2), ValueError, "seed"),
    (lambda: trainer(progress="yes"), TypeError, "progress"),
    (lambda: fnn.EarlyStopping(patience=np.int64(3), min_delta=np.float32(0.1)), None, None),
    (lambda: fnn.EarlyStopping(min_delta=-1), ValueError, "min_delta"),
    (lambda: fnn.EMA(model(), decay="0.9"), TypeError, "decay"),
])
def test_arguments_checked_up_front(call, error, match):
    if error is None:
        call()
    else:
        with pytest.raises(error, match=match):
            call()


def test_early_stopping_true_is_refused_naming_what_it_takes():
    with pytest.raises(TypeError, match="early_stopping must be None, an EarlyStopping or an "
                                        "integer patience"):
        trainer(early_stopping=True)


def test_train_step_refuses_a_missing_optimizer_before_computing_anything():
    m = model()
    m.zero_grad()
    with pytest.raises(TypeError, match="optimizer"):
        m.train_step(X, y, "softmax_cross_entropy", None)
    assert m._output_shape is None  # no forward ran
    assert all(p._grad_is_zero for p in m.parameters())


def test_a_model_without_parameters_works_for_inference():
    m = fnn.Sequential(fnn.ReLU())
    assert m.in_features is None and m.out_features is None and m.parameters() == []
    np.testing.assert_array_equal(m.predict(X), np.maximum(X, 0).argmax(axis=1))
    loss, _ = m.forward_backward(X, y, "softmax_cross_entropy")
    assert np.isfinite(loss)
    m2 = fnn.Sequential(fnn.Tanh(), fnn.Dropout(0.5), seed=0)
    np.testing.assert_allclose(m2.predict_proba(X[:, :3]).sum(axis=1), 1.0, rtol=1e-6)


def test_schedule_and_regularization_fail_before_any_epoch():
    m = model()
    before = m.state_dict()
    with pytest.raises(TypeError):
        fnn.Trainer(m, fnn.optim.SGD(m.parameters(), lr=0.1), schedule="cosine")
    for key, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
