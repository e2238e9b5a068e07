"""Random hyperparameter search, the notes' way: random trials (not a grid), learning rate and
regularization sampled on a log scale, coarse to fine, one validation fold when the data is big.

    space = {"alpha": log_uniform(1e-6, 1e-1), "learning_rate_init": log_uniform(1e-4, 1e-1),
             "hidden_layer_sizes": choice([(64,), (128,), (256,)])}
    result = random_search(MLPClassifier(max_iter=50), space, X, y, n_iter=30, refine=5,
                           n_jobs=2, random_state=0)
    result.best_params_, result.best_score_, result.best_estimator_, result.to_frame()

Design:
- Every trial's parameters (and its seed) are drawn up front from one generator seeded with
  `random_state`, in the parent process, and every trial runs with the same number of BLAS and
  OpenMP threads (1 by default: a float32 GEMM or a threaded reduction may round differently on
  another count); a trial is then a pure function of them and the data, so a serial run,
  `n_jobs` processes and a Dask cluster give the same trial list and the same scores.
- Trials run through joblib: serially in this process (n_jobs=1), in joblib's loky processes
  (n_jobs>1), or on whatever backend is active (`with joblib.parallel_backend("dask")`, or
  `scheduler=`); jobs x threads <= cores. No process pool is made inside a task.
- A trial that raises is a row with its error; only KeyboardInterrupt ends the search (with the
  trials finished so far).
The distributions need only NumPy; `random_search` needs scikit-learn, joblib and threadpoolctl
(the `search` extra), a cluster dask.distributed (the `dask` extra).
"""
import math
import numbers
import os
import time
import traceback
import warnings

import numpy as np

# Columns every trial row has; a hyperparameter may not take one of these names.
COLUMNS = ("trial", "round", "rank", "score", "train_score", "fold_scores", "fit_time", "epochs",
           "seed", "error", "warning")


def _generator(random_state):
    """A NumPy Generator or RandomState to draw from (scipy's and sklearn's conventions)."""
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    return np.random.default_rng(random_state)


def _uniform01(random_state, size):
    # Generator and RandomState both have .random(); every distribution draws only through it,
    # so a distribution gives the same values under either.
    return _generator(random_state).random(size)


def _check_range(name, low, high, positive=False, integer=False):
    for label, value in (("low", low), ("high", high)):
        kind = numbers.Integral if integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise TypeError(f"{name}: {label} must be a finite {'integer' if integer else 'number'}"
                            f", got {value!r}")
        if positive and value <= 0:
            raise ValueError(f"{name}: {label} must be > 0 on a log scale, got {value!r}")
    if low > high:
        raise ValueError(f"{name}: low must be <= high, got low={low!r}, high={high!r}")


class _Distribution:
    """scipy.stats' protocol: rvs(size=None, random_state=None); sklearn's searches accept it."""
    log = False

    def rvs(self, size=None, random_state=None):
        values = self._from_uniform(np.asarray(_uniform01(random_state, size)))
        return values.item() if size is None else values

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), repr(self)))


class LogUniform(_Distribution):
    """Uniform in log(value) between low and high: learning rates, regularization strengths."""
    log = True

    def __init__(self, low, high):
        _check_range("log_uniform", low, high, positive=True)
        self.low, self.high = float(low), float(high)

    def _from_uniform(self, u):
        log_low, log_high = math.log(self.low), math.log(self.high)
        return np.clip(np.exp(log_low + u * (log_high - log_low)), self.low, self.high)

    def refine(self, values):
        return LogUniform(min(values), max(values))

    def __repr__(self):
        return f"log_uniform({self.low!r}, {self.high!r})"


class Uniform(_Distribution):
    """Uniform between low and high (dropout probability, momentum)."""

    def __init__(self, low, high):
        _check_range("uniform", low, high)
        self.low, self.high = float(low), float(high)

    def _from_uniform(self, u):
        return self.low + u * (self.high - self.low)

    def refine(self, values):
        return Uniform(min(values), max(values))

    def __repr__(self):
        return f"uniform({self.low!r}, {self.high!r})"


