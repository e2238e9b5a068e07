"""Fuzz cases that feed odd arrays to the compiled kernels. test_fuzz_api runs each in a
subprocess (`python native_cases.py NAME`), so that a crash fails one test instead of killing the
suite; inside, hypothesis runs the profile's batch of examples. Each example runs on both
backends and must give either the same result on both or, on both, a ValueError/TypeError whose
message names the argument."""
import os
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profiles import fuzz_settings  # noqa: E402

import fastnn as fnn  # noqa: E402

DTYPES = ["float32", "float64", "float16", "int32", "int64", "uint8", "bool", "complex128",
          "object", "<U3"]
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e-30]
BACKENDS = ("cython", "numpy")


@st.composite
def arrays(draw, rows, cols, allow_specials=True):
    """An array of a drawn dtype and layout (C, Fortran, or a strided view), mostly of the given
    shape but sometimes of another number of dimensions, with special values now and then."""
    n = draw(rows)
    d = draw(cols)
    ndim = draw(st.sampled_from([2, 2, 2, 2, 1, 3]))
    shape = {1: (n,), 2: (n, d), 3: (n, d, 2)}[ndim]
    values = draw(st.lists(st.floats(-3, 3, width=32), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    base = np.array(values, dtype=np.float64).reshape(shape)
    if allow_specials and base.size and draw(st.booleans()):
        index = draw(st.integers(0, base.size - 1))
        base.flat[index] = draw(st.sampled_from(SPECIALS))
    dtype = draw(st.sampled_from(DTYPES))
    with np.errstate(invalid="ignore", over="ignore"):
        X = base.astype(dtype) if dtype not in ("<U3", "object") else base.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided" and X.ndim >= 1:
        wide = np.repeat(X, 2, axis=-1)
        X = wide[..., ::2]
    return X


def outcome(call):
    """(result arrays or the exception) of call() on each backend."""
    results = []
    for backend in BACKENDS:
        with fnn.use_backend(backend):
            try:
                out = call()
            except (ValueError, TypeError) as error:
                out = error
            results.append(out)
    return results


def check_same(results, names, rtol):
    """Both an error of the same type naming one of `names`, or both the same numbers."""
    a, b = results
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b), f"backends differ: {a!r} vs {b!r}"
        message = str(a)
        assert any(name in message for name in names), f"message names none of {names}: {a}"
        return
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(x), x, 0)), initial=0)))
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, equal_nan=True)


MODEL_DTYPE = st.sampled_from(["float32", "float64"])


@fuzz_settings
@given(arrays(st.integers(0, 5), st.sampled_from([4, 4, 4, 3, 0])), MODEL_DTYPE,
       st.booleans(), st.sampled_from(["relu", "tanh", "identity"]))
def forward(X, dtype, training, activation):
    model = fnn.Sequential(fnn.Dense(4, 5, activation=activation), fnn.BatchNorm(5),
                           fnn.Dense(5, 3), seed=0, dtype=dtype)
    results = outcome(lambda: model.forward(X, training=training))
    check_same(results, ["input", "BatchNorm"], 1e-4 if dtype == "float32" else 1e-9)
    if not isinstance(results[0], Exception):
        assert results[0].shape == (X.shape[0], 3) and results[0].dtype == dtype
        # accepted only what is valid: real numbers, (N, 4), N > 0, finite
        assert X.dtype.kind in "fiub" and X.shape[1:] == (4,) and X.shape[0] > 0
        assert np.isfinite(X.astype(float)).all()
        if not training:  # inference: the same as the layers applied by hand in float64
            Z = X.astype(np.float64)
            d1, bn, d2 = model.layers
            Z = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
                 "identity": lambda v: v}[activation](Z @ d1.W.data + d1.b.data)
            Z = (Z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.gamma.data + \
                bn.beta.data
            expected = Z @ d2.W.data + d2.b.data
            np.testing.assert_allclose(results[0], expected, rtol=1e-3, atol=1e-3)


@fuzz_settings
@given(arrays(st.integers(0, 9), st.just(4)), st.integers(-1, 4) | st.sampled_from([2.0, None]))
def predict(X, batch_size):
    model = fnn.Sequential(fnn.Dense(4, 3, activation="relu"), fnn.Dense(3, 3), seed=0)
    results = outcome(lambda: model.predict_proba(X, batch_size=batch_size))
    check_same(results, ["input", "batch_size"], 1e-5)
    if not isinstance(results[0], Exception):
        np.testing.assert_allclose(results[0].sum(axis=1), 1.0, rtol=1e-5)


LABELS = st.one_of(
    st.lists(st.integers(-2, 4), min_size=0, max_size=6).map(np.array),
    st.lists(st.sampled_from([0.0, 1.0, 0.5, np.nan, -1.0]), min_size=0, max_size=6).map(np.array),
    st.lists(st.booleans(), min_size=0, max_size=6).map(np.array),
    st.just(np.array(["a", "b"])), st.just(None))


@fuzz_settings
@given(arrays(st.integers(0, 6), st.sampled_from([1, 3])), LABELS,
       st.sampled_from(["softmax_cross_entropy", "multiclass_hinge", "binary_logistic",
                        "binary_hinge"]))
def losses(scores, y, name):
    loss = fnn.losses.get(name)
    results = outcome(lambda: loss(scores, y))
    check_same(results, ["scores", "labels"], 1e-4)
    if not isinstance(results[0], Exception):
        value, dscores = results[0]
        assert np.shape(dscores) == scores.shape


@fuzz_settings
@given(arrays(st.integers(0, 5), st.just(3)), arrays(st.integers(0, 5), st.just(3),
                                                     allow_specials=False))
def mse(scores, targets):
    results = outcome(lambda: fnn.losses.mse(scores, targets))
    check_same(results, ["scores", "targets"], 1e-4)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
