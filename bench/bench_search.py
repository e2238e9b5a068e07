"""Wall time of a 30-trial random search on the digits: serially, with 2 local processes and on
a Dask LocalCluster (2 worker processes, 1 thread each, on 127.0.0.1; as Dask configures it, and
with MALLOC_TRIM_THRESHOLD_ unset), the `fastnn search` estimator and space; checks that every
run found the same trials and scores. Times include starting the workers' imports (loky starts its
processes on first use; a cluster's workers import on their first task), not the cluster's start.

    PYTHONPATH=src python3 bench/bench_search.py [--trials 30] [--epochs 30] [--no-serial]

Run it on a quiet machine (unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the command).
"""
import argparse
import platform
import subprocess
import time
import warnings

import numpy as np


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


FIT = """
import time, warnings
warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
import sys
if sys.argv[1] == "fastnn":
    from fastnn.sklearn import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
X, y = load_digits(return_X_y=True)
X = X / 16
MLPClassifier(max_iter=2, hidden_layer_sizes=(256,), random_state=0).fit(X, y)
times = []
for _ in range(3):
    started = time.perf_counter()
    MLPClassifier(max_iter=30, hidden_layer_sizes=(256,), random_state=0).fit(X, y)
    times.append(time.perf_counter() - started)
print(min(times))
"""


def malloc_trim_effect(repeats=3):
    """One fit of fastnn's and of sklearn's MLPClassifier (256 hidden, 30 epochs, 1 BLAS and
    OpenMP thread) with and without the MALLOC_TRIM_THRESHOLD_ Dask's nanny sets, in fresh
    processes, alternating."""
    import os
    import sys
    for library in ("fastnn", "sklearn"):
        times = {"65536": [], "unset": []}
        for _ in range(repeats):
            for value in times:
                env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
                env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
                if value != "unset":
                    env["MALLOC_TRIM_THRESHOLD_"] = value
                out = subprocess.run([sys.executable, "-c", FIT, library], env=env,
                                     capture_output=True, text=True, check=True).stdout
                times[value].append(float(out))
        for value, seconds in times.items():
            print(f"one {library} MLP fit, MALLOC_TRIM_THRESHOLD_={value:<6}: "
                  f"{', '.join(f'{t:.3f}' for t in seconds)} s (best of 3 fits per process)")


def key(result):
    return [(t["trial"], *(t[n] for n in result.param_names), t["seed"], t["score"])
            for t in result.trials]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-serial", action="store_true", help="skip the serial run")
    args = parser.parse_args()

    import dask
    import joblib
    import sklearn
    from dask.distributed import LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    from fastnn import data, search
    from fastnn.search._trials import cpu_count
    from fastnn.cli import search_setup

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = data.load_digits()
    estimator, space = search_setup(args.epochs)
    print(f"CPU: {cpu_model()}, {cpu_count()} cores available; numpy {np.__version__}, "
          f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}, "
          f"dask {dask.__version__}")
    print(f"{args.trials} trials on the digits ({len(y)} samples, one 0.2 validation split), "
          f"{args.epochs} epochs each, estimator {estimator} (the MLPClassifier from "
          f"{type(estimator[-1]).__module__})")

    def run(label, **kwargs):
        started = time.perf_counter()
        result = search.random_search(estimator, space, X, y, n_iter=args.trials,
                                      random_state=args.seed, refit=False, **kwargs)
        wall = time.perf_counter() - started
        fits = sum(t["fit_time"] for t in result.trials)
        print(f"{label:<68} {wall:7.2f} s wall  (sum of trial times {fits:.2f} s; best "
              f"{result.best_score_:.4f})")
        return result

    results = {}
    if not args.no_serial:
        results["serial"] = run("serial (n_jobs=1)")
    results["local"] = run("local, 2 processes (n_jobs=2)", n_jobs=2)
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which also fixes glibc's
    # mmap threshold: NumPy temporaries above 128 KiB are then mapped and faulted in anew each
    # time. The second cluster shows what unsetting it (a Dask config key) changes.
    key_name = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    for label, config in (("LocalCluster, 2 workers x 1 thread", {}),
                          ("  same, MALLOC_TRIM_THRESHOLD_ unset", {key_name: None})):
        with dask.config.set(config), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                   host="127.0.0.1", dashboard_address=None)
            startup = time.perf_counter() - started
        try:
            results[label] = run(f"{label} (start-up {startup:.1f} s, not included)",
                                 scheduler=cluster.scheduler_address)
        finally:
            cluster.close()
    same = all(key(r) == key(results["local"]) for r in results.values())
    print(f"same trials and scores in every run: {same}")
    malloc_trim_effect()


if __name__ == "__main__":
    main()
