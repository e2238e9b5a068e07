"""Weight initializers (fastnn.init): documented distributions, aliases, constant/zeros symmetry
warnings, float scales, callables, errors; through `initialize` and through `Dense(init=...)`."""
import math
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import init

FAN_IN, FAN_OUT = 300, 700  # unequal, so that fan_in and fan_out cannot be confused
SHAPE = (FAN_IN, FAN_OUT)   # 210,000 draws: std estimates good to ~0.3%

# name -> (expected std, uniform bound or None for a normal distribution)
DISTRIBUTIONS = {
    "small": (0.01, None),
    "xavier": (math.sqrt(1 / FAN_IN), None),
    "xavier_uniform": (math.sqrt(1 / FAN_IN), math.sqrt(3 / FAN_IN)),
    "glorot": (math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    "glorot_uniform": (math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "he": (math.sqrt(2 / FAN_IN), None),
    "he_uniform": (math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
}
ALIASES = {"xavier_normal": "xavier", "glorot_normal": "glorot", "kaiming": "he",
           "he_normal": "he", "kaiming_normal": "he", "kaiming_uniform": "he_uniform"}


def check_distribution(w, std, bound=None):
    w = np.asarray(w, dtype=np.float64)
    assert abs(w.mean()) < 0.01 * std
    assert w.std() == pytest.approx(std, rel=0.02)
    if bound is None:  # normal: tails reach past 4 std; about 4.55% beyond 2 std
        assert np.abs(w).max() > 4 * std
        assert np.mean(np.abs(w) > 2 * std) == pytest.approx(0.0455, abs=0.004)
    else:  # uniform on [-bound, bound]: reaches the bound, never beyond; flat
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.999 * bound
        assert np.mean(np.abs(w) < bound / 2) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_documented_distribution(name, dtype):
    std, bound = DISTRIBUTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # random initializers never warn
        w = init.initialize(name, SHAPE, np.random.default_rng(1), dtype)
    assert w.shape == SHAPE and w.dtype == np.dtype(dtype) and w.flags.c_contiguous
    check_distribution(w, std, None if bound is None else bound * (1 + 1e-6))


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_aliases_equal_their_targets_for_the_same_rng(alias):
    a = init.initialize(alias, (40, 30), np.random.default_rng(9), np.float64)
    b = init.initialize(ALIASES[alias], (40, 30), np.random.default_rng(9), np.float64)
    np.testing.assert_array_equal(a, b)
    c = init.initialize(ALIASES[alias], (40, 30), np.random.default_rng(10), np.float64)
    assert not np.array_equal(a, c)  # and the rng matters


@pytest.mark.parametrize("scale", [0.05, 1, np.float32(0.2)])
def test_float_scale_is_scale_times_randn(scale):
    w = init.initialize(scale, SHAPE, np.random.default_rng(2), np.float64)
    check_distribution(w, float(scale))
    want = float(scale) * np.random.default_rng(2).standard_normal(SHAPE)
    np.testing.assert_allclose(w, want, rtol=1e-15)


def test_small_is_the_notes_0_01_randn():
    a = init.initialize("small", (20, 30), np.random.default_rng(3), np.float64)
    b = init.initialize(0.01, (20, 30), np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: "zeros", lambda: init.constant(0.5),
                                  lambda: init.constant(-2), lambda: 0.0,
                                  lambda: (lambda shape, rng: np.full(shape, 3.0))],
                         ids=["zeros", "constant0.5", "constant-2", "scale0", "callable"])
def test_equal_weights_warn_about_symmetry(make):
    with pytest.warns(UserWarning, match="symmetry"):
        w = init.initialize(make(), (5, 4), np.random.default_rng(0), np.float32)
    assert w.dtype == np.float32 and np.all(w == w.flat[0])


def test_constant_and_zeros_values():
    with pytest.warns(UserWarning):
        assert np.all(init.initialize("zeros", (3, 4), None, np.float64) == 0.0)
    with pytest.warns(UserWarning):
        w = init.initialize(init.constant(0.25), (3, 4), None, np.float32)
    assert w.dtype == np.float32 and np.all(w == np.float32(0.25))
    assert "0.25" in init.constant(0.25).__name__
    with pytest.warns(UserWarning, match=r"init constant\(0\.25\) makes every weight equal"):
        init.initialize(init.constant(0.25), (3, 4), None, np.float32)  # named, not <function ...>


def test_a_single_output_unit_has_no_symmetry_to_break():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = init.initialize("zeros", (5, 1), None, np.float64)
    assert w.shape == (5, 1) and not w.any()


@pytest.mark.parametrize("bad", ["xavier_normall", "He", "", "uniform", -0.01, float("nan"),
                                 float("inf"), True, None, ("he",)])
def test_bad_initializers_raise_value_error(bad):
    with pytest.raises(ValueError, match="init"):
        init.initialize(bad, (3, 4), np.random.default_rng(0), np.float64)
    if bad is not None:  # Dense(init=None) means the activation's default
        with pytest.raises(ValueError):
            fnn.Dense(3, 4, init=bad)


def test_callable_initializer_gets_the_shape_and_rng():
    calls = []

    def custom(shape, rng):
        calls.append((shape, rng))
        return rng.uniform(0.0, 1.0, shape).tolist()  # any array-like

    rng = np.random.default_rng(4)
    w = init.initialize(custom, (6, 5), rng, np.float32)
    assert calls == [((6, 5), rng)]
    assert w.dtype == np.float32 and w.shape == (6, 5)
    np.testing.assert_array_equal(
        w, np.random.default_rng(4).uniform(0.0, 1.0, (6, 5)).astype(np.float32))


@pytest.mark.parametrize("returned", [(5, 6), (6,), (30,), ()], ids=str)
def test_callable_returning_the_wrong_shape_raises(returned):
    def custom(shape, rng):
        return np.ones(returned) + rng.standard_normal(returned)

    with pytest.raises(ValueError, match="shape"):
        init.initialize(custom, (6, 5), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="shape"):
        fnn.Dense(6, 5, init=custom)


# ------------------------------------------------------------------------------------------------
# Through Dense


@pytest.mark.parametrize("activation,expected", [("relu", "he"), ("leaky_relu", "he"),
                                                 ("elu", "he"), ("tanh", "xavier"),
                                                 ("sigmoid", "xavier"),
                                                 ("identity", "xavier")])
def test_dense_default_init_follows_the_activation(activation, expected):
    layer = fnn.Dense(FAN_IN, FAN_OUT, activation=activation, dtype="float64", seed=5)
    want = init.initialize(expected, SHAPE, np.random.default_rng(5), np.float64)
    np.testing.assert_array_equal(layer.W.data, want)
    assert not layer.b.data.any()


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_dense_init_by_name(name):
    layer = fnn.Dense(FAN_IN, FAN_OUT, init=name, seed=6)
    assert layer.W.data.dtype == np.float32
    std, bound = DISTRIBUTIONS[name]
    check_distribution(layer.W.data, std, None if bound is None else bound * (1 + 1e-6))
    np.testing.assert_array_equal(
        layer.W.data, init.initialize(name, SHAPE, np.random.default_rng(6), np.float32))


def test_dense_init_by_scale_and_callable():
    layer = fnn.Dense(FAN_IN, FAN_OUT, init=0.2, dtype="float64", seed=7)
    check_distribution(layer.W.data, 0.2)
    layer = fnn.Dense(3, 2, init=lambda shape, rng: np.arange(6.0).reshape(shape))
    np.testing.assert_array_equal(layer.W.data, np.arange(6.0, dtype=np.float32).reshape(3, 2))


@pytest.mark.parametrize("bad_init", ["zeros", init.constant(0.1)], ids=["zeros", "constant"])
def test_dense_with_equal_weights_warns_on_construction_and_reset(bad_init):
    with pytest.warns(UserWarning, match="symmetry"):
        layer = fnn.Dense(4, 3, init=bad_init)
    with pytest.warns(UserWarning, match="symmetry"):
        fnn.Sequential(layer, fnn.Dense(3, 2), seed=0)  # Sequential re-initializes the layers


def test_sequential_with_random_inits_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fnn.Sequential(fnn.Dense(4, 8, activation="relu"), fnn.Dense(8, 8, init="glorot_uniform"),
                       fnn.Dense(8, 3, init=0.01), seed=0)


@pytest.mark.parametrize("name", ["he", "xavier_uniform", "glorot", "small", 0.3])
def test_weights_are_drawn_in_blocks_with_the_same_numbers_and_no_float64_copy(name):
    """initialize fills float32 weights block by block: the numbers of one float64 draw of the
    whole array, cast, without holding that float64 array (twice the weights' size)."""
    import tracemalloc

    shape = (3000, 100)  # several blocks of init._Random.BLOCK values
    whole = np.asarray(init._resolve(name)(shape, np.random.default_rng(4)), dtype=np.float32)
    tracemalloc.start()
    try:
        values = init.initialize(name, shape, np.random.default_rng(4), np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(values, whole)
    assert peak < values.nbytes + 3 * init._Random.BLOCK * 8
