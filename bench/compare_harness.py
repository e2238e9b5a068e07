"""The timing harness of bench/compare.py: each shape runs in worker processes of its own (this
script with --worker SHAPE: --part fastnn once per GEMM engine, then --part torch and
torch-bf16), the contenders of a part take turns in interleaved rounds, and a separate tracemalloc
pass measures fastnn's memory.

Why each GEMM engine has its process: the engine is chosen once, before the first step, as a user
would (oneDNN's GNU OpenMP threads and OpenBLAS's own pool would otherwise take turns spinning on
the same cores), and each run records what its engine dispatched to.

Why PyTorch runs alone in its process: fastnn and PyTorch load the same libgomp, which reads its
wait policy once, at load, and fastnn sets OMP_WAIT_POLICY=PASSIVE (torch's threads would sleep
between its ops); and OpenBLAS's threads, still spinning after the floor's GEMMs, would take the
cores from torch's.

Timing: every contender is warmed up (buffers and optimizer state allocated), then the
contenders take turns in rounds, so that noise from the machine falls on all of them alike. In a
round each runs BLOCK consecutive steps timed one by one; the first of a block is not recorded
(it pays for the caches and thread pools the others just used). Reported: median and quartiles.
"""
import collections
import gc
import importlib.util
import json
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from compare_contenders import (BATCHES, CONFIGS, SHAPES, GemmFloor, architecture, engine_matmul,
                                fastnn_model, fastnn_optimizer, fastnn_step_api, fastnn_stepper,
                                gemm_flops, make_batches, needed_bytes, torch_stepper)
from compare_roofline import LARGE_COPY_BYTES, copy_bandwidth, cpu_isa, roofline, step_traffic

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "compare.py"
WARMUP_STEPS = 3
BLOCK = 3  # consecutive steps per contender and round; the first is not recorded
# Recorded steps per contender and config (and steps traced in the memory pass), chosen so that
# the default run of all three shapes takes a few minutes on a 2-core machine.
STEPS = {"tiny": 400, "medium": 150, "large": 50}
QUICK_STEPS = {"tiny": 10, "medium": 6, "large": 4}
MEMORY_STEPS = {"tiny": 20, "medium": 10, "large": 5}
QUICK_MEMORY_STEPS = {"tiny": 5, "medium": 3, "large": 2}


