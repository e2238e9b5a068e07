"""Whole training steps of an MLP, end to end: fastnn (compiled "cython" and its "numpy" twin)
against the GEMM floor and PyTorch on CPU.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py [--json PATH]

(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines, make NumPy's OpenBLAS run slower
kernels; unset them in the command, as above, never inside a script.)

A step is forward, softmax cross-entropy, backward and the optimizer update of a float32 ReLU MLP:

    shapes   tiny: batch 64, 64-128-10; medium: batch 128, 784-512-512-10;
             large: batch 256, 3072-1024-1024-10
    configs  {SGD momentum 0.9 (lr 0.01), Adam (lr 1e-3)} x {plain, BatchNorm + Dropout(0.5) on
             every hidden layer}

Contenders, for each shape and config:
    floor    only the matrix multiplies a step needs, into preallocated outputs
             (np.matmul(..., out=...)) on NumPy's BLAS: X @ W per layer forward, X.T @ dZ per
             layer and dZ @ W.T per layer but the first backward. No activation, loss, bias,
             normalization, dropout or update: a fastnn step, whose GEMMs are these, costs at
             least this much (torch multiplies with its own BLAS, MKL in the x86 wheels, so for
             it the floor is a reference, not a bound).
    cython   fastnn on its compiled kernels; the step is model.train_step(X, y, loss, opt) when
             Sequential has it, else forward / loss / zero_grad / backward / opt.step() (the
             results record which).
    numpy    the same fastnn model on the NumPy twin kernels.
    torch    the same network in PyTorch (nn.Linear, BatchNorm1d, ReLU, Dropout; the same initial
             weights and data; torch.optim.SGD / Adam with their defaults), when torch imports.
             It runs alone in a process of its own, right after fastnn's: fastnn and PyTorch
             load the same libgomp, which takes its wait policy from the environment once, at
             load, and fastnn sets OMP_WAIT_POLICY=PASSIVE while it loads it (in a process where
             fastnn came first, torch's threads slept between its ops and its steps took 1.6x
             to 4.6x as long); and OpenBLAS's threads, still spinning after the floor's GEMMs,
             took the cores from torch's (2.8x at medium when the two alternated). Its x-floor
             is against the floor of fastnn's process.

Timing: every contender is warmed up first (its buffers and optimizer state are allocated), then
fastnn's contenders take turns in rounds (floor, cython, numpy, floor, ...), so that noise from the
machine falls on all of them alike; torch's process then runs the same rounds with torch alone. In a round each runs BLOCK consecutive steps timed one by
one with time.perf_counter; the first step of each block is not recorded (it pays for caches and
thread pools the other contenders just used). The steps cycle through BATCHES different batches.
Reported: the median step time and its interquartile range.

Memory (fastnn on the compiled kernels, a separate pass, since tracemalloc slows every allocation):
tracemalloc, which sees Python's allocations and NumPy's array buffers (not the BLAS's or OpenMP's
own), traces one run from model construction through warm-up and MEMORY_STEPS steps:
    retained/step   bytes allocated during the steady-state steps and not freed, per step
    transient/step  the peak during those steps above the traced memory before them: the most a
                    step allocates at once (temporaries)
    peak / needed   the peak of the whole run (construction included: initializers draw in
                    float64), and the peak from the first step on, against what a step has to
                    hold, counted from the architecture by needed_bytes(): parameters, gradients,
                    optimizer state (1 array per parameter for SGD momentum, 2 for Adam),
                    BatchNorm's running statistics, the activations kept for backward and one
                    batch.

Each shape runs in subprocesses of its own (this script with --worker SHAPE --part fastnn, then
--part torch), so that one shape's allocations and thread pools do not carry over to the next; the parent prints Markdown tables and,
with --json, writes every raw figure. Threads (--threads, default: os.cpu_count()) apply to
fastnn's kernels, to NumPy's BLAS (through threadpoolctl, when installed) and to torch. Nothing
here asserts anything about speed.
"""
import argparse
import datetime
import gc
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

SHAPES = {  # name: (batch, layer sizes)
    "tiny": (64, (64, 128, 10)),
    "medium": (128, (784, 512, 512, 10)),
    "large": (256, (3072, 1024, 1024, 10)),
}
CONFIGS = {  # name: (optimizer, BatchNorm + Dropout on every hidden layer)
    "sgd": ("sgd", False),
    "adam": ("adam", False),
    "sgd+bn+dropout": ("sgd", True),
    "adam+bn+dropout": ("adam", True),
}
CONTENDERS = ("floor", "cython", "numpy", "torch")
SGD = dict(lr=0.01, momentum=0.9)
ADAM = dict(lr=1e-3)
DROPOUT_P = 0.5
SEED = 0
BATCHES = 8  # different batches the steps cycle through
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


