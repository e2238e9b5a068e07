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
BINARY_SHAPES = [(64, 1), (1024, 1), (8192, 1), (100000, 1)]  # (batch, 1): one score per sample
MSE_SHAPES = [(64, 1), (256, 10), (1024, 1024)]  # (batch, outputs)
UNIT_SHAPES = [(64, 128), (256, 1024)]  # (batch, features)
MAXOUT_SHAPES = [(64, 64, 128), (128, 784, 256)]  # (batch, in, units)
MAXOUT_PIECES = 2
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


def _class_loss(benchmark, kernel, shape, seed):
    """A multiclass loss and its gradient, into a preallocated dscores."""
    n, c = shape
    rng = np.random.default_rng(seed)
    scores = random(rng, shape, 3.0)
    y = rng.integers(0, c, n)
    dscores = np.empty(shape, DTYPE)
    benchmark(kernel, scores, y, dscores=dscores)


@pytest.mark.parametrize("shape, activation", cases("softmax_cross_entropy", SOFTMAX_SHAPES))
def test_softmax_cross_entropy(benchmark, backend, shape, activation):
    """Mean loss and its gradient, into a preallocated dscores."""
    _class_loss(benchmark, backend.softmax_cross_entropy, shape, seed=3)


@pytest.mark.parametrize("shape, activation", cases("multiclass_hinge", SOFTMAX_SHAPES))
def test_multiclass_hinge(benchmark, backend, shape, activation):
    """The multiclass SVM loss and its gradient, into a preallocated dscores."""
    _class_loss(benchmark, backend.multiclass_hinge, shape, seed=4)


@pytest.mark.parametrize("shape, activation",
                         cases("binary_logistic", BINARY_SHAPES) + cases("binary_hinge",
                                                                          BINARY_SHAPES))
def test_binary_loss(benchmark, backend, shape, activation):
    """A binary loss on one score per sample ((N, 1) scores, {0, 1} labels), with its gradient."""
    kernel = benchmark.group.split(" ")[0]  # the group is "<kernel> <shape>" (cases())
    rng = np.random.default_rng(5)
    scores = random(rng, shape, 3.0)
    y = rng.integers(0, 2, shape[0])
    dscores = np.empty(shape, DTYPE)
    benchmark(getattr(backend, kernel), scores, y, dscores=dscores)


@pytest.mark.parametrize("shape, activation", cases("mse", MSE_SHAPES))
def test_mse(benchmark, backend, shape, activation):
    """Mean squared error and its gradient, into a preallocated dscores."""
    rng = np.random.default_rng(6)
    scores, targets = random(rng, shape), random(rng, shape)
    dscores = np.empty(shape, DTYPE)
    benchmark(backend.mse, scores, targets, dscores=dscores)


@pytest.mark.parametrize("shape, activation", cases("prelu fwd+bwd", UNIT_SHAPES))
def test_prelu_forward_backward(benchmark, backend, shape, activation):
    """PReLU forward then backward (dX and the slopes' gradient), on preallocated buffers."""
    rng = np.random.default_rng(7)
    X, dA = random(rng, shape), random(rng, shape, 1.0 / shape[0])
    a = np.full(shape[1], 0.25, DTYPE)
    out, dX, da = np.empty(shape, DTYPE), np.empty(shape, DTYPE), np.empty(shape[1], DTYPE)

    def forward_backward():
        backend.prelu_forward(X, a, out=out)
        backend.prelu_backward(dA, X, a, dX=dX, da=da)

    benchmark(forward_backward)


@pytest.mark.parametrize("shape, activation", cases("maxout fwd+bwd", MAXOUT_SHAPES))
def test_maxout_forward_backward(benchmark, backend, shape, activation):
    """A maxout layer (batch, in, units) with MAXOUT_PIECES pieces: forward then backward, with
    dX, on preallocated buffers (its GEMMs go through BLAS on both backends)."""
    n, k, m = shape
    pieces = MAXOUT_PIECES
    rng = np.random.default_rng(8)
    X = random(rng, (n, k))
    W = random(rng, (k, m * pieces), np.sqrt(2.0 / k))
    b = random(rng, m * pieces, 0.1)
    dA = random(rng, (n, m), 1.0 / n)
    Z, out, argmax = np.empty((n, m * pieces), DTYPE), np.empty((n, m), DTYPE), np.empty((n, m),
                                                                                         np.uint8)
    dZ, dW, db = np.empty((n, m * pieces), DTYPE), np.empty_like(W), np.empty_like(b)
    dX = np.empty((n, k), DTYPE)

    def forward_backward():
        backend.maxout_forward(X, W, b, pieces=pieces, Z=Z, out=out, argmax=argmax)
        backend.maxout_backward(dA, X, W, argmax, pieces=pieces, dZ=dZ, dW=dW, db=db, dX=dX)

    benchmark(forward_backward)


BF16_SIZES = [(401_408,), (10**6,), (10**7,)]  # (elements,): a 784x512 weight, 1e6, 1e7


@pytest.mark.parametrize("shape, activation", cases("to_bfloat16", BF16_SIZES))
def test_to_bfloat16(benchmark, backend, shape, activation):
    """float32 -> bfloat16 bits (6 bytes moved per element), into a preallocated buffer."""
    X, out = random(np.random.default_rng(9), shape), np.empty(shape, np.uint16)
    benchmark(lambda: backend.to_bfloat16(X, out=out))


@pytest.mark.parametrize("shape, activation", cases("round_bfloat16", BF16_SIZES))
def test_round_bfloat16(benchmark, backend, shape, activation):
    """float32 rounded to bfloat16 values (8 bytes moved per element), into a preallocated
    buffer."""
    X = random(np.random.default_rng(10), shape)
    out = np.empty_like(X)
    benchmark(lambda: backend.round_bfloat16(X, out=out))


@pytest.mark.parametrize("shape, activation", cases("from_bfloat16", BF16_SIZES))
def test_from_bfloat16(benchmark, backend, shape, activation):
    """bfloat16 bits -> float32 (6 bytes moved per element), into a preallocated buffer."""
    B = np.random.default_rng(11).integers(0, 2**16, shape, dtype=np.uint16)
    out = np.empty(shape, DTYPE)
    benchmark(lambda: backend.from_bfloat16(B, out=out))


@pytest.mark.parametrize("shape, activation", cases("matmul_bf16", DENSE_SHAPES))
def test_matmul_bf16(benchmark, backend, shape, activation):
    """The emulated bfloat16 GEMM (batch, in) @ (in, out): both operands rounded, then the float32
    GEMM; compare with the float32 GEMM inside dense fwd+bwd of the same shape."""
    n, k, m = shape
    rng = np.random.default_rng(12)
    X, W, out = random(rng, (n, k)), random(rng, (k, m)), np.empty((n, m), DTYPE)
    benchmark(lambda: backend.matmul_bf16(X, W, out=out))
