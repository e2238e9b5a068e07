"""fastnn.search: distributions, random_search serially, in processes and on a Dask cluster.

The searches fit fastnn.sklearn.MLPClassifier; LogisticRegression and small estimators of our own
check that any scikit-learn estimator works."""
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fastnn import search
from fastnn.search import choice, int_uniform, log_uniform, random_search, uniform

sklearn = pytest.importorskip("sklearn")
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    pick = np.random.default_rng(0).permutation(len(y))[:400]
    return X[pick] / 16.0, y[pick]


SPACE = {"alpha": log_uniform(1e-6, 1e-1), "learning_rate_init": log_uniform(1e-4, 1e-1),
         "hidden_layer_sizes": choice([(8,), (16,)])}


def mlp():
    return MLPClassifier(max_iter=8)


def key(result):
    """What must agree between runs: the trials' parameters, seeds, scores, epochs, ranks."""
    return [(t["trial"], t["round"], t["rank"], t["alpha"], t["learning_rate_init"],
             t["hidden_layer_sizes"], t["seed"], t["score"], t["train_score"], t["epochs"],
             t["error"]) for t in result.trials]


# -- distributions ------------------------------------------------------------------------------

@pytest.mark.backend_independent
def test_log_uniform_is_uniform_in_log():
    values = log_uniform(1e-4, 1e-1).rvs(size=20000, random_state=0)
    assert values.min() >= 1e-4 and values.max() <= 1e-1
    counts = np.histogram(np.log10(values), bins=3, range=(-4, -1))[0]
    assert np.all(np.abs(counts / 20000 - 1 / 3) < 0.02), counts  # one third per decade


@pytest.mark.backend_independent
def test_uniform_int_uniform_and_choice():
    u = uniform(0.2, 0.6).rvs(size=5000, random_state=1)
    assert 0.2 <= u.min() and u.max() <= 0.6 and abs(u.mean() - 0.4) < 0.01
    i = int_uniform(3, 5).rvs(size=3000, random_state=2)
    assert set(np.unique(i)) == {3, 4, 5}  # both ends included
    assert np.all(np.abs(np.bincount(i)[3:] / 3000 - 1 / 3) < 0.04)
    il = int_uniform(1, 1000, log=True).rvs(size=3000, random_state=3)
    assert 1 <= il.min() and il.max() <= 1000 and np.median(il) < 100  # log: median near 31
    c = choice(["relu", "tanh"]).rvs(size=1000, random_state=4)
    assert set(c) == {"relu", "tanh"}
    assert isinstance(choice([(8,), (16,)]).rvs(random_state=5), tuple)
    assert isinstance(log_uniform(1, 2).rvs(random_state=0), float)
    assert isinstance(int_uniform(1, 2).rvs(random_state=0), int)


@pytest.mark.backend_independent
def test_distributions_are_seeded_and_work_with_randomstate():
    d = log_uniform(1e-3, 1.0)
    assert d.rvs(random_state=7) == d.rvs(random_state=7)
    # sklearn's searches pass a RandomState: the same values as a Generator of the same draws
    assert 1e-3 <= d.rvs(random_state=np.random.RandomState(0)) <= 1.0



@pytest.mark.backend_independent
def test_distributions_and_results_pickle_under_the_public_module():
    import pickle
    result = search.SearchResult([], {"a": uniform(0, 1)}, None, False, 0.0)
    for made in (log_uniform(1e-3, 1.0), uniform(0, 1), int_uniform(1, 9, log=True),
                 choice([(8,), (16,)]), result):
        cls = type(made)
        assert cls.__module__ == "fastnn.search" and getattr(search, cls.__qualname__) is cls
        data = pickle.dumps(made)
        assert b"fastnn.search._" not in data and type(pickle.loads(data)) is cls
    assert pickle.loads(pickle.dumps(choice([1, 2]))) == choice([1, 2])

@pytest.mark.backend_independent
@pytest.mark.parametrize("make, error", [
    (lambda: log_uniform(0, 1), ValueError), (lambda: log_uniform(2, 1), ValueError),
    (lambda: uniform("a", 1), TypeError), (lambda: int_uniform(1.5, 3), TypeError),
    (lambda: int_uniform(0, 3, log=True), ValueError), (lambda: choice([]), ValueError),
    (lambda: choice("abc"), TypeError), (lambda: uniform(0, math.inf), TypeError)])
def test_bad_distribution_arguments(make, error):
    with pytest.raises(error):
        make()