# The network, described once; fastnn's model, torch's model and the memory count are built from it.

def architecture(sizes, regularized):
    """Layer specs in order: ("dense", in, out, activation), ("batchnorm", width),
    ("relu", width), ("dropout", width). Hidden layers are Dense(relu), or, regularized,
    Dense -> BatchNorm -> ReLU -> Dropout; the last Dense gives the class scores."""
    spec = []
    hidden = list(zip(sizes[:-2], sizes[1:-1]))
    for a, b in hidden:
        if regularized:
            spec += [("dense", a, b, "identity"), ("batchnorm", b), ("relu", b), ("dropout", b)]
        else:
            spec.append(("dense", a, b, "relu"))
    spec.append(("dense", sizes[-2], sizes[-1], "identity"))
    return spec


def needed_bytes(spec, batch, optimizer, itemsize=4):
    """What one training step has to hold, counted from the layer specs (bytes by part):

        parameters      Dense W (in x out) and b (out); BatchNorm gamma and beta (width each),
                        plus its running mean and variance (buffers, width each)
        gradients       one array per parameter
        optimizer       one per parameter for SGD with momentum (velocity), two for Adam (moments)
        activations     kept for backward: every layer's output (batch x width): a Dense's
                        (after its fused activation), BatchNorm's, ReLU's and Dropout's; Dropout's
                        mask (1 byte per unit); BatchNorm's batch mean and 1/std (width each)
        batch           X (batch x inputs) and the int64 labels y (batch)

    Not counted: the gradient work arrays of backward (dL/dZ, dL/dX per layer), the loss's
    dL/dscores and any temporaries: those are what the measured peak may exceed this by.
    """
    parameters = buffers = activations = 0
    for layer in spec:
        kind, width = layer[0], layer[2] if layer[0] == "dense" else layer[1]
        if kind == "dense":
            parameters += layer[1] * width + width
            activations += batch * width * itemsize
        elif kind == "batchnorm":
            parameters += 2 * width
            buffers += 2 * width
            activations += batch * width * itemsize + 2 * width * itemsize
        elif kind == "relu":
            activations += batch * width * itemsize
        elif kind == "dropout":
            activations += batch * width * itemsize + batch * width
    states = {"sgd": 1, "adam": 2}[optimizer]
    parts = {
        "parameters": (parameters + buffers) * itemsize,
        "gradients": parameters * itemsize,
        "optimizer": states * parameters * itemsize,
        "activations": activations,
        "batch": batch * spec[0][1] * itemsize + batch * 8,
    }
    parts["total"] = sum(parts.values())
    return parts


