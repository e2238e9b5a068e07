"""fastnn.sklearn: the estimators pass scikit-learn's own estimator checks, work in its tools,
weight samples and classes, and pickle and save through fastnn's own format."""
import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CHECKS = """
import json, sys, warnings
from sklearn.utils.estimator_checks import check_estimator
from fastnn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor
out = {}
# Few epochs at a higher rate keep the checks quick; the defaults pass too.
for est in (MLPClassifier(max_iter=40, learning_rate_init=0.01),
            MLPRegressor(max_iter=40, learning_rate_init=0.01)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS,
                                  on_fail=None)
    out[type(est).__name__] = [(r["check_name"], r["status"], repr(r["exception"])[:300])
                               for r in results]
import fastnn
out["backend"] = fastnn.get_backend()
print(json.dumps(out))
"""


@pytest.mark.backend_independent
@pytest.mark.parametrize("kernels", ["cython", "numpy"])
def test_check_estimator_passes_with_no_check_skipped(kernels):
    # A subprocess: the array API check runs only when SCIPY_ARRAY_API=1 is set before scipy is
    # imported, which this process must not do for the rest of the suite.
    if kernels == "cython" and not fastnn.compiled_available():
        pytest.skip("the compiled backend is not built")
    env = dict(os.environ, SCIPY_ARRAY_API="1", FASTNN_BACKEND=kernels)
    env.pop("FASTNN_PARALLEL_MIN_WORK", None)  # conftest's low threshold: threads for tiny fits
    done = subprocess.run([sys.executable, "-c", CHECKS], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    assert results.pop("backend") == kernels
    for name, checks in results.items():
        assert len(checks) > 50
        bad = [c for c in checks if c[1] != "passed" and
               not (c[1] == "xfail" and c[0] in EXPECTED_FAILED_CHECKS)]
        assert not bad, (name, bad)


def blobs(n=240, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, 5)) * 4
    y = rng.integers(0, classes, n)
    return centers[y] + rng.standard_normal((n, 5)), y


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [-3, 7, 10], [False, True]])
def test_labels_of_any_type(labels):
    X, y = blobs(classes=len(labels))
    labels = np.array(labels)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01,
                        random_state=0).fit(X, labels[y])
    assert clf.classes_.tolist() == sorted(labels.tolist())
    assert clf.predict(X).dtype == labels.dtype
    assert clf.score(X, labels[y]) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    assert clf.n_features_in_ == 5 and clf.n_iter_ == 60 and len(clf.loss_curve_) == 60
    assert isinstance(clf.model_, fastnn.Sequential)
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_multi_output_regression():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4))
    Y = np.c_[X @ [1.0, -2.0, 0.5, 0.0], np.sin(X[:, 0])]
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, learning_rate_init=0.01,
                       random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.score(X, Y) > 0.9
    one = MLPRegressor(max_iter=5, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (300,)


def test_class_weight_is_a_per_sample_weight():
    X, y = blobs(n=150)
    cw = {0: 3.0, 1: 0.5, 2: 1.0}
    a = MLPClassifier(max_iter=10, class_weight=cw, random_state=0).fit(X, y)
    b = MLPClassifier(max_iter=10, random_state=0).fit(X, y, sample_weight=[cw[c] for c in y])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    balanced = MLPClassifier(max_iter=10, class_weight="balanced", random_state=0).fit(X, y)
    assert balanced.n_iter_ == 10
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight={7: 1.0}).fit(X, y)


def test_early_stopping_on_score_and_loss():
    X, y = blobs(n=400)
    for metric in ("score", "loss"):
        clf = MLPClassifier(max_iter=500, early_stopping=True, n_iter_no_change=3,
                            learning_rate_init=0.05, early_stopping_metric=metric,
                            random_state=0).fit(X, y)
        assert clf.n_iter_ < 500
        assert len(clf.validation_scores_) == clf.n_iter_
        assert clf.best_validation_score_ == max(clf.validation_scores_)
        assert clf.history_.stop_reason == "early stopping"


def test_partial_fit_needs_classes_then_continues():
    X, y = blobs()
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    for _ in range(20):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 21 and clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="labels"):
        clf.partial_fit(X, y + 5)
    reg = MLPRegressor(random_state=0).partial_fit(X, X[:, 0])
    assert reg.n_iter_ == 1


