"""Dropout and batch normalization, forward + backward, compiled kernels against their NumPy twin,
and dropout against NumPy's usual idiom (`rng.random(shape) < keep`).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/test_bench_regularization.py --benchmark-only

float32 activations, as a model trains by default; every call writes into preallocated buffers, as
the layers do. Figures and targets: bench/RESULTS_regularization.md.
"""
import itertools

import numpy as np
import pytest

from fastnn._hash import dropout_key

SHAPES = [(64, 128), (128, 512), (256, 1024), (1024, 4096)]
SHAPE_IDS = [f"{n}x{d}" for n, d in SHAPES]
P_DROP = 0.5
DTYPE = np.float32


def _arrays(shape, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(shape).astype(DTYPE)
    dA = rng.standard_normal(shape).astype(DTYPE)
    return X, dA


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_dropout_forward_backward(benchmark, backend, shape):
    """One training step of a dropout layer: a fresh mask (new key), applied; then backward."""
    benchmark.group = f"dropout fwd+bwd {shape[0]}x{shape[1]}"
    X, dA = _arrays(shape)
    out, dX = np.empty_like(X), np.empty_like(X)
    mask = np.empty(shape, np.uint8)
    steps = itertools.count()

    def step():
        key = dropout_key(0, 1, next(steps))
        backend.dropout_forward(X, p=P_DROP, key=key, out=out, mask=mask)
        backend.dropout_backward(dA, mask, p=P_DROP, dX=dX)

    benchmark(step)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_dropout_numpy_idiom(benchmark, shape):
    """The usual NumPy dropout (CS231n style): mask = rng.random(shape) < keep, out = X * mask /
    keep, dX = dA * mask / keep, written as in-place ufuncs into the same kind of buffers."""
    benchmark.group = f"dropout fwd+bwd {shape[0]}x{shape[1]}"
    benchmark.extra_info["backend"] = "numpy idiom rng.random(shape) < keep"
    X, dA = _arrays(shape)
    out, dX = np.empty_like(X), np.empty_like(X)
    rng = np.random.default_rng(0)
    keep = 1.0 - P_DROP
    scale = DTYPE(1.0 / keep)

    def step():
        mask = rng.random(shape) < keep
        np.multiply(X, mask, out=out)
        np.multiply(out, scale, out=out)
        np.multiply(dA, mask, out=dX)
        np.multiply(dX, scale, out=dX)

    benchmark(step)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_batchnorm_forward_backward(benchmark, backend, shape):
    """One training step of a batch-norm layer: batch statistics, normalization, running-stat
    update; then dX, dgamma and dbeta."""
    benchmark.group = f"batchnorm fwd+bwd {shape[0]}x{shape[1]}"
    X, dY = _arrays(shape)
    X = X * 3 + 2
    d = shape[1]
    gamma, beta = np.ones(d, DTYPE), np.zeros(d, DTYPE)
    running_mean, running_var = np.zeros(d, DTYPE), np.ones(d, DTYPE)
    mean, inv_std = np.empty(d, DTYPE), np.empty(d, DTYPE)
    dgamma, dbeta = np.empty(d, DTYPE), np.empty(d, DTYPE)
    out, dX = np.empty_like(X), np.empty_like(X)

    def step():
        backend.batchnorm_forward(X, gamma, beta, running_mean, running_var, training=True,
                                  momentum=0.1, eps=1e-5, out=out, mean=mean, inv_std=inv_std)
        backend.batchnorm_backward(dY, X, gamma, mean, inv_std, training=True, dX=dX,
                                   dgamma=dgamma, dbeta=dbeta)

    benchmark(step)
