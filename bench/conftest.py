"""Configuration of fastnn's pytest-benchmark suite (not part of the test suite).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench --benchmark-only

Each benchmark runs once per backend ("cython", the compiled kernels, and "numpy", their twin), in
a benchmark group of its own so that pytest-benchmark's table puts the two side by side. Every
result records in `extra_info` what it ran on: the backend, the BLAS, the thread counts and the
OpenBLAS variables that were set. These benchmarks measure; they assert nothing about speed.
"""
import contextlib
import functools
import hashlib
import io
import os
import time

import numpy as np
import pytest

import fastnn
from fastnn import _backend, _kernels

BACKENDS = ("cython", "numpy")
# Set on some machines; they pick slower OpenBLAS kernels (unset them in the benchmark command).
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Thread settings that change the figures (recorded, never set here).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS",
                    "FASTNN_BACKEND")


def blas_info():
    """The BLAS NumPy uses: from threadpoolctl when installed (what is loaded and how many
    threads it runs), else from numpy.show_config (what NumPy was built against)."""
    try:
        import threadpoolctl
    except ImportError:
        return _blas_from_numpy_config()
    pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return _blas_from_numpy_config()
    return {
        "source": "threadpoolctl",
        "libraries": [{
            "library": p.get("internal_api"),
            "version": p.get("version"),
            "architecture": p.get("architecture"),
            "threading_layer": p.get("threading_layer"),
            "num_threads": p.get("num_threads"),
            "filename": os.path.basename(p.get("filepath", "")),
        } for p in pools],
    }


def _blas_from_numpy_config():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"source": "numpy.show_config", "libraries": [{
            "library": blas.get("name"), "version": blas.get("version"),
            "configuration": blas.get("openblas configuration")}]}
    except (TypeError, KeyError):  # NumPy < 1.26 only prints its configuration
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            np.show_config()
        return {"source": "numpy.show_config", "text": text.getvalue()}


def blas_summary(info):
    if "libraries" not in info:
        return "see numpy.show_config()"
    parts = []
    for lib in info["libraries"]:
        words = [str(lib.get("library")), str(lib.get("version"))]
        if lib.get("architecture"):
            words.append(f"core {lib['architecture']}")
        if lib.get("num_threads") is not None:
            words.append(f"{lib['num_threads']} threads")
        parts.append(" ".join(words))
    return "; ".join(parts)


def openblas_variables():
    """{name: value or None} for the OpenBLAS variables that change which kernels it runs."""
    return {name: os.environ.get(name) for name in OPENBLAS_VARIABLES}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


def cpu_snapshot():
    """(CPU-seconds the whole machine spent busy, CPU-seconds stolen by the hypervisor, this
    process's CPU-seconds, wall time), or None where /proc/stat is missing (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    hz = os.sysconf("SC_CLK_TCK")
    return ((user + nice + system + irq + softirq) / hz, steal / hz, time.process_time(),
            time.perf_counter())


def other_load(start, end):
    """The shares of the machine's CPU time that other processes used, and that the hypervisor
    stole, between two cpu_snapshot()s: on a shared machine, figures taken while either is high
    are not clean."""
    if start is None or end is None:
        return {}
    wall = end[3] - start[3]
    capacity = wall * (os.cpu_count() or 1)
    if capacity <= 0:
        return {}
    others = max(0.0, (end[0] - start[0]) - (end[2] - start[2]))
    return {"other_processes_cpu_share": round(others / capacity, 3),
            "steal_cpu_share": round((end[1] - start[1]) / capacity, 3)}


def compiled_build():
    """{module: first 12 hex digits of the SHA-256 of its extension file} for the compiled kernel
    modules this process loaded, so that runs of different builds are never mixed up."""
    build = {}
    for name in (*_kernels.KERNEL_MODULES, "parallel"):
        module = getattr(_kernels, name, None)
        path = getattr(module, "__file__", None)
        if path and not path.endswith(".py"):
            with open(path, "rb") as f:
                build[name] = hashlib.sha256(f.read()).hexdigest()[:12]
    return build


@functools.cache
def environment():
    """What every benchmark of this session ran on (the BLAS is read once, before torch loads)."""
    variables = openblas_variables()
    return {
        "fastnn_compiled": fastnn.compiled_available(),
        "fastnn_compiled_error": _kernels.COMPILED_ERROR,
        "fastnn_compiled_build": compiled_build(),
        "fastnn_openmp": fastnn.openmp_enabled(),
        "fastnn_threads": fastnn.get_num_threads(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "cpu": cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "openblas_variables": variables,
        "thread_variables": {name: os.environ[name] for name in THREAD_VARIABLES
                             if name in os.environ},
    }


def pytest_report_header(config):
    env = environment()
    lines = [
        f"fastnn: compiled kernels {'loaded' if env['fastnn_compiled'] else 'NOT loaded'}"
        f" (OpenMP {'on' if env['fastnn_openmp'] else 'off'}), {env['fastnn_threads']} kernel "
        f"threads; numpy {env['numpy']}",
        f"BLAS ({env['blas']['source']}): {blas_summary(env['blas'])}",
        f"CPU: {env['cpu']} ({env['cpus_available']} available); thread settings: "
        f"{env['thread_variables'] or 'none set'}",
    ]
    set_variables = {k: v for k, v in env["openblas_variables"].items() if v is not None}
    if set_variables:
        lines.append(f"WARNING: {set_variables} set: NumPy's BLAS runs slower kernels than this CPU "
                     "supports; run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    else:
        lines.append("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset")
    return lines


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastnn"] = environment()


@pytest.fixture(autouse=True)
def _record_environment(request):
    """Store the session's environment in every benchmark's extra_info, and how much CPU other
    processes took while the benchmark ran."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    env = environment()
    benchmark.extra_info.update({
        "blas": blas_summary(env["blas"]),
        "fastnn_threads": fastnn.get_num_threads(),
        **{f"{name}_set": value is not None
           for name, value in env["openblas_variables"].items()},
    })
    start = cpu_snapshot()
    yield
    benchmark.extra_info.update(other_load(start, cpu_snapshot()))


@pytest.fixture(params=BACKENDS)
def backend(request, benchmark):
    """The kernel set of one backend, made the active one for the test's duration.

    The compiled backend is never silently replaced by the twin: when it is not built, its
    benchmarks are skipped with the import error as the reason.
    """
    name = request.param
    if name == "cython" and not fastnn.compiled_available():
        pytest.skip(f"compiled kernels not available: {_kernels.COMPILED_ERROR}")
    with fastnn.use_backend(name):
        kernels = _backend.kernels
        assert kernels.name == name
        benchmark.extra_info["backend"] = name
        benchmark.extra_info["kernel_module"] = kernels.dense_forward.__module__
        yield kernels

