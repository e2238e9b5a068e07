"""fastnn's compute_dtype="bfloat16" against float32: validation accuracy, time per epoch, and the
memory of a large training step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_bf16.py [--seeds 5]
        [--epochs 4] [--threads N] [--quick] [--json PATH] [--markdown PATH]

Each part runs in float32 and in bfloat16 with the same seeds (the order alternates from seed to
seed); accuracy is the fraction of the held-out validation samples predicted right after the
last epoch, and the verdict is the issue's: bfloat16's median over the seeds at most 0.5 points
below float32's.

- digits: `fastnn train` as it trains by default (the shipped 8x8 digits, its default model,
  optimizer, schedule, epochs and validation split), through the CLI's own code
  (cli.build_parser and _cli_commands.train) with `--seed SEED --compute-dtype DTYPE --quiet`
  (where the CLI has no --compute-dtype, the model it builds is given compute_dtype=DTYPE, and
  the report says so); the seed also draws the validation split. Time per epoch: the whole command's wall time over
  its epochs.
- synthetic: a 784-512-512-10 ReLU MLP (Adam, lr 1e-3, batch 128, --epochs epochs, the Trainer
  without its monitor) on 60,000 training and 10,000 validation samples that
  sklearn.datasets.make_classification makes (SYNTHETIC below, one fixed generator seed):
  30 informative features (the other 754 are noise), 2 clusters per class, class_sep 2.0, 1%
  of labels flipped. Chosen so that float32 ends well short of 100% (about 87% in 4 epochs, and
  it overfits after 2-3 epochs) where the rounding of bfloat16 could show, and so that an epoch
  takes seconds on 2 cores. Time per epoch: the Trainer's (the epoch's steps and its
  validation pass), median over the epochs.
- memory: one training step of bench/compare.py's large shape (batch 256, 3072-1024-1024-10,
  SGD with momentum and Adam) under tracemalloc (compare_harness.measure_memory: NumPy's and
  Python's allocations, not the BLAS's or oneDNN's), peak during warm-up and steady steps.

--quick is a smoke run of a few seconds (2 digits epochs, 1,500 synthetic samples, 1 epoch, the
tiny shape's memory, 1 seed): its figures mean nothing. Records the CPU (model, whether it has
amx_bf16 / avx512_bf16, i.e. whether bfloat16 is emulated), fnn.gemm_engine_info(), the git
commit, the threads and the machine's load; prints Markdown (--markdown also writes it), --json
writes every raw figure. Asserts nothing.
"""
import argparse
import contextlib
import datetime
import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

from compare_contenders import CONFIGS, SHAPES, architecture, make_batches
from compare_harness import (MEMORY_STEPS, QUICK_MEMORY_STEPS, apply_threads, bf16_arithmetic,
                             engine_info, load_bench_conftest, measure_memory, source_version,
                             write_outputs)
from compare_roofline import cpu_isa

DTYPES = ("float32", "bfloat16")
TOLERANCE = 0.5  # points of accuracy bfloat16's median may fall below float32's
SYNTHETIC = dict(n_features=784, n_informative=30, n_redundant=0, n_repeated=0, n_classes=10,
                 n_clusters_per_class=2, class_sep=2.0, flip_y=0.01, random_state=0)
SYNTHETIC_SIZES = {"full": (60_000, 10_000), "quick": (1_000, 500)}  # (train, validation)
HIDDEN = (512, 512)
BATCH = 128
ADAM_LR = 1e-3
MEMORY_CONFIGS = ("sgd", "adam")


def seed_orders(seeds):
    """(seed, dtypes in the order they run): alternating, so drift falls on both alike."""
    return [(seed, DTYPES if seed % 2 == 0 else DTYPES[::-1]) for seed in range(seeds)]


def warning_texts(caught):
    return sorted({f"{w.category.__name__}: {w.message}" for w in caught})


# digits, as `fastnn train` trains them

def cli_has_compute_dtype():
    from fastnn import cli
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.build_parser().parse_args(["train", "--compute-dtype", "bfloat16"])
    except SystemExit:
        return False
    return True


@contextlib.contextmanager
def models_computing_in(dtype):
    """Where `fastnn train` has no --compute-dtype yet: the models the CLI builds get
    compute_dtype=dtype (set on the Sequential it returns), the rest of its code unchanged."""
    from fastnn import _cli_commands
    build = _cli_commands.build_model

    def build_model(*args, **kwargs):
        model = build(*args, **kwargs)
        model.compute_dtype = dtype
        return model
    _cli_commands.build_model = build_model
    try:
        yield
    finally:
        _cli_commands.build_model = build


