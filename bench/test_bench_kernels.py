"""Kernel benchmarks: each compiled kernel against its NumPy twin, float32, on preallocated buffers.

Every case is one benchmark group ("<kernel> <shape> <activation>"), in which the `backend`
fixture runs it once on "cython" and once on "numpy", so pytest-benchmark's table shows the two
side by side. Inputs are standard-normal, so about half of the pre-activations are negative.
"""
import numpy as np
import pytest

from fastnn import _kernels
from fastnn.layers import DEFAULT_ALPHA

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh")
DENSE_SHAPES = [(64, 64, 128), (128, 784, 256), (256, 3072, 1024)]  # (batch, in, out)
BIAS_ACT_SHAPES = [(64, 128), (128, 256), (256, 1024)]  # (batch, out)
SOFTMAX_SHAPES = [(64, 10), (128, 10), (256, 1000), (1024, 10)]  # (batch, classes)
DTYPE = np.float32

# A case runs for at most this long (seconds) after calibration; the whole suite stays near 2 min.
MAX_TIME = 0.5
# Dense layers at least this big (batch * in * out) are timed with a fixed number of rounds instead.
BIG_DENSE = 10**8
BIG_DENSE_ROUNDS = 10


def shape_id(shape):
    return "x".join(map(str, shape))


def cases(kernel, shapes, activations=(None,)):
    """One pytest.param per (shape, activation), each in its own benchmark group."""
    params = []
    for shape in shapes:
        for activation in activations:
            name = f"{kernel} {shape_id(shape)}" + (f" {activation}" if activation else "")
            params.append(pytest.param(
                shape, activation, id=name.split(" ", 1)[1].replace(" ", "-"),
                marks=pytest.mark.benchmark(group=name, max_time=MAX_TIME)))
    return params


def random(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(DTYPE)


@pytest.mark.parametrize("shape, activation", cases("dense fwd+bwd", DENSE_SHAPES, ACTIVATIONS))
def test_dense_forward_backward(benchmark, backend, shape, activation):
    """dense_forward then dense_backward, with the buffers a Dense layer passes (after zero_grad,
    so gradients are overwritten; dX is computed, as for every layer but the first)."""
    n, k, m = shape
    rng = np.random.default_rng(0)
    X = random(rng, (n, k))
    W = random(rng, (k, m), np.sqrt(2.0 / k))
    b = random(rng, m, 0.1)
    dA = random(rng, (n, m), 1.0 / n)
    out, dZ = np.empty((n, m), DTYPE), np.empty((n, m), DTYPE)
    dW, db, dX = np.empty((k, m), DTYPE), np.empty(m, DTYPE), np.empty((n, k), DTYPE)
    alpha = DEFAULT_ALPHA.get(activation, 0.0)

    def forward_backward():
        A = backend.dense_forward(X, W, b, activation=activation, alpha=alpha, out=out)
        backend.dense_backward(dA, X, W, A, activation=activation, alpha=alpha, dZ=dZ, dW=dW,
                               db=db, dX=dX, need_dX=True, accumulate=False)

    if n * k * m >= BIG_DENSE:
        benchmark.pedantic(forward_backward, rounds=BIG_DENSE_ROUNDS, iterations=1,
                           warmup_rounds=1)
    else:
        benchmark(forward_backward)


@pytest.mark.parametrize("shape, activation", cases("bias_act_forward", BIAS_ACT_SHAPES,
                                                    ACTIVATIONS))
def test_bias_act_forward(benchmark, backend, shape, activation):
    """out = act(Z + b): one fused pass compiled, separate NumPy passes in the twin."""
    rng = np.random.default_rng(1)
    Z = random(rng, shape)
    b = random(rng, shape[1], 0.1)
    out = np.empty(shape, DTYPE)
    alpha = DEFAULT_ALPHA.get(activation, 0.0)
    benchmark(backend.bias_act_forward, Z, b, activation=activation, alpha=alpha, out=out)


@pytest.mark.parametrize("shape, activation", cases("bias_act_backward", BIAS_ACT_SHAPES,
                                                    ACTIVATIONS))
def test_bias_act_backward(benchmark, backend, shape, activation):
    """dZ = dA * act'(A) and db = column sums of dZ, A being a real activation output."""
    rng = np.random.default_rng(2)
    alpha = DEFAULT_ALPHA.get(activation, 0.0)
    A = _kernels.NUMPY.bias_act_forward(random(rng, shape), random(rng, shape[1], 0.1),
                                        activation=activation, alpha=alpha)
    dA = random(rng, shape, 1.0 / shape[0])
    dZ, db = np.empty(shape, DTYPE), np.empty(shape[1], DTYPE)
    benchmark(backend.bias_act_backward, dA, A, activation=activation, alpha=alpha, dZ=dZ, db=db,
              accumulate=False)


@pytest.mark.parametrize("shape, activation", cases("softmax_cross_entropy", SOFTMAX_SHAPES))
def test_softmax_cross_entropy(benchmark, backend, shape, activation):
    """Mean loss and its gradient, into a preallocated dscores."""
    n, c = shape
    rng = np.random.default_rng(3)
    scores = random(rng, shape, 3.0)
    y = rng.integers(0, c, n)
    dscores = np.empty(shape, DTYPE)
    benchmark(backend.softmax_cross_entropy, scores, y, dscores=dscores)