@pytest.mark.backend_independent
def test_refine_space_spans_the_best_values():
    from scipy import stats
    space = {"a": log_uniform(1e-5, 1), "b": uniform(0, 1), "c": int_uniform(1, 100, log=True),
             "d": choice(["x", "y", "z"]), "e": stats.loguniform(1e-4, 1), "f": stats.uniform(0, 2),
             "g": stats.randint(1, 50)}
    best = {"a": [1e-3, 1e-2], "b": [0.2, 0.5], "c": [4, 9], "d": ["z", "x"], "e": [1e-3, 0.1],
            "f": [0.5, 1.5], "g": [3, 7]}
    refined = search.refine_space(space, best)
    assert refined["a"] == log_uniform(1e-3, 1e-2)
    assert refined["b"] == uniform(0.2, 0.5)
    assert refined["c"] == int_uniform(4, 9, log=True)
    assert refined["d"].options == ["x", "z"]  # the original order
    assert refined["e"] == log_uniform(1e-3, 0.1) and search.is_log_scaled(space["e"])
    assert refined["f"] == uniform(0.5, 1.5)
    assert refined["g"] == int_uniform(3, 7)


# -- random_search ------------------------------------------------------------------------------

@pytest.mark.backend_independent
def test_serial_search_ranks_trials_and_refits(digits):
    X, y = digits
    result = random_search(mlp(), SPACE, X, y, n_iter=5, random_state=0)
    assert len(result.trials) == 5 and [t["trial"] for t in result.trials] == list(range(5))
    ranked = result.ranking()
    assert [t["rank"] for t in ranked] == [1, 2, 3, 4, 5]
    assert all(a["score"] >= b["score"] for a, b in zip(ranked, ranked[1:]))
    best = ranked[0]
    assert result.best_score_ == best["score"]
    assert result.best_params_ == {k: best[k] for k in SPACE}
    for t in result.trials:
        assert 1e-6 <= t["alpha"] <= 1e-1 and t["hidden_layer_sizes"] in ((8,), (16,))
        assert t["epochs"] == 8 and t["fit_time"] > 0 and t["error"] is None
        assert isinstance(t["seed"], int) and len(t["fold_scores"]) == 1
        assert t["warning"].startswith("ConvergenceWarning")  # recorded, not lost
    assert len({t["seed"] for t in result.trials}) == 5  # every trial its own seed
    fitted = result.best_estimator_
    assert fitted.n_iter_ == 8 and fitted.random_state == result.best_seed_
    assert fitted.get_params()["alpha"] == result.best_params_["alpha"]
    # the same seed gives the same search; another seed another one
    assert key(random_search(mlp(), SPACE, X, y, n_iter=5, random_state=0, refit=False)) \
        == key(result)
    assert key(random_search(mlp(), SPACE, X, y, n_iter=5, random_state=1, refit=False)) \
        != key(result)
    assert "rank" in result.format() and "SearchResult(5 trials" in repr(result)


@pytest.mark.backend_independent
def test_random_state_set_on_the_estimator_is_kept(digits):
    X, y = digits
    result = random_search(MLPClassifier(max_iter=3, random_state=5), SPACE, X, y, n_iter=2,
                           random_state=0, refit=False)
    assert [t["seed"] for t in result.trials] == [None, None]


@pytest.mark.backend_independent
def test_serial_equals_two_processes(digits):
    X, y = digits
    serial = random_search(mlp(), SPACE, X, y, n_iter=6, refine=2, random_state=3, refit=False)
    parallel = random_search(mlp(), SPACE, X, y, n_iter=6, refine=2, random_state=3, n_jobs=2,
                             refit=False)
    assert key(serial) == key(parallel)
    assert len(serial.trials) == 12


@pytest.mark.backend_independent
def test_cross_validation_folds(digits):
    X, y = digits
    from scipy import stats
    space = {"C": stats.loguniform(1e-2, 1e2), "fit_intercept": [True, False]}  # as sklearn's
    result = random_search(LogisticRegression(max_iter=200), space, X, y, n_iter=3, cv=3,
                           random_state=0, refit=False)
    for t in result.trials:
        assert 1e-2 <= t["C"] <= 1e2 and isinstance(t["C"], float)
        assert t["fit_intercept"] in (True, False)
        assert len(t["fold_scores"]) == 3
        assert t["score"] == pytest.approx(np.mean(t["fold_scores"]))
        assert t["seed"] is None or isinstance(t["seed"], int)


class Fragile(ClassifierMixin, BaseEstimator):
    """Raises for some parameter values; scores NaN (a diverged fit) for others."""

    def __init__(self, mode="ok"):
        self.mode = mode

    def fit(self, X, y):
        if self.mode == "raise":
            raise ValueError("bad parameter combination")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y, sample_weight=None):
        return math.nan if self.mode == "nan" else 0.5