def digits_run(seed, dtype, threads, quick, has_option):
    """One `fastnn train` of the digits; the CLI's printed line is kept."""
    from fastnn import _cli_commands, cli
    argv = ["train", "--quiet", "--seed", str(seed), "--threads", str(threads)]
    argv += ["--compute-dtype", dtype] if has_option else []
    argv += ["--epochs", "2"] if quick else []
    args = cli.build_parser().parse_args(argv)
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed), \
            (contextlib.nullcontext() if has_option else models_computing_in(dtype)):
        warnings.simplefilter("always")
        started = time.perf_counter()
        accuracy = _cli_commands.train(args)
        seconds = time.perf_counter() - started
    return dict(seed=seed, compute_dtype=dtype, accuracy=float(accuracy), seconds=seconds,
                epochs=args.epochs, seconds_per_epoch=seconds / args.epochs,
                printed=printed.getvalue().strip(), warnings=warning_texts(caught))


def digits_part(seeds, threads, quick):
    has_option = cli_has_compute_dtype()
    runs = [digits_run(seed, dtype, threads, quick, has_option)
            for seed, order in seed_orders(seeds) for dtype in order]
    command = (f"fastnn train --quiet --seed SEED --threads {threads}"
               + (" --compute-dtype DTYPE" if has_option else "")
               + (" --epochs 2" if quick else ""))
    if not has_option:
        command += (" (this checkout's CLI has no --compute-dtype: the model it builds was "
                    "given compute_dtype=DTYPE)")
    return dict(command=command, cli_option=has_option, runs=runs)


# the synthetic 784-512-512-10 task

def synthetic_data(quick):
    """(X_train, y_train, X_val, y_val): make_classification's rows (already shuffled by it),
    the first n_train for training, the rest held out; standardized with the training
    statistics, float32."""
    from sklearn.datasets import make_classification

    import fastnn as fnn
    n_train, n_val = SYNTHETIC_SIZES["quick" if quick else "full"]
    X, y = make_classification(n_samples=n_train + n_val, **SYNTHETIC)
    X = X.astype(np.float32)
    scaler = fnn.preprocessing.StandardScaler().fit(X[:n_train])
    return (scaler.transform(X[:n_train]).astype(np.float32), y[:n_train],
            scaler.transform(X[n_train:]).astype(np.float32), y[n_train:])


