"""Fuzzing public entry points: each call either gives a correct result, equal on both backends,
or a ValueError/TypeError whose message names the argument. Native paths run in a subprocess,
so that a crash fails the test instead of killing the suite."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import fastnn as fnn
from fastnn import _activations
from fastnn import preprocessing as pp

from .profiles import PROFILE, fuzz_settings

pytestmark = pytest.mark.backend_independent


SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, 3.4e38, 1e-45, np.nan, np.inf,
                           -np.inf])
DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8,
                          np.bool_, np.complex64, object])
WRONG = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just(np.nan),
                  st.just(np.inf), st.just(-1), st.just(0), st.integers(-10**6, 10**6),
                  st.floats(allow_nan=True, allow_infinity=True), st.just([1]), st.just({}))


def arrays(max_rows=6, max_cols=5):
    """2-D arrays of any dtype, some holding special values, some Fortran-ordered or strided."""
    @st.composite
    def make(draw):
        shape = draw(st.tuples(st.integers(0, max_rows), st.integers(0, max_cols)))
        values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3)))
        if values.size and draw(st.booleans()):
            values.flat[draw(st.integers(0, values.size - 1))] = draw(SPECIAL)
        dtype = draw(DTYPES)
        with np.errstate(all="ignore"):
            X = values.astype(dtype)
        layout = draw(st.sampled_from(["C", "F", "strided"]))
        if layout == "F":
            X = np.asfortranarray(X)
        elif layout == "strided" and X.shape[1] > 1:
            X = X[:, ::2]
        return X
    return make()


def _clean(X):
    return X.dtype.kind in "biuf" and X.size > 0 and X.ndim == 2 and \
        bool(np.isfinite(X.astype(np.float64)).all()) if X.dtype != object else False


@fuzz_settings
@given(arrays(), st.sampled_from([pp.StandardScaler, pp.MeanSubtraction, pp.PCA]))
def test_preprocessing_gives_a_result_or_names_X(X, make):
    try:
        Z = make().fit_transform(X)
    except (ValueError, TypeError) as error:
        assert "X" in str(error), error
        assert not _clean(X) or X.shape[0] < 1, (X, error)
        return
    assert _clean(X)
    assert np.isfinite(Z).all() or np.abs(X).max() > 1e150


@fuzz_settings
@given(arrays(), st.sampled_from(sorted(_activations.CODES)))
def test_dense_forward_agrees_across_backends_or_refuses(X, activation):
    outputs = []
    for backend in ("cython", "numpy") if fnn.compiled_available() else ("numpy",):
        with fnn.use_backend(backend):
            layer = fnn.Dense(max(X.shape[1], 1), 3, activation=activation, seed=0)
            try:
                outputs.append(layer.forward(X))
            except (ValueError, TypeError) as error:
                assert "input" in str(error) or "shape" in str(error), error
                outputs.append(type(error))
    if isinstance(outputs[0], np.ndarray):
        assert _clean(X)
        for other in outputs[1:]:
            np.testing.assert_allclose(other, outputs[0], rtol=2e-5, atol=1e-6)
    else:
        assert all(o is outputs[0] for o in outputs)


HYPER = {
    "SGD": ("lr", "momentum", "weight_decay", "dampening"),
    "Adam": ("lr", "eps", "weight_decay"),
    "RMSprop": ("lr", "alpha", "eps", "momentum"),
    "Adagrad": ("lr", "lr_decay", "eps"),
}


@fuzz_settings
@given(st.sampled_from(sorted(HYPER)), st.data())
def test_optimizer_hyperparameters_are_checked(name, data):
    key = data.draw(st.sampled_from(HYPER[name]))
    value = data.draw(WRONG)
    model = fnn.Sequential(fnn.Dense(3, 2), seed=0)
    try:
        getattr(fnn.optim, name)(model.parameters(), **{key: value})
    except (ValueError, TypeError) as error:
        assert key in str(error), (key, value, error)
        return
    assert isinstance(value, (int, float)) and not isinstance(value, bool)
    assert np.isfinite(value) and value >= 0


@fuzz_settings
@given(st.sampled_from(["batch_size", "epochs", "early_stopping", "ema", "seed",
                        "schedule", "regularization", "constraint", "progress",
                        "compute_dtype"]), WRONG)
def test_trainer_arguments_are_checked_at_construction(key, value):
    model = fnn.Sequential(fnn.Dense(3, 2), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    try:
        fnn.Trainer(model, opt, **{key: value})
    except (ValueError, TypeError) as error:
        assert key in str(error), (key, value, error)


@fuzz_settings
@given(st.sampled_from(["p", "alpha", "init"]), WRONG)
def test_layer_arguments_are_checked(key, value):
    make = {"p": lambda v: fnn.Dropout(v), "alpha": lambda v: fnn.LeakyReLU(alpha=v),
            "init": lambda v: fnn.Dense(3, 2, init=v)}[key]
    try:
        make(value)
    except (ValueError, TypeError) as error:
        assert key in str(error), (key, value, error)


NATIVE = textwrap.dedent("""
    import numpy as np, fastnn as fnn
    rng = np.random.default_rng(SEED)
    fnn.set_backend("cython")
    kernels = fnn._backend.kernels
    for _ in range(COUNT):
        n, k, m = rng.integers(0, 5, 3)
        dtype = rng.choice([np.float32, np.float64, np.int32, np.float16])
        X = rng.standard_normal((n, k)) * 10.0 ** rng.integers(-40, 40)
        if X.size and rng.random() < 0.3:
            X.flat[0] = rng.choice([np.nan, np.inf, -np.inf])
        with np.errstate(all="ignore"):
            X = X.astype(dtype)
        W = rng.standard_normal((max(k, 1) if rng.random() < 0.8 else k + 1, m)).astype(
            rng.choice([np.float32, np.float64]))
        for call in (lambda: kernels.dense_forward(X, W, None, activation="tanh", alpha=0.0),
                     lambda: kernels.softmax_cross_entropy(X.astype(np.float32),
                                                           rng.integers(-1, 4, n)),
                     lambda: kernels.dropout_forward(np.asfortranarray(X).astype(np.float32),
                                                     p=0.5, key=3)):
            try:
                with np.errstate(all="ignore"):
                    call()
            except (ValueError, TypeError):
                pass
    print("ok")
""")


@pytest.mark.skipif(not fnn.compiled_available(), reason="the compiled backend is not built")
def test_compiled_kernels_survive_odd_input_in_a_subprocess():
    count = 2000 if PROFILE == "nightly" else 200
    script = NATIVE.replace("SEED", "0").replace("COUNT", str(count))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