@pytest.mark.backend_independent
def test_failed_trials_are_recorded_and_do_not_stop_the_search(digits):
    X, y = digits
    result = random_search(Fragile(), {"mode": choice(["ok", "raise", "nan"])}, X, y, n_iter=12,
                           random_state=0)
    errors = {t["mode"]: t["error"] for t in result.trials}
    assert set(errors) == {"ok", "raise", "nan"}
    assert errors["ok"] is None
    assert errors["raise"] == "ValueError: bad parameter combination"
    assert errors["nan"].startswith("FloatingPointError")
    failed = [t for t in result.trials if t["error"]]
    assert all(math.isnan(t["score"]) for t in failed)
    assert min(t["rank"] for t in failed) > max(t["rank"] for t in result.trials if not t["error"])
    assert result.best_params_ == {"mode": "ok"} and result.best_estimator_ is not None
    assert "failed: ValueError" in result.format(top=None)


@pytest.mark.backend_independent
def test_every_trial_failing_warns_and_returns_the_table(digits):
    X, y = digits
    with pytest.warns(RuntimeWarning, match="every trial failed"):
        result = random_search(Fragile(), {"mode": ["raise"]}, X, y, n_iter=2, random_state=0)
    assert len(result.trials) == 2 and result.best_params_ is None
    assert result.best_estimator_ is None


class Interrupting(Fragile):
    def fit(self, X, y):
        if self.mode == "stop":
            raise KeyboardInterrupt
        return super().fit(X, y)


@pytest.mark.backend_independent
def test_ctrl_c_returns_the_trials_finished_so_far(digits):
    X, y = digits
    space = {"mode": choice(["ok", "stop"])}
    modes = [t["mode"] for t in random_search(Fragile(), space, X, y, n_iter=10, random_state=0,
                                              refit=False).trials]
    first_stop = modes.index("stop")
    assert first_stop > 0
    result = random_search(Interrupting(), space, X, y, n_iter=10, random_state=0)
    assert result.interrupted and result.best_estimator_ is None
    assert [t["mode"] for t in result.trials] == modes[:first_stop]
    assert result.best_params_ == {"mode": "ok"}


@pytest.mark.backend_independent
def test_refine_searches_the_span_of_the_best_trials(digits):
    X, y = digits
    result = random_search(mlp(), SPACE, X, y, n_iter=6, refine=3, random_state=0, refit=False)
    first = [t for t in result.trials if t["round"] == 0]
    second = [t for t in result.trials if t["round"] == 1]
    assert len(first) == len(second) == 6
    best = sorted(first, key=lambda t: -t["score"])[:3]
    for name in ("alpha", "learning_rate_init"):
        low, high = min(t[name] for t in best), max(t[name] for t in best)
        assert result.refined_space[name] == log_uniform(low, high)
        assert all(low <= t[name] <= high for t in second)
    assert {t["hidden_layer_sizes"] for t in second} <= {t["hidden_layer_sizes"] for t in best}
    assert [t["trial"] for t in result.trials] == list(range(12))


@pytest.mark.backend_independent
@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_iter": 0}, ValueError, "n_iter"), ({"cv": 1}, ValueError, "cv"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
    ({"refine": 9}, ValueError, "refine"), ({"n_jobs": 0}, ValueError, "n_jobs"),
    ({"random_state": -1}, ValueError, "random_state"), ({"scheduler": 3}, TypeError, "scheduler"),
    ({"space": {"nope": uniform(0, 1)}}, ValueError, "nope"),
    ({"space": {"alpha": 0.1}}, TypeError, "space"), ({"space": {}}, TypeError, "space"),
    ({"estimator": object()}, TypeError, "estimator"), ({"y": np.zeros(3)}, ValueError, "samples")])
def test_bad_arguments_are_refused_up_front(digits, kwargs, error, match):
    X, y = digits
    args = {"estimator": mlp(), "space": SPACE, "X": X, "y": y, "n_iter": 4, **kwargs}
    with pytest.raises(error, match=match):
        random_search(**args)