def load_bench_conftest():
    """bench/conftest.py, whose helpers record the machine (BLAS, CPU, thread and OpenBLAS
    variables, compiled build) for the pytest-benchmark suite; loaded by path, so that this
    script records them the same way."""
    spec = importlib.util.spec_from_file_location("fastnn_bench_conftest", HERE / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarize(times):
    """Median, quartiles, min and count of step times (seconds)."""
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return dict(median=float(median), q1=float(q1), q3=float(q3), min=float(min(times)),
                n=len(times))


def time_rounds(contenders, steps, block=BLOCK):
    """{name: [seconds per recorded step]}: `steps` recorded steps per contender, taken in rounds
    of `block` consecutive steps each (the first of a block unrecorded). contenders:
    {name: (activate, step)}, activate() runs untimed before each block (switches the backend)."""
    import fastnn as fnn
    previous = fnn.get_backend()
    times = {name: [] for name in contenders}
    rounds = -(-steps // (block - 1))
    for _ in range(rounds):
        for name, (activate, step) in contenders.items():
            activate()
            for k in range(block):
                start = time.perf_counter()
                step()
                elapsed = time.perf_counter() - start
                if k > 0:
                    times[name].append(elapsed)
    fnn.set_backend(previous)
    return {name: values[:steps] for name, values in times.items()}


def measure_memory(spec, optimizer, batches, steps, compute_dtype="float32"):
    """tracemalloc's view (Python's allocations and NumPy's buffers, not the BLAS's or OpenMP's)
    of the compiled backend training on one batch in `compute_dtype` (its bfloat16 copies of
    weights and activations are NumPy arrays: seen): model construction, warm-up, then `steps`
    steady-state steps; a pass of its own, since tracing slows every allocation. Returns
    retained_per_step (allocated during the steps and not freed), transient_per_step (the peak
    during the steps above the memory before them), and the peaks of the whole run and of
    training against needed_bytes(). Peaks are of the traced memory as a whole, which holds the
    batch from the start. (oneDNN's own buffers are not Python's: not seen.)"""
    import fastnn as fnn
    fnn.set_backend("cython")
    gc.collect()
    tracemalloc.start()
    try:
        batch = [(batches[0][0].copy(), batches[0][1].copy())]  # the one batch held, traced
        model = fastnn_model(spec, compute_dtype)
        opt = fastnn_optimizer(model, optimizer)
        losses = []
        step = fastnn_stepper(model, opt, batch, losses)
        built, peak_construction = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(WARMUP_STEPS):
            step()
            losses.clear()
        before, peak_warmup = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(steps):
            step()
            losses.clear()
        after, peak_steps = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    needed = needed_bytes(spec, batch[0][0].shape[0], optimizer)
    peak = max(peak_construction, peak_warmup, peak_steps)
    peak_training = max(peak_warmup, peak_steps)
    return dict(compute_dtype=compute_dtype, steps=steps, retained_per_step=(after - before) / steps,
                transient_per_step=peak_steps - before, constructed_bytes=built,
                steady_bytes=before, peak_construction_bytes=peak_construction,
                peak_training_bytes=peak_training, peak_bytes=peak, needed=needed,
                peak_over_needed=peak / needed["total"],
                training_peak_over_needed=peak_training / needed["total"])


def apply_threads(n):
    """n threads for fastnn's kernels and NumPy's BLAS; returns a note on what was limited."""
    import fastnn as fnn
    fnn.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "threadpoolctl not installed: NumPy's BLAS threads were not limited"
    threadpool_limits(limits=n, user_api="blas")  # kept for the worker's lifetime
    return f"BLAS limited to {n} threads with threadpoolctl"


TORCH_PARTS = {"torch": False, "torch-bf16": True}  # part: autocast to bfloat16


def engine_info():
    """fnn.gemm_engine_info() as JSON-able values: the engine and what oneDNN dispatches to."""
    import fastnn as fnn
    return json.loads(json.dumps(fnn.gemm_engine_info(), default=str))


def bf16_arithmetic(info):
    """How fastnn's compute_dtype="bfloat16" multiplies, from gemm_engine_info(): its
    bf16_compute ("emulated": float32 GEMMs of operands rounded to bfloat16); "emulated" where
    the checkout predates that key (it had no other way)."""
    return info.get("bf16_compute") or "emulated"


def fastnn_contenders(spec, optimizer, batch, sizes, batches, engine, with_numpy, losses, notes,
                      bf16=False):
    """{name: (activate, step)}: the floor (np.matmul), the same GEMMs on fastnn's engine alone
    ("gemm/ENGINE"), fastnn's compiled step ("cython/ENGINE"), with bf16 the same in
    compute_dtype="bfloat16" ("cython-bf16/ENGINE") and, with_numpy, its NumPy twin (float32)."""
    import fastnn as fnn
    contenders = {"floor": (lambda: None, GemmFloor(batch, sizes, batches).step),
                  f"gemm/{engine}": (lambda: None,
                                     GemmFloor(batch, sizes, batches, engine_matmul()).step)}
    runs = [("cython", "float32", f"cython/{engine}")]
    runs += [("numpy", "float32", "numpy")] if with_numpy else []
    runs += [("cython", "bfloat16", f"cython-bf16/{engine}")] if bf16 else []
    for backend, compute_dtype, name in runs:
        with warnings.catch_warnings(record=True) as caught, fnn.use_backend(backend):
            warnings.simplefilter("always")
            model = fastnn_model(spec, compute_dtype)
            step = fastnn_stepper(model, fastnn_optimizer(model, optimizer), batches,
                                  losses[name])
            step()  # a warning may come with the first step
        notes += [f"{name}: {w.category.__name__}: {w.message}" for w in caught]
        contenders[name] = (lambda backend=backend: fnn.set_backend(backend), step)
    return contenders


def worker(shape, part, configs, threads, quick, engine="openblas", with_numpy=True,
           compute_dtypes=("float32",)):
    """Time one shape: part "fastnn" on GEMM engine `engine` (floor, the engine's GEMMs alone,
    fastnn's step, with_numpy its twin, the copy bandwidth, the roofline and the memory pass;
    with "bfloat16" among compute_dtypes also fastnn's step and memory in bfloat16) or a torch
    part ("torch", "torch-bf16"); returns a JSON-able dict."""
    bf16 = part == "fastnn" and "bfloat16" in compute_dtypes
    torch = None
    if part in TORCH_PARTS:
        # Before fastnn loads libgomp with its passive wait policy (see the top of this file).
        try:
            import torch
        except ImportError as error:
            return dict(shape=shape, torch_unavailable=str(error))
    import fastnn as fnn

    def log(message):  # progress, on stderr: stdout carries the JSON result
        print(f"[{shape} {part}{'' if torch else ' ' + engine}] {message}", file=sys.stderr,
              flush=True)

    if not fnn.compiled_available():
        raise SystemExit(f"the compiled fastnn kernels are not available "
                         f"({fnn._kernels.COMPILED_ERROR}); nothing to compare")
    if torch is None:
        try:
            fnn.set_gemm_engine(engine)
        except (ImportError, ValueError) as error:  # its message says why (and what to install)
            return dict(shape=shape, engine=engine, engine_unavailable=str(error))
    batch, sizes = SHAPES[shape]
    blas_note = apply_threads(threads)
    conftest = load_bench_conftest()
    env = conftest.environment()
    env["blas_summary"] = conftest.blas_summary(env["blas"])
    env["blas_threads_note"] = blas_note
    env["fastnn_version"] = fnn.__version__
    env["python"] = sys.version.split()[0]
    env["cpu_isa"] = cpu_isa()
    if torch is not None:
        torch.set_num_threads(threads)
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkl"] = torch.backends.mkl.is_available()
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    else:
        env["gemm_engine"] = engine_info()
        env["fastnn_bf16"] = bf16_arithmetic(env["gemm_engine"]) if bf16 else None
        env["copy_bandwidth_large"] = copy_bandwidth(LARGE_COPY_BYTES, threads)
    batches = make_batches(batch, sizes)
    steps = (QUICK_STEPS if quick else STEPS)[shape]
    memory_steps = (QUICK_MEMORY_STEPS if quick else MEMORY_STEPS)[shape]
    result = dict(shape=shape, batch=batch, sizes=list(sizes), threads=threads, steps=steps,
                  block=BLOCK, warmup_steps=WARMUP_STEPS, batches=BATCHES, environment=env,
                  engine=None if torch else engine, gemm_flops=gemm_flops(batch, sizes),
                  configs={})
    for config in configs:
        optimizer, regularized = CONFIGS[config]
        spec = architecture(sizes, regularized)
        losses = collections.defaultdict(list)
        notes = []
        if torch is not None:  # alone: see the top of this file
            contenders = {part: (lambda: None, torch_stepper(
                torch, spec, optimizer, fastnn_model(spec), batches, losses[part],
                autocast=TORCH_PARTS[part]))}
        else:
            contenders = fastnn_contenders(spec, optimizer, batch, sizes, batches, engine,
                                           with_numpy, losses, notes, bf16)
        log(f"{config}: warm-up")
        for name, (activate, step) in contenders.items():
            activate()
            for _ in range(WARMUP_STEPS):
                step()
        log(f"{config}: timing {steps} steps per contender")
        start = conftest.cpu_snapshot()
        times = time_rounds(contenders, steps)
        load = conftest.other_load(start, conftest.cpu_snapshot())
        entry = dict(optimizer=optimizer, regularized=regularized,
                     times={name: summarize(values) for name, values in times.items()},
                     losses={name: dict(first=values[0], last=values[-1],
                                        finite=bool(np.isfinite(values).all()))
                             for name, values in losses.items() if values},
                     other_load=load, notes=notes)
        if torch is None:
            needed = needed_bytes(spec, batch, optimizer)
            bandwidth = max(env["copy_bandwidth_large"],
                            copy_bandwidth(needed["total"] // 2, threads))
            gemm = entry["times"][f"gemm/{engine}"]["median"]
            traffic = step_traffic(spec, batch, optimizer)
            entry["fastnn_step_api"] = fastnn_step_api(fnn.Sequential)
            entry["roofline"] = dict(gemm_seconds=gemm, traffic=traffic, bandwidth=bandwidth,
                                     seconds=roofline(gemm, traffic, bandwidth))
            if bf16 and env["fastnn_bf16"] == "emulated":  # (the same float32 GEMMs)
                traffic = step_traffic(spec, batch, optimizer, "bfloat16")
                entry["roofline_bf16"] = dict(gemm_seconds=gemm, traffic=traffic,
                                              bandwidth=bandwidth,
                                              seconds=roofline(gemm, traffic, bandwidth))
            log(f"{config}: memory, {memory_steps} traced steps")
            entry["memory"] = measure_memory(spec, optimizer, batches, memory_steps)
            if bf16:
                entry["memory_bf16"] = measure_memory(spec, optimizer, batches, memory_steps,
                                                      "bfloat16")
        result["configs"][config] = entry
    return result


def write_outputs(args, text, data):
    """Print the report; write it to args.markdown and `data` to args.json when asked."""
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)


def source_version():
    """{"commit": short hash of HEAD, "src_dirty": uncommitted changes under src/}, or None outside
    a git checkout: which fastnn sources the run measured."""
    def git(*words):
        return subprocess.run(["git", *words], cwd=HERE.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        return dict(commit=git("rev-parse", "--short", "HEAD"),
                    src_dirty=bool(git("status", "--porcelain", "--", "src")))
    except (OSError, subprocess.CalledProcessError):
        return None


def run_worker(shape, part, args, engine="openblas", with_numpy=False):
    command = [sys.executable, str(SCRIPT), "--worker", shape, "--part", part,
               "--threads", str(args.threads), "--configs", ",".join(args.configs),
               "--engines", engine, "--compute-dtypes", ",".join(args.compute_dtypes)]
    command += ["--with-numpy"] if with_numpy else []
    command += ["--quick"] if args.quick else []
    started = time.perf_counter()
    process = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr: progress
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        return dict(shape=shape, batch=SHAPES[shape][0], sizes=list(SHAPES[shape][1]),
                    error=f"{part} worker exited with {process.returncode}", seconds=seconds)
    result = json.loads(process.stdout.strip().splitlines()[-1])
    result["seconds"] = seconds
    return result


# of each engine's run, per config (memory_bf16 when bfloat16 ran)
PER_ENGINE = ("roofline", "roofline_bf16", "memory", "memory_bf16", "other_load", "notes")


def run_shape(shape, args):
    """The fastnn part of a shape once per engine (the NumPy twin with the first), then, unless
    --no-torch, each torch part ("torch" for float32, "torch-bf16" for bfloat16 among the compute
    dtypes), every one in a process of its own, merged: each config's times hold "floor" and
    "numpy" (the first engine's run), "gemm/ENGINE", "cython/ENGINE" and (bfloat16)
    "cython-bf16/ENGINE" per engine, "torch", "torch-bf16"; its "engines" hold each engine's own
    floor, roofline, memory (and memory_bf16), load and notes."""
    runs, skipped = [], []
    for engine in args.engines:
        run = run_worker(shape, "fastnn", args, engine, with_numpy=not runs)
        if "engine_unavailable" in run:
            skipped.append(f"engine {engine}: {run['engine_unavailable']}")
        else:
            runs.append(run)
    if not runs:
        batch, sizes = SHAPES[shape]
        return dict(shape=shape, batch=batch, sizes=list(sizes), skipped=skipped,
                    error="no GEMM engine could run: " + "; ".join(skipped))
    result = {key: value for key, value in runs[0].items() if key not in ("configs", "engine")}
    result["skipped"] = skipped
    if any("error" in run for run in runs):
        result["error"] = "; ".join(run["error"] for run in runs if "error" in run)
        return result
    result.update(engines=[run["engine"] for run in runs],
                  seconds=sum(run["seconds"] for run in runs), configs={})
    env = result["environment"]
    env["gemm_engines"] = {run["engine"]: run["environment"]["gemm_engine"] for run in runs}
    env["fastnn_bf16"] = {run["engine"]: run["environment"]["fastnn_bf16"] for run in runs
                          if run["environment"].get("fastnn_bf16")}
    env["copy_bandwidth_large"] = max(run["environment"]["copy_bandwidth_large"]
                                      for run in runs)
    del env["gemm_engine"]
    for config in args.configs:
        entry = {key: runs[0]["configs"][config][key]
                 for key in ("optimizer", "regularized", "fastnn_step_api")}
        entry.update(times={}, losses={}, engines={})
        for run in runs:
            theirs = run["configs"][config]
            entry["times"].update(theirs["times"])
            entry["times"]["floor"] = runs[0]["configs"][config]["times"]["floor"]
            entry["losses"].update(theirs["losses"])
            entry["engines"][run["engine"]] = dict(
                floor=theirs["times"]["floor"],
                **{key: theirs[key] for key in PER_ENGINE if key in theirs})
        result["configs"][config] = entry
    if args.no_torch:
        return result
    for part, autocast in TORCH_PARTS.items():
        if ("bfloat16" if autocast else "float32") not in args.compute_dtypes:
            continue
        other = run_worker(shape, part, args)
        result["seconds"] += other.get("seconds", 0)
        if "torch_unavailable" in other:
            env["torch"] = f"not importable: {other['torch_unavailable']}"
            return result
        if "error" in other:
            env.setdefault("torch_errors", {})[part] = other["error"]
            continue
        env.update({key: other["environment"][key]
                    for key in ("torch", "torch_threads", "torch_mkl", "torch_cpu_capability")})
        for config, entry in result["configs"].items():
            theirs = other["configs"][config]
            entry["times"][part] = theirs["times"][part]
            entry["losses"].update({k: v for k, v in theirs["losses"].items() if k == part})
            entry.setdefault("other_load_torch_runs", {})[part] = theirs["other_load"]
    return result
