"""fastnn.sklearn.MLPClassifier against sklearn.neural_network.MLPClassifier on the 8x8 digits.

    python bench/bench_sklearn.py [--seeds 5] [--epochs 200] [--threads 1]

The same settings for both, scikit-learn's defaults where it has them: one hidden layer of 100
ReLU units, Adam (lr 1e-3, betas 0.9/0.999), alpha 1e-4, batch size 200 (sklearn's "auto" on
this data), sklearn's weight initialization (Glorot uniform; fastnn's init="glorot_uniform"),
exactly --epochs epochs (the tol rule is switched off in both: n_iter_no_change is larger than
the epochs), features standardized with the training statistics, a fixed stratified
75/25 split. Each seed fits both once (the order alternates); the figures are medians over the
seeds of the fit time (fit only, after one untimed warm-up fit of each) and of the test accuracy.
BLAS (threadpoolctl) and fastnn's kernels use --threads threads. For figures worth recording,
unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command and run it on a quiet machine.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLP
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    import fastnn
    from fastnn.sklearn import MLPClassifier as FastnnMLP

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    common = dict(hidden_layer_sizes=(100,), activation="relu", alpha=1e-4, batch_size=200,
                  learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                  max_iter=args.epochs, n_iter_no_change=args.epochs + 1, tol=1e-4,
                  shuffle=True)
    makers = {"sklearn": lambda seed: SklearnMLP(solver="adam", random_state=seed, **common),
              "fastnn": lambda seed: FastnnMLP(optimizer="adam", init="glorot_uniform",
                                               random_state=seed,
                                               n_threads=args.threads, **common)}
    times = {name: [] for name in makers}
    accuracy = {name: [] for name in makers}
    epochs = {name: set() for name in makers}

    def fit(name, seed):
        est = makers[name](seed)
        started = time.perf_counter()
        est.fit(X_train, y_train)
        elapsed = time.perf_counter() - started
        return est, elapsed

    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in makers:  # warm-up: imports, first allocations, BLAS start-up
            fit(name, 1000)
        for seed in range(args.seeds):
            order = list(makers) if seed % 2 == 0 else list(reversed(makers))
            for name in order:
                est, elapsed = fit(name, seed)
                times[name].append(elapsed)
                accuracy[name].append(est.score(X_test, y_test))
                epochs[name].add(est.n_iter_)

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs visible; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())})")
    import sklearn
    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, fastnn "
          f"{fastnn.__version__} ({fastnn.get_backend()} backend), {args.threads} thread(s), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', 'unset')}")
    print(f"digits: {len(y_train)} train / {len(y_test)} test, 64-100-10 ReLU, Glorot uniform "
          f"init, Adam lr 1e-3, alpha 1e-4, batch 200, {args.epochs} epochs, {args.seeds} seeds")
    print(f"{'':8} {'median fit':>11} {'min':>8} {'max':>8} {'median test acc':>16} "
          f"{'min':>7} {'epochs':>7}")
    for name in makers:
        t, a = times[name], accuracy[name]
        print(f"{name:8} {statistics.median(t) * 1000:9.0f} ms {min(t) * 1000:5.0f} ms "
              f"{max(t) * 1000:5.0f} ms {statistics.median(a):16.4f} {min(a):7.4f} "
              f"{','.join(map(str, sorted(epochs[name]))):>7}")
    speedup = statistics.median(times["sklearn"]) / statistics.median(times["fastnn"])
    print(f"fastnn fits {speedup:.1f}x faster (median over median); test accuracy "
          f"{statistics.median(accuracy['fastnn']) - statistics.median(accuracy['sklearn']):+.4f}")


if __name__ == "__main__":
    main()
