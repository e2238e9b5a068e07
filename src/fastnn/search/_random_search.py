"""random_search: its arguments checked, the trials drawn up front, a coarse round and a refined
one, the best refit."""
import numbers
import time
import warnings

import numpy as np

from ._distributions import as_distribution, draw_params
from ._refine import rank_trials, refine_space
from ._result import COLUMNS, SearchResult
from ._trials import on_cluster, run_round, seed_names, seed_params, validation_splits


def random_search(estimator, space, X, y, n_iter=20, cv=None, validation_fraction=0.2,
                  refine=None, n_jobs=None, random_state=None, scheduler=None, scoring=None,
                  refit=True, threads_per_trial=1, progress=False):
    """Random hyperparameter search: `n_iter` trials, each a fit, ranked by validation score.

    estimator: a scikit-learn estimator (fastnn.sklearn.MLPClassifier, a Pipeline, ...); each
        trial fits `sklearn.base.clone(estimator).set_params(**trial)`.
    space: {parameter name: distribution}: log_uniform, uniform, int_uniform, choice, a
        scipy.stats distribution (anything with rvs), or a list (a choice among its items).
    cv: None (default) holds out one validation split of `validation_fraction` (stratified for
        classifiers; the notes: one fold is enough for a big data set); an integer k >= 2 scores
        the mean over k folds (stratified for classifiers); or a scikit-learn splitter.
    refine: k runs a second round of `n_iter` trials in the region the best k trials of the first
        round span: the range of each numeric hyperparameter (log-scaled where its distribution
        is) and the options they used (coarse to fine).
    n_jobs: None or 1 runs the trials here, one after the other (None inside a
        `joblib.parallel_backend(...)` block takes that block's n_jobs); k > 1 runs k processes
        (joblib's loky backend); -1 one per core. Inside `with joblib.parallel_backend("dask")`
        the trials run on the cluster.
    random_state: seeds every draw. Each trial's parameters and seed are drawn up front, so the
        same random_state gives the same trials and scores serially, with n_jobs processes and on
        a Dask cluster. The seed is given to every `random_state` parameter of the estimator (also
        a Pipeline step's) that is None and not in `space`, so every trial is reproducible; a
        random_state you set yourself is kept (then all trials share it).
    scheduler: a Dask scheduler address ("tcp://host:8786") or a dask.distributed.Client: the
        trials run on its workers (fastnn installed there; the `dask` extra here).
    scoring: None (the estimator's `score`), a scikit-learn scorer name or a callable.
    refit: refit the best trial's estimator (same parameters and seed) on all of X, y.
    threads_per_trial: BLAS and OpenMP threads of every trial (threadpoolctl and
        fastnn.set_num_threads), the same serially, in processes and on a cluster: 1 (default)
        or n. "auto": all this process has when serial, cores // k in k processes, what Dask's
        nanny set on a cluster; faster for big models, but a model whose numbers depend on the
        thread count (fastnn's float32 GEMMs on the digits do) then scores differently in each
        mode. Limits are per process: threads of one process (joblib's threading backend, Dask
        workers with several threads) share them.
    progress: a tqdm bar over the trials (the `progress` extra).

    A trial that raises (a bad parameter combination, a diverging fit: a non-finite score) is a
    row with its error and NaN score; the search goes on. KeyboardInterrupt (Ctrl-C) ends the
    search and returns the trials finished so far (`result.interrupted`, no refit); with
    n_jobs > 1 the trials still running are abandoned (joblib stops its workers).
    Returns a SearchResult.
    """
    _check_args(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
                random_state, scheduler, scoring, progress)
    if threads_per_trial != "auto" and (isinstance(threads_per_trial, bool) or not isinstance(
            threads_per_trial, numbers.Integral) or threads_per_trial < 1):
        raise ValueError(f"random_search: threads_per_trial must be a positive integer or "
                         f"\"auto\", got {threads_per_trial!r}")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError("random_search needs scikit-learn, which fastnn installs with its "
                          "`search` extra: pip install \"fastnn[search]\" (from a clone: "
                          "pip install \".[search]\")") from None
    space = {name: as_distribution(name, value) for name, value in space.items()}
    if scheduler is not None:
        with on_cluster(scheduler):
            return _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, -1,
                           random_state, scoring, refit, threads_per_trial, progress)
    return _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
                   random_state, scoring, refit, threads_per_trial, progress)


