"""Running the trials: one trial is a fit per validation split; a round runs its trials here,
in joblib's processes or on a Dask cluster, each under the same BLAS and OpenMP thread limits."""
import contextlib
import math
import os
import time
import traceback
import warnings

import numpy as np


def cpu_count():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def seed_names(estimator, space):
    """The random_state parameters a trial seeds: those left None and not searched over."""
    return [name for name, value in estimator.get_params(deep=True).items()
            if (name == "random_state" or name.endswith("__random_state"))
            and value is None and name not in space]


def seed_params(estimator, params, seed):
    """{parameter: seed} for every random_state parameter the trial seeds (none if seed is None)."""
    return {} if seed is None else {name: seed for name in seed_names(estimator, params)}


def validation_splits(estimator, X, y, cv, validation_fraction, seed):
    """[(train indices, validation indices)]: one held-out split (cv=None) or cv's folds, stratified
    for classifiers; every trial uses the same splits."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import check_cv, train_test_split
    if cv is None:
        index = np.arange(len(y))
        stratify = np.asarray(y) if is_classifier(estimator) else None
        try:
            train, val = train_test_split(index, test_size=validation_fraction, random_state=seed,
                                          stratify=stratify)
        except ValueError as error:
            raise ValueError(f"random_search: cannot hold out validation_fraction="
                             f"{validation_fraction} of the data stratified by class ({error})"
                             ) from None
        return [(np.sort(train), np.sort(val))]
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    return [(train, val) for train, val in splitter.split(X, y)]


class _thread_limits:
    """Limit BLAS (threadpoolctl) and fastnn's OpenMP threads for a block, then restore them."""

    def __init__(self, threads):
        self.threads = threads

    def __enter__(self):
        if self.threads is None:
            return self
        from threadpoolctl import threadpool_limits
        from .. import _backend
        self._limits = threadpool_limits(limits=self.threads)
        self._previous = _backend.get_num_threads()
        _backend.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.threads is not None:
            from .. import _backend
            _backend.set_num_threads(self._previous)
            self._limits.restore_original_limits()
        return False


def _epochs(estimator):
    n_iter = getattr(estimator, "n_iter_", None)
    if n_iter is None and hasattr(estimator, "steps"):  # a Pipeline: its final estimator's
        n_iter = getattr(estimator.steps[-1][1], "n_iter_", None)
    if n_iter is None:
        return None
    return int(np.max(n_iter))  # some sklearn estimators give one count per class


def _run_trial(estimator, params, seed, X, y, splits, scoring, threads):
    """Fit clone(estimator).set_params(**params) on each split; a row of the trial table.

    Never raises for the trial's own errors (they go in the row); `threads` limits BLAS and
    OpenMP threads for the trial (None: leave them as they are).
    """
    from sklearn.base import clone
    from sklearn.metrics import check_scoring
    from sklearn.utils import _safe_indexing

    row = {"score": math.nan, "train_score": math.nan, "fold_scores": [], "fit_time": 0.0,
           "epochs": None, "seed": seed, "error": None, "warning": None}
    limits = _thread_limits(threads)
    started = time.perf_counter()
    caught = []
    try:
        with limits, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_scores, epochs = [], []
            for train, val in splits:
                model = clone(estimator).set_params(**params,
                                                    **seed_params(estimator, params, seed))
                model.fit(_safe_indexing(X, train), _safe_indexing(y, train))
                scorer = check_scoring(model, scoring=scoring)
                score = float(scorer(model, _safe_indexing(X, val), _safe_indexing(y, val)))
                row["fold_scores"].append(score)
                train_scores.append(float(scorer(model, _safe_indexing(X, train),
                                                 _safe_indexing(y, train))))
                epochs.append(_epochs(model))
                if not math.isfinite(score):
                    raise FloatingPointError(f"the validation score is {score} (diverged?)")
        row["score"] = float(np.mean(row["fold_scores"]))
        row["train_score"] = float(np.mean(train_scores))
        if all(e is not None for e in epochs):
            row["epochs"] = epochs[0] if len(epochs) == 1 else float(np.mean(epochs))
    except Exception as error:  # a failed trial is a result, not the end of the search
        row["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        row["score"] = math.nan
    row["fit_time"] = time.perf_counter() - started
    if caught:
        first = caught[0]
        more = f" (and {len(caught) - 1} more)" if len(caught) > 1 else ""
        row["warning"] = f"{first.category.__name__}: {first.message}{more}"
    return row


def run_round(estimator, draws, X, y, splits, scoring, n_jobs, threads, progress, first_index,
              round_):
    """Run the trials `draws` ([(params, seed)]); (rows, interrupted). Rows in any order."""
    import joblib
    from joblib.parallel import get_active_backend
    backend, context_jobs = get_active_backend()
    jobs = n_jobs if n_jobs is not None else (context_jobs or 1)
    bar = _progress_bar(progress, len(draws), round_)
    rows = []

    def record(index, row):
        params, _ = draws[index]
        rows.append({"trial": first_index + index, "round": round_, "rank": None, **params,
                     **row})
        if bar is not None:
            best = max((r["score"] for r in rows if r["error"] is None), default=math.nan)
            bar.set_postfix_str(f"best {best:.4g}")
            bar.update(1)

    interrupted = False
    try:
        if jobs == 1:
            for index, (params, seed) in enumerate(draws):
                record(index, _run_trial(estimator, params, seed, X, y, splits, scoring,
                                         None if threads == "auto" else threads))
        else:
            workers = joblib.effective_n_jobs(jobs)
            process_pool = type(backend).__name__ in ("LokyBackend", "MultiprocessingBackend")
            # Processes of our own share this machine's cores; threads in one process share its
            # thread pools (limits are per process), and Dask's nanny already limited its own.
            if threads == "auto":
                threads = max(1, cpu_count() // workers) if process_pool else None
            tasks = (joblib.delayed(_indexed)(index, estimator, params, seed, X, y, splits,
                                              scoring, threads)
                     for index, (params, seed) in enumerate(draws))
            for index, row in joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                record(index, row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return rows, interrupted


def _indexed(index, *args):
    return index, _run_trial(*args)


def _progress_bar(progress, total, round_):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("random_search(progress=True) shows a progress bar with tqdm, which "
                          "fastnn installs with its `progress` extra: pip install "
                          "\"fastnn[progress]\" (from a clone: pip install \".[progress]\"; or "
                          "pass progress=False)") from None
    return tqdm(total=total, desc="refined trials" if round_ else "trials", unit="trial")


@contextlib.contextmanager
def on_cluster(scheduler):
    """Run the trials of the block on a Dask cluster: `scheduler` is an address (a client made here
    and closed afterwards) or a dask.distributed.Client."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError("random_search(scheduler=...) needs dask.distributed, which fastnn "
                          "installs with its `dask` extra: pip install \"fastnn[dask]\" (from "
                          "a clone: pip install \".[dask]\")") from None
    import joblib
    own = isinstance(scheduler, str)
    try:
        client = Client(scheduler, set_as_default=False) if own else scheduler
    except OSError as error:
        raise OSError(f"random_search: cannot reach the Dask scheduler at {scheduler!r} "
                      f"({error})") from None
    try:
        with client.as_current(), joblib.parallel_backend("dask", client=client):
            yield
    finally:
        if own:
            client.close()