def make_batches(batch, sizes):
    """BATCHES (X, y) pairs: X (batch, inputs) float32, y int64 labels, from one generator."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((BATCHES * batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], BATCHES * batch)
    return [(X[i:i + batch], y[i:i + batch]) for i in range(0, BATCHES * batch, batch)]


# The GEMM floor.

class GemmFloor:
    """The matrix multiplies of one training step and nothing else, into preallocated outputs.

    Every operand is a separate array of small values (0.01 * randn; the first layer's input is
    the batch), and no output is ever an input, so values stay far from overflow and denormals
    however many steps run."""

    def __init__(self, batch, sizes, batches):
        rng = np.random.default_rng(SEED + 1)

        def small(*shape):
            return (0.01 * rng.standard_normal(shape)).astype(np.float32)

        self.batches = itertools.cycle([X for X, _ in batches])
        self.layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(dict(
                X=None if i == 0 else small(batch, a), W=small(a, b), dZ=small(batch, b),
                Z=np.empty((batch, b), np.float32), dW=np.empty((a, b), np.float32),
                dX=None if i == 0 else np.empty((batch, a), np.float32)))

    def step(self):
        X0 = next(self.batches)
        for layer in self.layers:  # forward
            np.matmul(X0 if layer["X"] is None else layer["X"], layer["W"], out=layer["Z"])
        for layer in reversed(self.layers):  # backward
            X = X0 if layer["X"] is None else layer["X"]
            np.matmul(X.T, layer["dZ"], out=layer["dW"])
            if layer["dX"] is not None:
                np.matmul(layer["dZ"], layer["W"].T, out=layer["dX"])


# fastnn.

def fastnn_model(spec):
    import fastnn as fnn
    layers = []
    for layer in spec:
        if layer[0] == "dense":
            layers.append(fnn.Dense(layer[1], layer[2], activation=layer[3]))
        elif layer[0] == "batchnorm":
            layers.append(fnn.BatchNorm(layer[1]))
        elif layer[0] == "relu":
            layers.append(fnn.ReLU())
        elif layer[0] == "dropout":
            layers.append(fnn.Dropout(DROPOUT_P))
    return fnn.Sequential(*layers, dtype="float32", seed=SEED)


def fastnn_optimizer(model, optimizer):
    import fastnn as fnn
    if optimizer == "sgd":
        return fnn.optim.SGD(model.parameters(), **SGD)
    return fnn.optim.Adam(model.parameters(), **ADAM)


def fastnn_step_api(model):
    return "train_step" if hasattr(model, "train_step") else "forward/zero_grad/backward/step"


def fastnn_stepper(model, opt, batches, losses):
    """A function running one training step on the next batch, appending the loss to `losses`."""
    import fastnn as fnn
    loss_fn = fnn.losses.softmax_cross_entropy
    data = itertools.cycle(batches)
    if hasattr(model, "train_step"):
        def step():
            X, y = next(data)
            losses.append(float(model.train_step(X, y, loss_fn, opt)))
    else:
        def step():
            X, y = next(data)
            scores = model.forward(X, training=True)
            loss, dscores = loss_fn(scores, y)
            model.zero_grad()
            model.backward(dscores)
            opt.step()
            losses.append(float(loss))
    return step


# PyTorch.

def torch_stepper(torch, spec, optimizer, init_model, batches, losses):
    """The same network in PyTorch, starting from init_model's (fastnn) weights."""
    F = torch.nn.functional
    modules = []
    dense = (l for l in init_model.layers if l.__class__.__name__ == "Dense")
    for layer in spec:
        if layer[0] == "dense":
            source = next(dense)
            linear = torch.nn.Linear(layer[1], layer[2])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(source.W.data.T.copy()))
                linear.bias.copy_(torch.from_numpy(source.b.data))
            modules.append(linear)
            if layer[3] == "relu":
                modules.append(torch.nn.ReLU())
        elif layer[0] == "batchnorm":
            modules.append(torch.nn.BatchNorm1d(layer[1]))
        elif layer[0] == "relu":
            modules.append(torch.nn.ReLU())
        elif layer[0] == "dropout":
            modules.append(torch.nn.Dropout(DROPOUT_P))
    model = torch.nn.Sequential(*modules).train()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), **SGD)
    else:
        opt = torch.optim.Adam(model.parameters(), **ADAM)
    data = itertools.cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches])

    def step():
        X, y = next(data)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return step


# Measuring.

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