class IntUniform(_Distribution):
    """An integer in [low, high], both included; log=True samples log(value) uniformly."""

    def __init__(self, low, high, log=False):
        _check_range("int_uniform", low, high, positive=log, integer=True)
        if not isinstance(log, bool):
            raise TypeError(f"int_uniform: log must be True or False, got {log!r}")
        self.low, self.high, self.log = int(low), int(high), log

    def _from_uniform(self, u):
        if self.log:
            # Uniform in log over [low, high + 1), floored: each integer gets its log-width.
            log_low, log_high = math.log(self.low), math.log(self.high + 1)
            values = np.floor(np.exp(log_low + u * (log_high - log_low)))
        else:
            values = np.floor(self.low + u * (self.high - self.low + 1))
        return np.clip(values, self.low, self.high).astype(np.int64)

    def refine(self, values):
        return IntUniform(int(min(values)), int(max(values)), log=self.log)

    def __repr__(self):
        log = ", log=True" if self.log else ""
        return f"int_uniform({self.low!r}, {self.high!r}{log})"


class Choice(_Distribution):
    """One of the given options, each equally likely (activations, layer sizes, optimizers)."""

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__len__"):
            raise TypeError(f"choice: options must be a list or tuple of values, got {options!r}")
        if len(options) == 0:
            raise ValueError("choice: options must not be empty")
        self.options = list(options)

    def rvs(self, size=None, random_state=None):
        u = np.asarray(_uniform01(random_state, size))
        index = np.minimum((u * len(self.options)).astype(np.int64), len(self.options) - 1)
        if size is None:
            return self.options[int(index)]
        return [self.options[i] for i in index.ravel()]

    def refine(self, values):
        return Choice([o for o in self.options if any(_same(o, v) for v in values)])

    def __repr__(self):
        return f"choice({self.options!r})"


def log_uniform(low, high):
    """Values whose logarithm is uniform in [log low, log high] (0 < low <= high)."""
    return LogUniform(low, high)


def uniform(low, high):
    """Values uniform in [low, high]."""
    return Uniform(low, high)


def int_uniform(low, high, log=False):
    """Integers uniform in [low, high], both ends included (log=True: uniform in log)."""
    return IntUniform(low, high, log=log)


def choice(options):
    """One of `options`, each equally likely."""
    return Choice(options)


def _same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compare elementwise
        return a is b


def _as_distribution(name, value):
    if hasattr(value, "rvs"):
        return value
    if isinstance(value, (list, tuple)):
        return Choice(value)  # sklearn's convention: a list is sampled uniformly
    raise TypeError(f"random_search: space[{name!r}] must be a distribution (log_uniform, uniform, "
                    f"int_uniform, choice, a scipy.stats distribution: anything with rvs) or a "
                    f"list of options, got {value!r}")


def is_log_scaled(distribution):
    """True for log_uniform, int_uniform(log=True) and scipy.stats' loguniform/reciprocal."""
    if getattr(distribution, "log", False) is True:
        return True
    dist = getattr(distribution, "dist", None)
    return getattr(dist, "name", None) in ("loguniform", "reciprocal")


def _plain(value):
    """NumPy scalars as Python numbers, so rows compare, print and serialize plainly."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _draw(space, rng):
    # Sorted names: the draw order (so the trials) does not depend on the dict's order.
    return {name: _plain(space[name].rvs(random_state=rng)) for name in sorted(space)}


def refine_space(space, values_by_name):
    """The region the given trials span, per hyperparameter (log-scaled where the space is).

    `values_by_name[name]` lists the values the best trials had. Our distributions refine
    themselves; another distribution (scipy.stats) becomes log_uniform/uniform/int_uniform over
    the values' range when they are numbers (log when it was loguniform), a choice otherwise.
    """
    refined = {}
    for name, dist in space.items():
        values = values_by_name[name]
        if hasattr(dist, "refine"):
            refined[name] = dist.refine(values)
        elif all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            low, high = min(values), max(values)
            if all(isinstance(v, numbers.Integral) for v in values):
                refined[name] = IntUniform(int(low), int(high), log=is_log_scaled(dist) and low > 0)
            elif is_log_scaled(dist) and low > 0:
                refined[name] = LogUniform(low, high)
            else:
                refined[name] = Uniform(low, high)
        else:
            unique = []
            for v in values:
                if not any(_same(v, u) for u in unique):
                    unique.append(v)
            refined[name] = Choice(unique)
    return refined


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


def _seed_names(estimator, space):
    """The random_state parameters a trial seeds: those left None and not searched over."""
    return [name for name, value in estimator.get_params(deep=True).items()
            if (name == "random_state" or name.endswith("__random_state"))
            and value is None and name not in space]


def _splits(estimator, X, y, cv, validation_fraction, seed):
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
                model = clone(estimator).set_params(**params, **_seeds(estimator, params, seed))
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


def _seeds(estimator, params, seed):
    return {} if seed is None else {name: seed for name in _seed_names(estimator, params)}


class _thread_limits:
    """Limit BLAS (threadpoolctl) and fastnn's OpenMP threads for a block, then restore them."""

    def __init__(self, threads):
        self.threads = threads

    def __enter__(self):
        if self.threads is None:
            return self
        from threadpoolctl import threadpool_limits
        from . import _backend
        self._limits = threadpool_limits(limits=self.threads)
        self._previous = _backend.get_num_threads()
        _backend.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.threads is not None:
            from . import _backend
            _backend.set_num_threads(self._previous)
            self._limits.restore_original_limits()
        return False