def test_warm_start_continues():
    X, y = blobs()
    clf = MLPClassifier(max_iter=3, warm_start=True, random_state=0).fit(X, y)
    weights = clf.model_.state_dict()
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 6 and clf.n_iter_ == 6
    assert any(not np.array_equal(weights[k], v) for k, v in clf.model_.state_dict().items())


def test_fastnn_options_train():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(16, 16), activation="leaky_relu", optimizer="sgd",
                        learning_rate_init=0.05, dropout=0.2, batch_norm=True, schedule="cosine",
                        max_norm=3.0, l1=1e-5, ema=0.9, init="glorot_uniform",
                        compute_dtype="float64", max_iter=30, random_state=0).fit(X, y)
    assert clf.model_.dtype == np.float64 and clf.score(X, y) > 0.9
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds.count("BatchNorm") == 2 and kinds.count("Dropout") == 2


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning")
def test_compute_dtype_bfloat16_fits_predicts_pickles_and_saves(tmp_path):
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(16,), compute_dtype="bfloat16", max_iter=20,
                        learning_rate_init=0.01, random_state=0).fit(X, y)
    assert clf.model_.compute_dtype == "bfloat16" and clf.model_.dtype == np.float32
    assert clf.get_params()["compute_dtype"] == "bfloat16"
    assert clone(clf).get_params() == clf.get_params()
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    clf.save(tmp_path / "clf.npz")
    for again in (pickle.loads(pickle.dumps(clf)), fastnn.sklearn.load(tmp_path / "clf.npz")):
        assert again.model_.compute_dtype == "bfloat16"
        np.testing.assert_array_equal(again.predict_proba(X), proba)
    reg = MLPRegressor(hidden_layer_sizes=(8,), compute_dtype="bfloat16", max_iter=3,
                       random_state=0).fit(X, X[:, :2])
    assert reg.model_.compute_dtype == "bfloat16" and reg.predict(X).shape == (len(X), 2)


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning")
def test_warm_start_takes_a_new_compute_dtype_but_not_new_weights():
    X, y = blobs(n=60)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True,
                        random_state=0).fit(X, y)
    clf.set_params(compute_dtype="bfloat16").fit(X, y)  # float32 weights both: continues
    assert clf.model_.compute_dtype == "bfloat16" and clf.n_iter_ == 4
    clf.set_params(compute_dtype="float32").partial_fit(X, y)
    assert clf.model_.compute_dtype == "float32" and clf.n_iter_ == 5
    weights = clf.model_.state_dict()
    with pytest.raises(ValueError, match="compute_dtype='float64' trains float64 weights, the "
                                         "fitted network's are float32"):
        clf.set_params(compute_dtype="float64").fit(X, y)
    assert all(np.array_equal(v, clf.model_.state_dict()[k]) for k, v in weights.items())


@pytest.mark.parametrize("param, value", [
    ("hidden_layer_sizes", (10, 0)), ("activation", "softplus"), ("optimizer", "lbfgs"),
    ("alpha", -1.0), ("batch_size", 0), ("learning_rate_init", 0.0), ("max_iter", 0),
    ("dropout", 1.0), ("schedule", "cyclic"), ("compute_dtype", "float16"),
    ("compute_dtype", "bf16"), ("compute_dtype", None), ("compute_dtype", ["float32"]),
    ("backend", "gpu"), ("n_threads", 0), ("early_stopping_metric", "auc"),
    ("validation_fraction", 1.0), ("init", "nonsense"), ("ema", 1.5)])
def test_bad_parameters_are_named(param, value):
    X, y = blobs(n=30)
    with pytest.raises(ValueError, match=param):
        MLPClassifier(**{param: value}).fit(X, y)


def test_sparse_input_is_refused_clearly():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y = blobs(n=30)
    with pytest.raises(TypeError, match="dense data is required"):
        MLPClassifier(max_iter=2).fit(scipy_sparse.csr_matrix(X), y)


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = blobs(n=60)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = MLPClassifier(max_iter=3, random_state=0).fit(frame, pd.Series(y))
    assert clf.feature_names_in_.tolist() == list(frame.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: X has no feature names
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))