def measure_memory(spec, optimizer, batches, steps):
    """tracemalloc's view of the compiled backend training on one batch: model construction,
    warm-up, then `steps` steady-state steps. Peaks are of the traced memory as a whole, which
    holds the batch from the start."""
    import fastnn as fnn
    fnn.set_backend("cython")
    gc.collect()
    tracemalloc.start()
    try:
        batch = [(batches[0][0].copy(), batches[0][1].copy())]  # the one batch held, traced
        model = fastnn_model(spec)
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
    return dict(steps=steps, retained_per_step=(after - before) / steps,
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


def worker(shape, part, configs, threads, quick):
    """Time one shape: part "fastnn" (floor, cython, numpy, and the memory pass) or part "torch"
    (floor, torch); returns a JSON-able dict."""
    torch = None
    if part == "torch":
        # Before fastnn loads: both use the system's libgomp, which reads its wait policy once,
        # when it is first loaded, and fastnn loads it with OMP_WAIT_POLICY=PASSIVE
        # (fastnn._kernels). In one process with fastnn imported first, torch's threads slept
        # between its ops and its steps took 1.6x (medium) to 4.6x (tiny) as long as alone.
        try:
            import torch
        except ImportError as error:
            return dict(shape=shape, torch_unavailable=str(error))
    import fastnn as fnn

    def log(message):  # progress, on stderr: stdout carries the JSON result
        print(f"[{shape} {part}] {message}", file=sys.stderr, flush=True)

    if not fnn.compiled_available():
        raise SystemExit(f"the compiled fastnn kernels are not available "
                         f"({fnn._kernels.COMPILED_ERROR}); nothing to compare")
    batch, sizes = SHAPES[shape]
    blas_note = apply_threads(threads)
    conftest = load_bench_conftest()
    env = conftest.environment()
    env["blas_summary"] = conftest.blas_summary(env["blas"])
    env["blas_threads_note"] = blas_note
    env["fastnn_version"] = fnn.__version__
    env["python"] = sys.version.split()[0]
    if torch is not None:
        torch.set_num_threads(threads)
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkl"] = torch.backends.mkl.is_available()
    batches = make_batches(batch, sizes)
    steps = (QUICK_STEPS if quick else STEPS)[shape]
    memory_steps = (QUICK_MEMORY_STEPS if quick else MEMORY_STEPS)[shape]
    result = dict(shape=shape, batch=batch, sizes=list(sizes), threads=threads, steps=steps,
                  block=BLOCK, warmup_steps=WARMUP_STEPS, batches=BATCHES, environment=env,
                  configs={})
    for config in configs:
        optimizer, regularized = CONFIGS[config]
        spec = architecture(sizes, regularized)
        losses = {name: [] for name in CONTENDERS}
        step_api = None
        if torch is not None:  # alone: see the top of this file
            contenders = {"torch": (lambda: None, torch_stepper(
                torch, spec, optimizer, fastnn_model(spec), batches, losses["torch"]))}
        else:
            contenders = {"floor": (lambda: None, GemmFloor(batch, sizes, batches).step)}
            for backend in ("cython", "numpy"):
                with fnn.use_backend(backend):
                    model = fastnn_model(spec)
                    step_api = fastnn_step_api(model)
                    step = fastnn_stepper(model, fastnn_optimizer(model, optimizer), batches,
                                          losses[backend])
                contenders[backend] = (lambda backend=backend: fnn.set_backend(backend), step)
        log(f"{config}: warm-up")
        for name, (activate, step) in contenders.items():
            activate()
            for _ in range(WARMUP_STEPS):
                step()
        log(f"{config}: timing {steps} steps per contender")
        start = conftest.cpu_snapshot()
        times = time_rounds(contenders, steps)
        load = conftest.other_load(start, conftest.cpu_snapshot())
        memory = None
        if torch is None:
            log(f"{config}: memory, {memory_steps} traced steps")
            memory = measure_memory(spec, optimizer, batches, memory_steps)
        result["configs"][config] = dict(
            optimizer=optimizer, regularized=regularized, fastnn_step_api=step_api,
            times={name: summarize(values) for name, values in times.items()},
            losses={name: dict(first=values[0], last=values[-1],
                               finite=bool(np.isfinite(values).all()))
                    for name, values in losses.items() if values},
            other_load=load, memory=memory)
    return result


# Reporting.

def ms(seconds):
    value = seconds * 1e3
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def megabytes(n):
    return f"{n / 2**20:.2f} MiB"


def shape_tables(result):
    batch, sizes = result["batch"], result["sizes"]
    lines = [f"### {result['shape']}: batch {batch}, {'-'.join(map(str, sizes))}", ""]
    if "error" in result:
        return lines + [f"failed: {result['error']}", ""]
    head = ["config", "floor ms", "fastnn cython ms (×floor)", "fastnn numpy ms (×floor)",
            "torch ms (×floor)", "cython vs torch", "cython vs numpy"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    spread = []
    for config, entry in result["configs"].items():
        medians = {name: t["median"] for name, t in entry["times"].items()}
        floor = medians["floor"]
        cells = [config, ms(floor)]
        for name in ("cython", "numpy", "torch"):
            cells.append(f"{ms(medians[name])} ({medians[name] / floor:.2f}×)"
                         if name in medians else "—")
        cells.append(f"{medians['torch'] / medians['cython']:.2f}×" if "torch" in medians
                     else "—")
        cells.append(f"{medians['numpy'] / medians['cython']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
        spread.append(f"{config}: " + ", ".join(
            f"{name} {ms(t['q1'])}–{ms(t['q3'])}" for name, t in entry["times"].items()))
        bad = [name for name, l in entry["losses"].items() if not l["finite"]]
        if bad:
            spread.append(f"{config}: NON-FINITE LOSS for {', '.join(bad)}")
    lines += ["", "Interquartile ranges (ms): " + "; ".join(spread) + ".", ""]
    loads = [entry["other_load"].get("other_processes_cpu_share")
             for entry in result["configs"].values()]
    if any(v is not None for v in loads):
        lines += ["CPU share other processes took while timing: " + ", ".join(
            f"{config} {entry['other_load'].get('other_processes_cpu_share', 0):.0%}"
            for config, entry in result["configs"].items()) + ".", ""]
    head = ["config", "needed", "peak (whole run)", "peak / needed", "peak in training",
            "training peak / needed", "retained / step", "transient / step"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for config, entry in result["configs"].items():
        memory = entry["memory"]
        lines.append("| " + " | ".join([
            config, megabytes(memory["needed"]["total"]), megabytes(memory["peak_bytes"]),
            f"{memory['peak_over_needed']:.2f}", megabytes(memory["peak_training_bytes"]),
            f"{memory['training_peak_over_needed']:.2f}",
            f"{memory['retained_per_step']:.0f} B",
            f"{memory['transient_per_step'] / 1024:.1f} KiB"]) + " |")
    lines += ["", "(fastnn cython, tracemalloc; needed = parameters + gradients + optimizer "
              "state + BatchNorm running statistics + activations kept for backward + one batch, "
              "see needed_bytes())", ""]
    return lines


def environment_lines(results, threads):
    env = next((r["environment"] for r in results if "environment" in r), None)
    if env is None:
        return []
    variables = {k: v for k, v in env["openblas_variables"].items() if v is not None}
    apis = sorted({entry["fastnn_step_api"] for r in results
                   for entry in r.get("configs", {}).values()})
    return [
        f"- CPU: {env['cpu']} ({env['cpus_available']} available); threads: "
        f"{threads} ({env['blas_threads_note']}); thread variables: "
        f"{env['thread_variables'] or 'none set'}",
        f"- BLAS ({env['blas']['source']}): {env['blas_summary']}",
        "- OpenBLAS variables: " + (f"SET {variables}: NumPy's BLAS runs slower kernels"
                                    if variables else
                                    "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"),
        f"- Python {env['python']}, NumPy {env['numpy']}, fastnn {env['fastnn_version']} "
        f"(compiled {'loaded' if env['fastnn_compiled'] else 'NOT loaded'}, OpenMP "
        f"{'on' if env['fastnn_openmp'] else 'off'}, build {env['fastnn_compiled_build']}), "
        f"torch {env.get('torch', 'not run')}"
        + (f" ({env['torch_threads']} threads, MKL {env['torch_mkl']})"
           if "torch_threads" in env else ""),
        f"- fastnn step: {', '.join(apis)}",
    ]


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


def run_worker(shape, part, args):
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", shape, "--part", part,
               "--threads", str(args.threads), "--configs", ",".join(args.configs)]
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


def run_shape(shape, args):
    """The fastnn part of a shape, then (unless --no-torch) the torch part in a process of its
    own, merged: each config's times gain "torch"."""
    result = run_worker(shape, "fastnn", args)
    if args.no_torch or "error" in result:
        return result
    other = run_worker(shape, "torch", args)
    env = result["environment"]
    if "torch_unavailable" in other:
        env["torch"] = f"not importable: {other['torch_unavailable']}"
    elif "error" in other:
        env["torch"] = other["error"]
    else:
        env.update({key: other["environment"][key]
                    for key in ("torch", "torch_threads", "torch_mkl")})
        for config, entry in result["configs"].items():
            theirs = other["configs"][config]
            entry["times"]["torch"] = theirs["times"]["torch"]
            entry["losses"].update({k: v for k, v in theirs["losses"].items() if k == "torch"})
            entry["other_load_torch_run"] = theirs["other_load"]
    result["seconds"] += other.get("seconds", 0)
    return result


def names(text, known, what):
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise SystemExit(f"unknown {what} {unknown}; expected some of {list(known)}")
    return chosen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help="e.g. tiny,medium")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"some of {','.join(CONFIGS)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke test)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--json", help="write all raw results to this file")
    parser.add_argument("--worker", metavar="SHAPE", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=("fastnn", "torch"), default="fastnn",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shapes = names(args.shapes, SHAPES, "shapes")
    args.configs = names(args.configs, CONFIGS, "configs")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.part, args.configs, args.threads, args.quick)
        print(json.dumps(result))
        return
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    source = source_version()
    results = [run_shape(shape, args) for shape in args.shapes]
    seconds = time.perf_counter() - started
    lines = [f"## fastnn training step vs GEMM floor and PyTorch ({date})", ""]
    lines += environment_lines(results, args.threads)
    if source:
        lines.append(f"- fastnn sources: commit {source['commit']}"
                     + (", with uncommitted changes under src/" if source["src_dirty"] else ""))
    lines += ["- steps recorded per contender: "
              + ", ".join(f"{r['shape']} {r.get('steps', '?')}" for r in results)
              + f" (blocks of {BLOCK}, first unrecorded; {WARMUP_STEPS} warm-up steps); "
              f"whole run {seconds:.0f} s", ""]
    for result in results:
        lines += shape_tables(result)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(date=date, command=sys.argv, source=source, seconds=seconds,
                           results=results), f, indent=1)
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
