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
from ._distributions import (Choice, IntUniform, LogUniform, Uniform, choice, int_uniform,
                             is_log_scaled, log_uniform, uniform)
from ._random_search import random_search
from ._refine import refine_space
from ._result import COLUMNS, SearchResult

__all__ = ["random_search", "SearchResult", "refine_space", "is_log_scaled", "log_uniform",
           "uniform", "int_uniform", "choice", "LogUniform", "Uniform", "IntUniform", "Choice",
           "COLUMNS"]
