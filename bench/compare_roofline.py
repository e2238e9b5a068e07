"""The roofline of bench/compare.py: what a training step cannot go below on this machine, the time
of its GEMMs on the chosen engine (measured alone) plus the bytes its elementwise passes and its
optimizer update must move, at the machine's measured copy bandwidth. Also the CPU's vector and
matrix instructions, recorded with every figure.

The bytes are counted per layer from the architecture (compare_contenders.architecture) as one
pass per operation, reading its inputs and writing its outputs once (n = batch; float32, 4 bytes
an element):

    forward    Dense: read Z and b, write A; BatchNorm: read X, write Y (+ its per-feature
               vectors); ReLU: read, write; Dropout: read, write, write the 1-byte mask
    loss       read the scores and labels, write dL/dscores
    backward   Dense: read dA and A, write dZ and db (the last, identity Dense only sums dZ into
               db); BatchNorm: read dY and X, write dX, dgamma, dbeta; ReLU: read dY and Y,
               write dX; Dropout: read dY and the mask, write dX
    update     per parameter element, SGD with momentum: read p, g, v, write p, v (20 bytes);
               Adam: read p, g, m, v, write p, m, v (28)

The GEMMs' own reads and writes are in their measured time, not counted again.

compute_dtype="bfloat16", as fastnn runs it today (emulated: float32 GEMMs of operands rounded
to bfloat16, gemm_engine_info()["bf16_compute"]), adds to that: each Dense rounds its input into
a buffer (read and write n x in floats), and the update writes each parameter's bf16 copy
(4 more bytes an element); the output's and dZ's rounding happen inside their passes. Its GEMMs
are the float32 ones, so its roofline has the same GEMM time.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

LARGE_COPY_BYTES = 64 * 2**20  # per array: well past the last-level cache


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")  # as lscpu names them


def cpu_isa(path="/proc/cpuinfo"):
    """{"flags": {flag: present} for ISA_FLAGS, "bf16": "AMX" | "AVX512-BF16" | "none"}: the
    CPU's vector and matrix instructions (the flags lscpu lists) and what it offers bfloat16
    matrix multiplies (amx_bf16: AMX tiles; avx512_bf16: the VDPBF16PS dot product; none: any
    bfloat16 multiply is emulated); {"flags": {}, "bf16": "unknown"} without /proc/cpuinfo."""
    try:
        with open(path) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return {"flags": {}, "bf16": "unknown"}
    present = {flag: flag in flags for flag in ISA_FLAGS}
    bf16 = ("AMX" if present["amx_bf16"] else "AVX512-BF16" if present["avx512_bf16"]
            else "none")
    return {"flags": present, "bf16": bf16}


def copy_bandwidth(nbytes, threads, seconds=0.05):
    """Bytes per second np.copyto moves (bytes read + bytes written) copying an array of `nbytes`
    (float32) into another, the best single copy of repeats over about `seconds`, split over 1
    and over `threads` Python threads (np.copyto releases the GIL), whichever was faster."""
    n = max(1024, nbytes // 4)
    src = np.ones(n, np.float32)
    dst = np.zeros_like(src)
    best = {}
    for k in sorted({1, max(1, threads)}):
        bounds = np.linspace(0, n, k + 1).astype(int)
        parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        with ThreadPoolExecutor(k) as pool:
            def copy():
                if k == 1:
                    np.copyto(dst, src)
                else:
                    list(pool.map(lambda part: np.copyto(*part), parts))
            copy()  # first touch of dst
            fastest, deadline = float("inf"), time.perf_counter() + seconds
            for repeat in range(10_000):
                start = time.perf_counter()
                copy()
                end = time.perf_counter()
                fastest = min(fastest, end - start)
                if repeat >= 5 and end > deadline:
                    break
        best[k] = 2 * src.nbytes / fastest
    return max(best.values())


def step_traffic(spec, batch, optimizer, compute_dtype="float32"):
    """Bytes a training step's elementwise passes and update must move (see the top of this
    file), by part: forward, loss, backward, update, and total."""
    n, f = batch, 4
    bf16 = compute_dtype == "bfloat16"
    forward = backward = params = 0
    for layer in spec:
        if layer[0] == "dense":
            a, b = layer[1], layer[2]
            params += a * b + b
            forward += 2 * n * b * f + b * f + (2 * n * a * f if bf16 else 0)
        else:
            w = layer[1]
            forward += 2 * n * w * f
            if layer[0] == "batchnorm":
                params += 2 * w
                forward += 8 * w * f  # gamma, beta, batch mean and 1/std, running statistics
            elif layer[0] == "dropout":
                forward += n * w
    classes = spec[-1][2]
    loss = 2 * n * classes * f + n * 8
    for layer in spec:
        if layer[0] == "dense":
            b = layer[2]
            if layer[3] == "identity":  # dZ is the dY read: only summed into db
                backward += n * b * f + b * f
            else:
                backward += 3 * n * b * f + b * f
        else:
            w = layer[1]
            if layer[0] == "dropout":  # reads the 1-byte mask, not the output
                backward += n * w * (2 * f + 1)
            else:
                backward += 3 * n * w * f
            if layer[0] == "batchnorm":
                backward += 4 * w * f  # dgamma, dbeta, batch mean and 1/std
    update = params * ({"sgd": 5, "adam": 7}[optimizer] + bf16) * f
    parts = {"forward": forward, "loss": loss, "backward": backward, "update": update}
    parts["total"] = sum(parts.values())
    return parts


def roofline(gemm_seconds, traffic, bandwidth):
    """Seconds: the GEMMs' measured time plus the traffic's bytes at `bandwidth` bytes/s."""
    return gemm_seconds + traffic["total"] / bandwidth
