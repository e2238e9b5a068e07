"""One whole training step of a 784-512-512-10 ReLU MLP at batch 128, SGD with momentum 0.9:
forward, loss, zero_grad, backward, step. fastnn on both backends, and PyTorch on CPU (same
architecture, initial weights, data and thread count) when torch is importable.

The steps cycle through BATCHES different batches, as a training loop does, rather than fitting
one batch over and over.

PyTorch runs in this process, after fastnn loaded the OpenMP runtime (libgomp) that torch's Linux
wheels share, with fastnn's OMP_WAIT_POLICY=PASSIVE: torch's threads then sleep between its ops,
and its step here is slower than in a process of its own (2.6 ms against 4.3 ms at this shape on
the machine of bench/RESULTS.md). bench/compare.py times torch in its own process; use its figures
to compare with PyTorch. The extra_info of the torch row records the policy it ran under.
"""
import itertools

import numpy as np
import pytest

import fastnn as fnn

GROUP = "training step 784-512-512-10 relu, batch 128, SGD momentum 0.9"
SIZES = (784, 512, 512, 10)
BATCH = 128
BATCHES = 16
LR, MOMENTUM = 0.01, 0.9
WARMUP_STEPS = 2  # the first steps allocate layer buffers and momentum buffers

pytestmark = pytest.mark.benchmark(group=GROUP, max_time=1.0)


def make_model():
    return fnn.Sequential(fnn.Dense(SIZES[0], SIZES[1], activation="relu"),
                          fnn.Dense(SIZES[1], SIZES[2], activation="relu"),
                          fnn.Dense(SIZES[2], SIZES[3]), dtype="float32", seed=0)


@pytest.fixture(scope="module")
def batches():
    """BATCHES (X, y) pairs: X (BATCH, 784) float32 C-contiguous views, y int64 labels."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCHES * BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCHES * BATCH)
    return [(X[i:i + BATCH], y[i:i + BATCH]) for i in range(0, BATCHES * BATCH, BATCH)]


def test_training_step(benchmark, backend, batches):
    model = make_model()
    opt = fnn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = itertools.cycle(batches)
    losses = []

    def step():
        X, y = next(data)
        scores = model.forward(X, training=True)
        loss, dscores = fnn.losses.softmax_cross_entropy(scores, y)
        model.zero_grad()
        model.backward(dscores)
        opt.step()
        losses.append(loss)

    for _ in range(WARMUP_STEPS):
        step()
    benchmark(step)
    assert np.isfinite(losses[-1])  # timed a real training run, not NaN arithmetic


def test_training_step_torch(benchmark, batches):
    torch = pytest.importorskip("torch")  # imported here, after the fastnn benchmarks ran
    threads = fnn.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    benchmark.extra_info.update(backend="torch", torch_version=torch.__version__,
                                torch_threads=torch.get_num_threads(),
                                torch_mkl=torch.backends.mkl.is_available(),
                                openmp_wait_policy="as fastnn loaded libgomp (PASSIVE unless "
                                                   "OMP_WAIT_POLICY was set)")
    try:
        layers = []
        for i, dense in enumerate(l for l in make_model().layers):
            linear = torch.nn.Linear(dense.in_features, dense.out_features)
            with torch.no_grad():  # the same initial weights as the fastnn model
                linear.weight.copy_(torch.from_numpy(dense.W.data.T.copy()))
                linear.bias.copy_(torch.from_numpy(dense.b.data))
            layers.append(linear)
            if i < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        data = itertools.cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches])
        losses = []

        def step():
            X, y = next(data)
            scores = model(X)
            loss = torch.nn.functional.cross_entropy(scores, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())

        for _ in range(WARMUP_STEPS):
            step()
        benchmark(step)
        assert np.isfinite(losses[-1])
    finally:
        torch.set_num_threads(previous_threads)


TRAIN_STEP_SHAPES = {"tiny": (64, (64, 128, 10)), "medium": (BATCH, SIZES)}


@pytest.mark.parametrize("shape", sorted(TRAIN_STEP_SHAPES))
def test_train_step(benchmark, backend, shape):
    """model.train_step: on the compiled backend one compiled call for forward, loss and
    backward (fastnn/_step.py), then the optimizer; on the NumPy backend layer by layer."""
    batch, sizes = TRAIN_STEP_SHAPES[shape]
    benchmark.group = f"train_step {'-'.join(map(str, sizes))} relu, batch {batch}, SGD momentum"
    rng = np.random.default_rng(0)
    data = itertools.cycle([(rng.standard_normal((batch, sizes[0])).astype(np.float32),
                             rng.integers(0, sizes[-1], batch)) for _ in range(BATCHES)])
    layers = [fnn.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    model = fnn.Sequential(*layers, fnn.Dense(sizes[-2], sizes[-1]), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []

    def step():
        X, y = next(data)
        losses.append(model.train_step(X, y, "softmax_cross_entropy", opt))

    for _ in range(WARMUP_STEPS):
        step()
    benchmark(step)
    assert np.isfinite(losses[-1])