def test_pipeline_grid_search_cross_val_clone():
    X, y = blobs(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, learning_rate_init=0.01,
                                                         random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.9
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2],
                                 "mlpclassifier__dropout": [0.0, 0.1]}, cv=2).fit(X, y)
    assert search.best_estimator_.score(X, y) > 0.9
    twin = clone(pipe[-1])
    assert twin.get_params() == pipe[-1].get_params() and not hasattr(twin, "model_")


def test_same_seed_same_model():
    X, y = blobs()
    a = MLPClassifier(max_iter=5, dropout=0.1, random_state=3).fit(X, y)
    b = MLPClassifier(max_iter=5, dropout=0.1, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_pickle_goes_through_fastnn_state():
    X, y = blobs()
    clf = MLPClassifier(max_iter=5, random_state=0).fit(X, ["a", "b", "c"] * 80)
    data = pickle.dumps(clf)
    for name in (b"fastnn.model", b"Sequential", b"fastnn.optim", b"Dense", b"fastnn.trainer"):
        assert name not in data  # the network travels as a fastnn file, not as objects
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.loss_curve_ == clf.loss_curve_
    again.partial_fit(X, ["a", "b", "c"] * 80)  # the optimizer state came along
    assert again.n_iter_ == 6
    unfitted = pickle.loads(pickle.dumps(MLPRegressor(alpha=0.5)))
    assert unfitted.alpha == 0.5 and not hasattr(unfitted, "model_")



@pytest.mark.backend_independent
def test_pickles_name_the_public_module():
    """A pickle records fastnn.sklearn.MLPClassifier, not the private module that defines it:
    pickles made before the module became a package load, as will today's after a reshuffle."""
    for cls in (MLPClassifier, MLPRegressor):
        assert cls.__module__ == "fastnn.sklearn"
        assert getattr(fastnn.sklearn, cls.__qualname__) is cls
        data = pickle.dumps(cls(alpha=0.5))
        assert b"fastnn.sklearn._" not in data and type(pickle.loads(data)) is cls

def test_save_and_load_pickle_free(tmp_path):
    X, y = blobs()
    labels = np.array(["x", "y", "z"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(12,), class_weight={"x": 2.0}, max_iter=5,
                        random_state=0).fit(X, labels)
    path = tmp_path / "clf.npz"
    clf.save(path)
    with np.load(path, allow_pickle=False) as archive:  # readable with pickles refused
        assert "__metadata__" in archive.files
    loaded = fastnn.sklearn.load(path)
    assert type(loaded) is MLPClassifier and loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    reg = MLPRegressor(max_iter=3, random_state=0).fit(X, X[:, :2])
    reg.save(tmp_path / "reg.npz")
    np.testing.assert_array_equal(fastnn.sklearn.load(tmp_path / "reg.npz").predict(X),
                                  reg.predict(X))
    fastnn.save(clf.model_, tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="not a fastnn.sklearn estimator"):
        fastnn.sklearn.load(tmp_path / "plain.npz")


def test_convergence_warning_like_sklearn():
    X, y = blobs(n=60)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        with warnings.catch_warnings():
            warnings.simplefilter("default", ConvergenceWarning)
            MLPClassifier(max_iter=2).fit(X, y)


@pytest.mark.backend_independent
def test_import_fastnn_does_not_import_sklearn():
    code = "import sys, fastnn; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_activations_come_from_the_table_and_the_layer_registry(monkeypatch):
    from fastnn import _activations
    from fastnn.sklearn import _params
    assert set(_params.ACTIVATIONS) == set(_activations.CODES) | {"logistic"}
    assert set(_params.ACTIVATION_LAYERS) == set(_activations.CODES)
    # A table row without a layer class of its own still works fused, not after a BatchNorm.
    monkeypatch.delitem(_params.ACTIVATION_LAYERS, "elu")
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    MLPClassifier(activation="elu", max_iter=1, hidden_layer_sizes=(4,)).fit(X, y)
    with pytest.raises(ValueError, match="activation must be one with a layer of its own"):
        MLPClassifier(activation="elu", batch_norm=True, max_iter=1).fit(X, y)