def _check_args(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
                random_state, scheduler, scoring, progress):
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")
            and hasattr(estimator, "set_params")):
        raise TypeError(f"random_search: estimator must be a scikit-learn estimator (fit, "
                        f"get_params, set_params), got {type(estimator).__name__}")
    if not isinstance(space, dict) or not space:
        raise TypeError(f"random_search: space must be a non-empty dict of parameter name -> "
                        f"distribution, got {space!r}")
    known = estimator.get_params(deep=True)
    for name in space:
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"random_search: space names {name!r}, which is not a parameter of "
                             f"{type(estimator).__name__}; its parameters: {sorted(known)}")
        if name in COLUMNS:
            raise ValueError(f"random_search: a hyperparameter may not be named {name!r} (a "
                             f"column of the trial table: {COLUMNS})")
    for label, value, low in (("n_iter", n_iter, 1), ("refine", refine, 1)):
        if value is None and label == "refine":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"random_search: {label} must be a positive integer"
                             f"{' or None' if label == 'refine' else ''}, got {value!r}")
    if refine is not None and refine > n_iter:
        raise ValueError(f"random_search: refine={refine} must not exceed n_iter={n_iter} (it "
                         f"takes the best `refine` trials of the first round)")
    if cv is not None and not hasattr(cv, "split") and (
            isinstance(cv, bool) or not isinstance(cv, numbers.Integral) or cv < 2):
        raise ValueError(f"random_search: cv must be None (one validation split), an integer >= 2 "
                         f"(folds) or a scikit-learn splitter, got {cv!r}")
    if isinstance(validation_fraction, bool) or not isinstance(
            validation_fraction, numbers.Real) or not 0 < validation_fraction < 1:
        raise ValueError(f"random_search: validation_fraction must lie in (0, 1), got "
                         f"{validation_fraction!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
                               or n_jobs == 0):
        raise ValueError(f"random_search: n_jobs must be None, a positive integer or negative "
                         f"(joblib's -1 = all cores), got {n_jobs!r}")
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, numbers.Integral)
                                     or random_state < 0):
        raise ValueError(f"random_search: random_state must be None or a non-negative integer, "
                         f"got {random_state!r}")
    if scheduler is not None and not isinstance(scheduler, str) and not hasattr(scheduler,
                                                                                 "submit"):
        raise TypeError(f"random_search: scheduler must be None, a Dask scheduler address "
                        f"(\"tcp://host:8786\") or a dask.distributed.Client, got {scheduler!r}")
    if scoring is not None and not isinstance(scoring, str) and not callable(scoring):
        raise TypeError(f"random_search: scoring must be None (the estimator's score), a "
                        f"scikit-learn scorer name or a callable, got {scoring!r}")
    if not isinstance(progress, bool):
        raise TypeError(f"random_search: progress must be True or False, got {progress!r}")
    n_x, n_y = (getattr(a, "shape", (None,))[0] if hasattr(a, "shape") else len(a)
                for a in (X, y))
    if n_x != n_y:
        raise ValueError(f"random_search: X and y have different numbers of samples "
                         f"({n_x} and {n_y})")


def _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
            random_state, scoring, refit, threads, progress):
    """The search itself, on whatever joblib backend is active: every trial drawn in this process
    from one generator, a coarse round, a refined one (refine=k), the ranking and the refit."""
    started = time.perf_counter()
    rng = np.random.default_rng(random_state)
    split_seed = int(rng.integers(2**31 - 1))
    splits = validation_splits(estimator, X, y, cv, validation_fraction, split_seed)
    seeded = bool(seed_names(estimator, space))

    def draw(round_space):
        draws = []
        for _ in range(n_iter):
            params = draw_params(round_space, rng)
            draws.append((params, int(rng.integers(2**31 - 1)) if seeded else None))
        return draws

    trials, interrupted = run_round(estimator, draw(space), X, y, splits, scoring, n_jobs,
                                    threads, progress, 0, 0)
    refined = None
    if refine is not None and not interrupted:
        rank_trials(trials)
        best = [t for t in sorted(trials, key=lambda t: t["rank"]) if t["error"] is None][:refine]
        if best:
            refined = refine_space(space, {name: [t[name] for t in best] for name in space})
            more, interrupted = run_round(estimator, draw(refined), X, y, splits, scoring,
                                          n_jobs, threads, progress, n_iter, 1)
            trials += more
    trials.sort(key=lambda t: t["trial"])
    rank_trials(trials)
    result = SearchResult(trials, space, refined, interrupted, time.perf_counter() - started)
    if result.best_params_ is None:
        if trials:
            warnings.warn(f"random_search: every trial failed; the first: {trials[0]['error']}",
                          RuntimeWarning, stacklevel=3)
        return result
    if refit and not interrupted:
        from sklearn.base import clone
        best = clone(estimator).set_params(**result.best_params_,
                                           **seed_params(estimator, result.best_params_,
                                                         result.best_seed_))
        result.best_estimator_ = best.fit(X, y)
    return result