@pytest.mark.backend_independent
def test_table_and_plot(digits, tmp_path):
    X, y = digits
    result = random_search(mlp(), SPACE, X, y, n_iter=4, refine=2, random_state=0, refit=False)
    pd = pytest.importorskip("pandas")
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 8
    assert {"alpha", "score", "fit_time", "epochs", "error"} <= set(frame.columns)
    pytest.importorskip("matplotlib")
    path = result.plot(tmp_path / "search.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# -- fastnn search (CLI) ------------------------------------------------------------------------

@pytest.mark.backend_independent
def test_cli_search(tmp_path):
    plot, best = tmp_path / "search.png", tmp_path / "best.joblib"
    run = subprocess.run([sys.executable, "-m", "fastnn.cli", "search", "--trials", "3",
                          "--epochs", "3", "--refine", "2", "--plot", str(plot), "--save-best",
                          str(best), "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "rank" in run.stdout and "best validation score" in run.stdout
    assert plot.exists() and best.exists()
    import joblib
    model = joblib.load(best)
    X, y = load_digits(return_X_y=True)
    assert model.predict(X[:5]).shape == (5,)


# -- Dask ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                           host="127.0.0.1", dashboard_address=None)
    yield cluster
    cluster.close()


@pytest.mark.backend_independent
def test_dask_cluster_gives_the_local_results(digits, cluster):
    X, y = digits
    local = random_search(mlp(), SPACE, X, y, n_iter=3, refine=2, random_state=5, refit=False)
    remote = random_search(mlp(), SPACE, X, y, n_iter=3, refine=2, random_state=5,
                           scheduler=cluster.scheduler_address, refit=False)
    assert key(remote) == key(local)
    import joblib
    from dask.distributed import Client
    with Client(cluster) as client, joblib.parallel_backend("dask"):
        inside = random_search(mlp(), SPACE, X, y, n_iter=3, refine=2, random_state=5,
                               refit=False)
        workers = set(client.run(os.getpid))
        given = random_search(mlp(), SPACE, X, y, n_iter=3, refine=2, random_state=5,
                              scheduler=client, refit=False)
    assert key(inside) == key(local) and key(given) == key(local)
    assert os.getpid() not in workers  # the trials really ran in other processes


@pytest.mark.backend_independent
def test_randomized_search_cv_under_the_dask_backend(digits, cluster):
    X, y = digits
    import joblib
    from dask.distributed import Client
    from sklearn.model_selection import RandomizedSearchCV
    space = {"alpha": log_uniform(1e-5, 1e-1), "learning_rate_init": log_uniform(1e-3, 1e-1)}
    kwargs = dict(n_iter=3, cv=2, random_state=0)
    local = RandomizedSearchCV(MLPClassifier(max_iter=5, random_state=0), space, **kwargs).fit(X, y)
    with Client(cluster), joblib.parallel_backend("dask"):
        remote = RandomizedSearchCV(MLPClassifier(max_iter=5, random_state=0), space,
                                    **kwargs).fit(X, y)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])


@pytest.mark.backend_independent
def test_unreachable_scheduler_is_a_clear_error(digits):
    pytest.importorskip("dask.distributed")
    import dask
    X, y = digits
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(OSError, match="Dask scheduler"):
        random_search(mlp(), SPACE, X, y, n_iter=2, scheduler="tcp://127.0.0.1:9")


class ThreadCounter(ClassifierMixin, BaseEstimator):
    """Scores the OpenMP thread count fastnn has while it fits (and the BLAS limit)."""

    def __init__(self, c=0.0):
        self.c = c

    def fit(self, X, y):
        import fastnn
        from threadpoolctl import threadpool_info
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        self.threads_ = (fastnn.get_num_threads(), max(blas) if blas else None)
        self.classes_ = np.unique(y)
        return self

    def score(self, X, y, sample_weight=None):
        return float(self.threads_[0])


@pytest.mark.backend_independent
def test_threads_per_trial_are_limited(digits):
    import fastnn
    X, y = digits
    before = fastnn.get_num_threads()
    space = {"c": uniform(0, 1)}
    cores = len(os.sched_getaffinity(0))

    def threads(**kwargs):
        fastnn_threads = random_search(ThreadCounter(), space, X, y, n_iter=2, random_state=0,
                                       refit=False, **kwargs)
        blas = random_search(ThreadCounter(), space, X, y, n_iter=2, random_state=0,
                             scoring=lambda est, X, y: est.threads_[1], refit=False, **kwargs)
        # no BLAS threadpoolctl knows: the scorer fails, and there is nothing to check
        blas_threads = None if blas.trials[0]["error"] else [t["score"] for t in blas.trials]
        return [t["score"] for t in fastnn_threads.trials], blas_threads

    for kwargs in ({}, {"n_jobs": 2}):  # the default: one thread, in every mode
        got, blas = threads(**kwargs)
        assert got == [1.0, 1.0] and blas in (None, [1.0, 1.0]), kwargs
    got, blas = threads(n_jobs=2, threads_per_trial="auto")
    assert got == [max(1, cores // 2)] * 2 and blas in (None, got)  # jobs x threads <= cores
    got, _ = threads(threads_per_trial="auto")  # serially: the process's own
    assert got == [before] * 2
    assert fastnn.get_num_threads() == before  # restored after the trials
    with pytest.raises(ValueError, match="threads_per_trial"):
        random_search(ThreadCounter(), space, X, y, n_iter=2, threads_per_trial=0)


@pytest.mark.backend_independent
def test_cli_search_on_a_scheduler(cluster, capsys):
    from fastnn import cli
    code = cli.main(["search", "--trials", "2", "--epochs", "2", "--quiet", "--scheduler",
                     cluster.scheduler_address])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"on Dask scheduler {cluster.scheduler_address}" in out
    assert "best validation score" in out
    code = cli.main(["search", "--trials", "2", "--jobs", "0"])
    assert code == 1 and "n_jobs" in capsys.readouterr().err
