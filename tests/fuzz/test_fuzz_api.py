"""Fuzzing the public entry points (issue 16): hypothesis draws their arguments (wrong types, out
of range, NaN/inf, NumPy scalars; arrays of odd dtypes, layouts, shapes and special values) and
each call must either work (the same result on both backends) or raise a ValueError/TypeError
whose message names the argument. Calls into native kernels with odd arrays run in a subprocess
(native_cases.py), so that a crash fails a test instead of the suite.
Profiles: FASTNN_FUZZ_PROFILE=ci (default, a few seconds) or nightly (many more examples)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn as fnn
from fastnn import optim
from fastnn.optim import lr_scheduler as sched

from .profiles import PROFILE, fuzz_settings

pytestmark = pytest.mark.backend_independent

# Values a hyperparameter might be given by mistake, or legitimately (NumPy scalars included).
ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-3, 10), st.sampled_from([0, 1, -1, 0.5, 1.5]),
    st.sampled_from([True, False, None, "0.1", "adam", [0.1], (0.9, 0.999), 1j]),
    st.floats(-2, 2).map(np.float32), st.integers(-2, 8).map(np.int64))


def names_argument(error, name):
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert name in str(error), f"the message does not name {name!r}: {error}"


def params():
    return fnn.Sequential(fnn.Dense(3, 2), seed=0).parameters()


def finite_number(value, low=-math.inf, low_open=False, high=math.inf, high_open=False):
    """Whether `value` is a real, finite, non-bool number in the given range."""
    if isinstance(value, (bool, np.bool_, str)) or not isinstance(value, (int, float, np.number)):
        return False
    if isinstance(value, complex) or not math.isfinite(value):
        return False
    return (value > low if low_open else value >= low) and \
        (value < high if high_open else value <= high)


OPTIMIZER_RANGES = {
    optim.SGD: {"lr": {}, "momentum": {}, "weight_decay": {}},
    optim.Adam: {"lr": {}, "eps": {}, "weight_decay": {}},
    optim.AdamW: {"lr": {}, "eps": {}, "weight_decay": {}},
    optim.RMSprop: {"lr": {}, "eps": {}, "weight_decay": {}, "momentum": {}, "alpha": {}},
    optim.Adagrad: {"lr": {}, "lr_decay": {}, "weight_decay": {}, "eps": {}},
}


@fuzz_settings
@given(st.sampled_from(sorted(OPTIMIZER_RANGES, key=lambda c: c.__name__)), st.data(), ODD)
def test_optimizer_hyperparameters(cls, data, value):
    key = data.draw(st.sampled_from(sorted(OPTIMIZER_RANGES[cls])))
    try:
        opt = cls(params(), **{key: value})
    except Exception as error:  # noqa: BLE001 -- the assertion says which kind is allowed
        names_argument(error, key)
        assert not finite_number(value, 0), f"{cls.__name__}({key}={value!r}) refused"
        return
    assert finite_number(value, 0), f"{cls.__name__}({key}={value!r}) accepted"
    opt.step()


@fuzz_settings
@given(st.sampled_from([(0, "betas"), (1, "betas")]), ODD)
def test_adam_betas(where, value):
    betas = [0.9, 0.999]
    betas[where[0]] = value
    try:
        optim.Adam(params(), betas=tuple(betas))
    except Exception as error:  # noqa: BLE001
        names_argument(error, "beta")
        assert not finite_number(value, 0, high=1, high_open=True)
        return
    assert finite_number(value, 0, high=1, high_open=True)


SCHEDULES = {
    "StepLR.step_size": (lambda o, v: sched.StepLR(o, step_size=v), "step_size",
                         lambda v: finite_number(v, 1) and float(v).is_integer()
                         and not isinstance(v, (float, np.floating))),
    "StepLR.gamma": (lambda o, v: sched.StepLR(o, 2, gamma=v), "gamma", lambda v: finite_number(v, 0)),
    "ExponentialLR.gamma": (lambda o, v: sched.ExponentialLR(o, gamma=v), "gamma",
                            lambda v: finite_number(v, 0, low_open=True)),
    "InverseTimeLR.decay": (lambda o, v: sched.InverseTimeLR(o, decay=v), "decay",
                            lambda v: finite_number(v, 0)),
    "CosineAnnealingLR.T_max": (lambda o, v: sched.CosineAnnealingLR(o, T_max=v), "T_max",
                                lambda v: finite_number(v, 1) and not isinstance(
                                    v, (float, np.floating))),
    "CosineAnnealingLR.eta_min": (lambda o, v: sched.CosineAnnealingLR(o, 5, eta_min=v),
                                  "eta_min", lambda v: finite_number(v, 0)),
    "LinearLR.start_factor": (lambda o, v: sched.LinearLR(o, start_factor=v), "start_factor",
                              lambda v: finite_number(v, 0, low_open=True, high=1)),
    "LinearLR.end_factor": (lambda o, v: sched.LinearLR(o, end_factor=v), "end_factor",
                            lambda v: finite_number(v, 0, high=1)),
}


@fuzz_settings
@given(st.sampled_from(sorted(SCHEDULES)), ODD)
def test_schedule_arguments(which, value):
    make, name, valid = SCHEDULES[which]
    opt = optim.SGD(params(), lr=0.1)
    try:
        schedule = make(opt, value)
    except Exception as error:  # noqa: BLE001
        names_argument(error, name)
        assert not valid(value), f"{which}={value!r} refused"
        return
    assert valid(value), f"{which}={value!r} accepted"
    for _ in range(3):
        try:
            schedule.step()
        except ValueError as error:  # a growing schedule may leave the float range: refused
            assert "learning rate" in str(error)
            return
        assert all(math.isfinite(lr) and lr >= 0 for lr in schedule.get_last_lr())


LAYERS = {
    "Dropout.p": (lambda v: fnn.Dropout(v), "p",
                  lambda v: finite_number(v, 0, high=1, high_open=True)),
    "LeakyReLU.alpha": (lambda v: fnn.LeakyReLU(alpha=v), "alpha",
                        lambda v: v is None or finite_number(v, 0)),
    "ELU.alpha": (lambda v: fnn.ELU(alpha=v), "alpha",
                  lambda v: v is None or finite_number(v, 0, low_open=True)),
    "ReLU.alpha": (lambda v: fnn.ReLU(alpha=v), "alpha", lambda v: v is None or (
        finite_number(v) and v == 0)),
    "Dense.in_features": (lambda v: fnn.Dense(v, 2), "in_features",
                          lambda v: finite_number(v, 1) and not isinstance(v, (float,
                                                                               np.floating))),
    "Dense.alpha": (lambda v: fnn.Dense(2, 2, activation="leaky_relu", alpha=v), "alpha",
                    lambda v: v is None or finite_number(v, 0)),
    "Dense.init": (lambda v: fnn.Dense(2, 2, init=v), "init",
                   # a huge scale may overflow float32 (refused) or not: either is right
                   lambda v: v is None or v in ("he", "xavier") or (
                       finite_number(v, 0) and (True if float(v) < 1e36 else None))),
    "BatchNorm.momentum": (lambda v: fnn.BatchNorm(2, momentum=v), "momentum",
                           lambda v: finite_number(v, 0, high=1)),
}


@fuzz_settings
@given(st.sampled_from(sorted(LAYERS)), ODD | st.sampled_from(["he", "xavier", "swish"]))
def test_layer_arguments(which, value):
    make, name, valid = LAYERS[which]
    try:
        layer = make(value)
    except Exception as error:  # noqa: BLE001
        names_argument(error, name)
        assert valid(value) is not True, f"{which}={value!r} refused"
        return
    assert valid(value) is not False, f"{which}={value!r} accepted"
    assert all(np.isfinite(p.data).all() for p in layer.parameters())


TRAINER = {
    "batch_size": lambda v: finite_number(v, 1) and not isinstance(v, (float, np.floating)),
    "epochs": lambda v: finite_number(v, 0) and not isinstance(v, (float, np.floating)),
    "early_stopping": lambda v: v is None or (finite_number(v, 1) and
                                              not isinstance(v, (float, np.floating))),
    "seed": lambda v: v is None or (finite_number(v, 0) and
                                    not isinstance(v, (float, np.floating))),
    "schedule": lambda v: v is None,
    "regularization": lambda v: v is None,
    "constraint": lambda v: v is None,
    "shuffle": lambda v: isinstance(v, (bool, np.bool_)),
    "compute_dtype": lambda v: v is None or (isinstance(v, str) and v in ("float32",
                                                                        "bfloat16")),
}


@fuzz_settings
@given(st.sampled_from(sorted(TRAINER)),
       ODD | st.sampled_from(["float32", "bfloat16", "float64", "float16"]))
def test_trainer_arguments(name, value):
    model = fnn.Sequential(fnn.Dense(3, 2), seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    try:
        fnn.Trainer(model, opt, progress=False, **{name: value})
    except Exception as error:  # noqa: BLE001
        names_argument(error, name)
        assert not TRAINER[name](value), f"Trainer({name}={value!r}) refused"
        return
    assert TRAINER[name](value), f"Trainer({name}={value!r}) accepted"


@pytest.mark.parametrize("case", ["forward", "predict", "losses", "mse"])
def test_native_paths_in_a_subprocess(case):
    """A batch of examples per subprocess: a crash (a signal) is a failure, not a dead suite."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native_cases.py")
    env = dict(os.environ, FASTNN_FUZZ_PROFILE=PROFILE)
    done = subprocess.run([sys.executable, script, case], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, (f"native_cases.py {case} exited with {done.returncode}"
                                  f"{' (killed by a signal)' if done.returncode < 0 else ''}:\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