def synthetic_run(data, seed, dtype, epochs):
    import fastnn as fnn
    X_train, y_train, X_val, y_val = data
    sizes = (X_train.shape[1], *HIDDEN, int(y_train.max()) + 1)
    layers = [fnn.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    model = fnn.Sequential(*layers, fnn.Dense(sizes[-2], sizes[-1]), seed=seed,
                           compute_dtype=dtype)
    optimizer = fnn.optim.Adam(model.parameters(), lr=ADAM_LR)
    trainer = fnn.Trainer(model, optimizer, batch_size=BATCH, epochs=epochs, seed=seed,
                          progress=False, monitor=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(X_train, y_train, validation_data=(X_val, y_val))
    accuracy = float(np.mean(model.predict(X_val) == y_val))
    return dict(seed=seed, compute_dtype=model.compute_dtype, accuracy=accuracy,
                val_accuracy_per_epoch=[float(a) for a in history.val_accuracy],
                train_loss_per_epoch=[float(v) for v in history.train_loss],
                seconds_per_epoch=statistics.median(history.time),
                epoch_seconds=[float(t) for t in history.time], epochs=len(history.time),
                stop_reason=history.stop_reason, warnings=warning_texts(caught))


def synthetic_part(seeds, epochs, quick):
    started = time.perf_counter()
    data = synthetic_data(quick)
    made = time.perf_counter() - started
    runs = [synthetic_run(data, seed, dtype, epochs)
            for seed, order in seed_orders(seeds) for dtype in order]
    return dict(train=len(data[1]), validation=len(data[3]), features=data[0].shape[1],
                classes=int(data[1].max()) + 1, generator=SYNTHETIC, hidden=list(HIDDEN),
                batch=BATCH, lr=ADAM_LR, epochs=epochs, data_seconds=made, runs=runs)


# memory of one large step

def memory_pass(shape, config, dtype, steps):
    """compare_harness.measure_memory of one shape, config and compute dtype."""
    batch, sizes = SHAPES[shape]
    optimizer, regularized = CONFIGS[config]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the once-only emulation note
        return dict(config=config, **measure_memory(architecture(sizes, regularized), optimizer,
                                                    make_batches(batch, sizes), steps, dtype))


def memory_part(quick, threads):
    """Each pass in a fresh process of its own (this script with --memory-pass): what a first
    model leaves allocated in a process (caches, registries) would otherwise fall on
    whichever pass ran first."""
    shape = "tiny" if quick else "large"
    steps = (QUICK_MEMORY_STEPS if quick else MEMORY_STEPS)[shape]
    passes = []
    for config in MEMORY_CONFIGS:
        for dtype in DTYPES:
            command = [sys.executable, os.path.abspath(__file__), "--threads", str(threads),
                       "--memory-pass", f"{shape},{config},{dtype},{steps}"]
            out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
            passes.append(json.loads(out.strip().splitlines()[-1]))
    batch, sizes = SHAPES[shape]
    return dict(shape=shape, batch=batch, sizes=list(sizes), passes=passes)


# summary and report

def summarize(part):
    """{dtype: median, per-seed accuracies and seconds per epoch} and the verdict."""
    out = {}
    for dtype in DTYPES:
        runs = sorted((r for r in part["runs"] if r["compute_dtype"] == dtype),
                      key=lambda r: r["seed"])
        out[dtype] = dict(accuracies=[r["accuracy"] for r in runs],
                          median=statistics.median(r["accuracy"] for r in runs),
                          seconds_per_epoch=statistics.median(r["seconds_per_epoch"]
                                                              for r in runs))
    points = 100 * (out["bfloat16"]["median"] - out["float32"]["median"])
    out.update(difference_points=points, meets=points >= -TOLERANCE,
               identical=out["bfloat16"]["accuracies"] == out["float32"]["accuracies"])
    return out


def accuracy_table(part, summary):
    lines = ["| seed | float32 accuracy | bfloat16 accuracy | float32 s/epoch | bfloat16 s/epoch |",
             "|---:|---:|---:|---:|---:|"]
    by = {(r["seed"], r["compute_dtype"]): r for r in part["runs"]}
    for seed in sorted({r["seed"] for r in part["runs"]}):
        f, b = by[seed, "float32"], by[seed, "bfloat16"]
        lines.append(f"| {seed} | {100 * f['accuracy']:.2f} % | {100 * b['accuracy']:.2f} % | "
                     f"{f['seconds_per_epoch']:.3g} | {b['seconds_per_epoch']:.3g} |")
    f, b = summary["float32"], summary["bfloat16"]
    lines.append(f"| **median** | **{100 * f['median']:.2f} %** | **{100 * b['median']:.2f} %** "
                 f"| {f['seconds_per_epoch']:.3g} | {b['seconds_per_epoch']:.3g} |")
    verdict = "meets" if summary["meets"] else "DOES NOT MEET"
    lines += ["", f"bfloat16 − float32 (medians): {summary['difference_points']:+.2f} points: "
              f"{verdict} the acceptance (at most {TOLERANCE} points below)."]
    if summary["identical"]:
        lines.append("bfloat16's accuracies equal float32's at every seed: check that the "
                     "bfloat16 path ran.")
    notes = sorted({w for r in part["runs"] for w in r["warnings"]
                    if not w.startswith("TrainingWarning")})
    lines += [f"- warned: {w}" for w in notes]
    return lines + [""]


def megabytes(n):
    return f"{n / 2**20:.2f} MiB"


def memory_table(part):
    lines = ["| config | float32 peak (training) | bfloat16 peak (training) | bfloat16 / float32 "
             "| float32 peak (with construction) | bfloat16 peak (with construction) |",
             "|---|---:|---:|---:|---:|---:|"]
    for config in MEMORY_CONFIGS:
        f, b = (next(p for p in part["passes"] if p["config"] == config
                     and p["compute_dtype"] == dtype) for dtype in DTYPES)
        lines.append(f"| {config} | {megabytes(f['peak_training_bytes'])} | "
                     f"{megabytes(b['peak_training_bytes'])} | "
                     f"{b['peak_training_bytes'] / f['peak_training_bytes']:.3f} | "
                     f"{megabytes(f['peak_bytes'])} | {megabytes(b['peak_bytes'])} |")
    return lines + [""]


def report(result):
    env, info = result["environment"], result["environment"]["gemm_engine"]
    isa = env["cpu_isa"]
    flags = ", ".join(f"{flag} {'yes' if isa['flags'].get(flag) else 'no'}"
                      for flag in ("amx_bf16", "avx512_bf16"))
    variables = {k: v for k, v in env["openblas_variables"].items() if v is not None}
    source = result["source"] or {}
    lines = [f"## bfloat16 against float32 in fastnn ({result['date']})", "",
             f"- CPU: {env['cpu']} ({env['cpus_available']} available); {flags}: bfloat16 "
             f"multiplies {result['bf16_arithmetic']}",
             f"- GEMM engine: {info['engine']} (oneDNN {info['onednn_version'] or 'not loaded'}, "
             f"ISA {info['onednn_isa']}, bfloat16 matmul "
             f"{info['onednn_bf16_implementation'] or 'none on this CPU'})",
             f"- BLAS: {env['blas_summary']}; threads: {result['threads']} "
             f"({env['blas_threads_note']}); OpenBLAS variables: "
             + (f"SET {variables}" if variables else "unset"),
             f"- fastnn {env['fastnn_version']} (compiled "
             f"{'loaded' if env['fastnn_compiled'] else 'NOT loaded'}), commit "
             f"{source.get('commit', '?')}"
             + (" with uncommitted changes under src/" if source.get("src_dirty") else ""),
             f"- load average before / after: {result['load_before']} / {result['load_after']}; "
             "CPU share other processes took: " + ", ".join(
                 f"{name} {load['other_processes_cpu_share']:.0%}"
                 for name, load in result["other_load"].items()
                 if load.get("other_processes_cpu_share") is not None)
             + f"; whole run {result['seconds']:.0f} s"
             + (" (--quick: a smoke run, the figures mean nothing)" if result["quick"] else ""),
             ""]
    digits, synthetic = result["digits"], result["synthetic"]
    lines += ["### digits: `fastnn train` (its defaults)", ""]
    lines += [f"`{digits['command']}`, seeds 0-{result['seeds'] - 1}, "
              f"{digits['runs'][0]['epochs']} epochs; s/epoch: the command's wall time over its "
              "epochs.", ""]
    lines += accuracy_table(digits, result["summary"]["digits"])
    lines += [f"### synthetic: {synthetic['features']}-"
              f"{'-'.join(map(str, synthetic['hidden']))}-{synthetic['classes']} ReLU MLP", "",
              f"make_classification({', '.join(f'{k}={v}' for k, v in SYNTHETIC.items())}): "
              f"{synthetic['train']} training / {synthetic['validation']} validation samples, "
              f"standardized; Adam lr {synthetic['lr']}, batch {synthetic['batch']}, "
              f"{synthetic['epochs']} epochs; s/epoch: the Trainer's (steps and validation), "
              "median over the epochs.", ""]
    lines += accuracy_table(synthetic, result["summary"]["synthetic"])
    memory = result["memory"]
    lines += [f"### memory: one training step, batch {memory['batch']}, "
              f"{'-'.join(map(str, memory['sizes']))} ({memory['shape']})", "",
              f"tracemalloc (NumPy's and Python's allocations, not the BLAS's or oneDNN's) over "
              f"model construction, warm-up and {memory['passes'][0]['steps']} steady steps "
              "(compare_harness.measure_memory); float32 parameters, gradients and optimizer "
              "state in both.", ""]
    lines += memory_table(memory)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="5 (1 with --quick)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="of the synthetic task: 4 (1 with --quick)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", help="write all raw results to this file")
    parser.add_argument("--markdown", help="also write the printed report to this file")
    parser.add_argument("--memory-pass", help=argparse.SUPPRESS)  # SHAPE,CONFIG,DTYPE,STEPS
    args = parser.parse_args(argv)
    if args.memory_pass:
        shape, config, dtype, steps = args.memory_pass.split(",")
        apply_threads(args.threads)
        print(json.dumps(memory_pass(shape, config, dtype, int(steps))))
        return
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 4)
    if seeds < 1 or epochs < 1 or args.threads < 1:
        parser.error("--seeds, --epochs and --threads must be at least 1")

    import fastnn as fnn
    if not fnn.compiled_available():
        raise SystemExit(f"the compiled fastnn kernels are not available "
                         f"({fnn._kernels.COMPILED_ERROR})")
    conftest = load_bench_conftest()
    started = time.perf_counter()
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    blas_note = apply_threads(args.threads)
    env = dict(conftest.environment(), cpu_isa=cpu_isa(), gemm_engine=engine_info(),
               fastnn_version=fnn.__version__, blas_threads_note=blas_note)
    env["blas_summary"] = conftest.blas_summary(env["blas"])
    result = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  command=sys.argv, source=source_version(), quick=args.quick, seeds=seeds,
                  threads=args.threads, environment=env,
                  bf16_arithmetic=bf16_arithmetic(env["gemm_engine"]), other_load={})
    parts = (("memory", lambda: memory_part(args.quick, args.threads)),
             ("digits", lambda: digits_part(seeds, args.threads, args.quick)),
             ("synthetic", lambda: synthetic_part(seeds, epochs, args.quick)))
    for name, run in parts:
        print(f"[bench_bf16] {name} ...", file=sys.stderr, flush=True)
        snapshot = conftest.cpu_snapshot()
        result[name] = run()
        if name != "memory":  # (its passes run in child processes, which would count as others)
            result["other_load"][name] = conftest.other_load(snapshot, conftest.cpu_snapshot())
    result["summary"] = {name: summarize(result[name]) for name in ("digits", "synthetic")}
    result["seconds"] = time.perf_counter() - started
    result["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    result["load_before"] = load_before
    text = report(result)
    write_outputs(args, text, result)


if __name__ == "__main__":
    main()