class SearchResult:
    """Every trial of a random search, ranked, and the best estimator refit on all the data.

    trials: list of dicts, one per trial in the order drawn; each has the hyperparameters under
    their own names and `trial`, `round` (0 coarse, 1 refined), `rank` (1 = best; failed trials
    last), `score` (mean validation score; NaN when the trial failed), `train_score`,
    `fold_scores`, `fit_time` (s, all folds), `epochs` (the estimator's n_iter_, mean over folds;
    None when it has none), `seed` (the random_state given to the trial's estimator, or None),
    `error` (None or "ExceptionType: message"), `warning` (the first warning the fit gave).
    """

    def __init__(self, trials, space, refined_space, interrupted, wall_time):
        self.trials = trials
        self.space = space
        self.refined_space = refined_space
        self.interrupted = interrupted
        self.wall_time = wall_time
        self.best_estimator_ = None
        ok = [t for t in trials if t["error"] is None]
        best = min(ok, key=lambda t: t["rank"]) if ok else None
        self.best_index_ = None if best is None else best["trial"]
        self.best_score_ = None if best is None else best["score"]
        self.best_params_ = None if best is None else {k: best[k] for k in sorted(space)}
        self.best_seed_ = None if best is None else best["seed"]

    @property
    def param_names(self):
        return sorted(self.space)

    def ranking(self):
        """The trials best first (failed ones last)."""
        return sorted(self.trials, key=lambda t: t["rank"])

    def to_frame(self):
        """The trial table as a pandas DataFrame (one row per trial, in the order drawn)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SearchResult.to_frame needs pandas (pip install pandas); "
                              "result.trials is the same table as a list of dicts") from None
        columns = ["trial", "round", "rank", *self.param_names, *COLUMNS[3:]]
        return pd.DataFrame(self.trials, columns=columns)

    def format(self, top=10, labels=None):
        """The ranking as text: the best `top` trials (None: all); `labels` renames columns."""
        rows = self.ranking()[:top] if top else self.ranking()
        names = self.param_names
        labels = labels or {}
        header = ["rank", "trial", *(labels.get(n, n) for n in names), "score", "train", "epochs",
                  "time s"]
        lines = [header]
        for t in rows:
            lines.append([str(t["rank"]), str(t["trial"]), *(_fmt(t[n]) for n in names),
                          _fmt(t["score"]), _fmt(t["train_score"]),
                          "" if t["epochs"] is None else _fmt(t["epochs"]), f"{t['fit_time']:.2f}"])
            if t["error"]:
                lines[-1][len(names) + 2] = "failed"
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
        failed = [t for t in rows if t["error"]]
        text += [f"trial {t['trial']} failed: {t['error']}" for t in failed]
        return "\n".join(text)

    def __repr__(self):
        n_failed = sum(t["error"] is not None for t in self.trials)
        return (f"SearchResult({len(self.trials)} trials, {n_failed} failed, best_score_="
                f"{self.best_score_!r}, best_params_={self.best_params_!r}"
                f"{', interrupted' if self.interrupted else ''})")

    def plot(self, path):
        """Validation score against each hyperparameter (log x-axis where log-scaled); PNG.

        Needs matplotlib (the `plot` extra). Returns the path written.
        """
        from .plotting import _pyplot
        plt = _pyplot()
        names = self.param_names
        ok = [t for t in self.trials if t["error"] is None]
        columns = min(len(names), 3)
        rows = -(-len(names) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
        for ax, name in zip(axes.ravel(), names):
            dist = self.space[name]
            for round_, color, label in ((0, "tab:blue", "coarse"), (1, "tab:orange", "refined")):
                chosen = [t for t in ok if t["round"] == round_]
                if not chosen:
                    continue
                values = [t[name] for t in chosen]
                scores = [t["score"] for t in chosen]
                if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values) \
                        and not isinstance(dist, Choice):
                    ax.scatter(values, scores, color=color, s=18, label=label)
                else:
                    options = _options(dist, [t[name] for t in ok])
                    x = [next(i for i, o in enumerate(options) if _same(o, v)) for v in values]
                    ax.scatter(x, scores, color=color, s=18, label=label)
                    ax.set_xticks(range(len(options)), [str(o) for o in options], rotation=30)
                    ax.set_xlim(-0.5, len(options) - 0.5)
            if is_log_scaled(dist):
                ax.set_xscale("log")
            ax.set_xlabel(name + (" (log scale)" if is_log_scaled(dist) else ""))
            ax.set_ylabel("validation score")
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        if any(t["round"] == 1 for t in ok):
            axes.ravel()[0].legend()
        n_failed = len(self.trials) - len(ok)
        fig.suptitle(f"random search: {len(self.trials)} trials"
                     f"{f', {n_failed} failed (not shown)' if n_failed else ''}")
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)
        plt.close(fig)
        return str(path)


def _options(dist, values):
    if isinstance(dist, Choice):
        return dist.options
    unique = []
    for v in values:
        if not any(_same(v, u) for u in unique):
            unique.append(v)
    return unique


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rank(trials):
    order = sorted(trials, key=lambda t: (t["error"] is not None or math.isnan(t["score"]),
                                          -t["score"] if t["error"] is None else 0, t["trial"]))
    for rank, t in enumerate(order, 1):
        t["rank"] = rank


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _run_round(estimator, draws, X, y, splits, scoring, n_jobs, threads, progress, first_index,
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
                threads = max(1, _cpu_count() // workers) if process_pool else None
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
        (joblib's loky backend); -1 one per core. Inside `with joblib.parallel_backend("dask")` the trials run on the cluster.
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
    space = {name: _as_distribution(name, value) for name, value in space.items()}
    if scheduler is not None:
        return _on_cluster(scheduler, estimator, space, X, y, n_iter, cv, validation_fraction,
                           refine, random_state, scoring, refit, threads_per_trial, progress)
    return _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
                   random_state, scoring, refit, threads_per_trial, progress)


def _on_cluster(scheduler, estimator, space, X, y, n_iter, cv, validation_fraction, refine,
                random_state, scoring, refit, threads, progress):
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
            return _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, -1,
                           random_state, scoring, refit, threads, progress)
    finally:
        if own:
            client.close()


def _search(estimator, space, X, y, n_iter, cv, validation_fraction, refine, n_jobs,
            random_state, scoring, refit, threads, progress):
    started = time.perf_counter()
    rng = np.random.default_rng(random_state)
    split_seed = int(rng.integers(2**31 - 1))
    splits = _splits(estimator, X, y, cv, validation_fraction, split_seed)
    seeded = bool(_seed_names(estimator, space))

    def draw(round_space):
        draws = []
        for _ in range(n_iter):
            params = _draw(round_space, rng)
            draws.append((params, int(rng.integers(2**31 - 1)) if seeded else None))
        return draws

    trials, interrupted = _run_round(estimator, draw(space), X, y, splits, scoring, n_jobs,
                                     threads, progress, 0, 0)
    refined = None
    if refine is not None and not interrupted:
        _rank(trials)
        best = [t for t in sorted(trials, key=lambda t: t["rank"]) if t["error"] is None][:refine]
        if best:
            refined = refine_space(space, {name: [t[name] for t in best] for name in space})
            more, interrupted = _run_round(estimator, draw(refined), X, y, splits, scoring,
                                           n_jobs, threads, progress, n_iter, 1)
            trials += more
    trials.sort(key=lambda t: t["trial"])
    _rank(trials)
    result = SearchResult(trials, space, refined, interrupted, time.perf_counter() - started)
    if result.best_params_ is None:
        if trials:
            warnings.warn(f"random_search: every trial failed; the first: {trials[0]['error']}",
                          RuntimeWarning, stacklevel=3)
        return result
    if refit and not interrupted:
        from sklearn.base import clone
        best = clone(estimator).set_params(**result.best_params_,
                                           **_seeds(estimator, result.best_params_,
                                                    result.best_seed_))
        result.best_estimator_ = best.fit(X, y)
    return result
