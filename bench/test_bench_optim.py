"""Optimizer update benchmarks: one fused compiled pass against the NumPy twin, float32, for
10^4, 10^6 and 10^7 parameters. The issue's target: Adam at least 3x faster than the twin at 10^6
parameters and up. Each case is its own benchmark group, run once per backend.
"""
import numpy as np
import pytest

SIZES = (10**4, 10**6, 10**7)
MAX_TIME = 0.5

UPDATES = {
    "sgd": lambda k, p, g, s, t: k.sgd_update(p, g, s[0], lr=0.01, momentum=0.9, nesterov=True,
                                              weight_decay=1e-4),
    "adagrad": lambda k, p, g, s, t: k.adagrad_update(p, g, s[0], lr=0.01, step=t),
    "rmsprop": lambda k, p, g, s, t: k.rmsprop_update(p, g, s[0], None, None, lr=0.01),
    "adam": lambda k, p, g, s, t: k.adam_update(p, g, s[0], s[1], None, lr=1e-3, step=t),
    "adamw": lambda k, p, g, s, t: k.adam_update(p, g, s[0], s[1], None, lr=1e-3,
                                                 weight_decay=1e-2, step=t,
                                                 decoupled_weight_decay=True),
}


def cases():
    return [pytest.param(name, size, id=f"{name}-{size:.0e}",
                         marks=pytest.mark.benchmark(group=f"{name} update {size:.0e}",
                                                     max_time=MAX_TIME))
            for name in UPDATES for size in SIZES]


@pytest.mark.parametrize("name, size", cases())
def test_optimizer_update(benchmark, backend, name, size):
    rng = np.random.default_rng(0)
    param = rng.standard_normal(size).astype(np.float32)
    grad = (1e-3 * rng.standard_normal(size)).astype(np.float32)
    state = [np.zeros(size, np.float32), np.zeros(size, np.float32)]
    update = UPDATES[name]
    step = [0]

    def one_update():
        step[0] += 1
        update(backend, param, grad, state, step[0])

    benchmark(one_update)
