"""oneDNN as the GEMM engine (fastnn._kernels.onednn, fastnn._engine): its matmul agrees with
float64 NumPy on odd shapes, transposes, accumulation and strided operands; a training step on
it agrees with one on OpenBLAS; the engine switch and its errors; two threads at once.

The tests that need oneDNN skip when it is not installed (`pip install "fastnn[onednn]"`).
"""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _kernels

from _support import RTOL, assert_close

pytestmark = pytest.mark.backend_independent

onednn = None
if _kernels.CYTHON is not None:
    from fastnn._kernels import gemm, onednn

needs_onednn = pytest.mark.skipif(
    onednn is None or not onednn.load(),
    reason=f"oneDNN is not loaded ({onednn.load_error() if onednn else 'no compiled kernels'})")

SHAPES = [(1, 1, 1), (7, 13, 5), (200, 64, 100), (200, 100, 10), (33, 1, 7), (1, 33, 7)]


@pytest.fixture(autouse=True)
def engine_restored():
    before = fnn.gemm_engine_info()["requested"]
    yield
    fnn.set_gemm_engine(before)


def run_python(code, **env):
    environment = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, timeout=120)


def operands(rng, m, k, n, dtype, trans_a, trans_b):
    """(a, b, op(a) @ op(b) in float64) with a, b stored as the transposes ask."""
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    a = np.ascontiguousarray(A.T if trans_a else A, dtype=dtype)
    b = np.ascontiguousarray(B.T if trans_b else B, dtype=dtype)
    return a, b, (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)


@needs_onednn
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_float32_matmul_agrees_with_numpy(m, k, n, trans_a, trans_b, accumulate, rng):
    a, b, product = operands(rng, m, k, n, np.float32, trans_a, trans_b)
    start = rng.standard_normal((m, n)).astype(np.float32)
    out = start.copy() if accumulate else np.full((m, n), np.nan, np.float32)
    assert onednn._gemm(a, b, out, trans_a, trans_b, accumulate) == 0
    expected = product + start if accumulate else product
    scale = float(np.abs(a).max() * np.abs(b).max() * k + np.abs(start).max())
    assert_close(out, expected.astype(np.float32), scale, rtol=10 * RTOL[np.dtype(np.float32)])


@needs_onednn
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_strided_operands(trans_a, trans_b, accumulate, rng):
    """lda, ldb, ldc longer than the rows: views into wider arrays; the columns beyond stay."""
    m, k, n = 9, 6, 5
    a, b, product = operands(rng, m, k, n, np.float32, trans_a, trans_b)
    wide_a = rng.standard_normal((a.shape[0], a.shape[1] + 3)).astype(np.float32)
    wide_b = rng.standard_normal((b.shape[0], b.shape[1] + 7)).astype(np.float32)
    wide_c = rng.standard_normal((m, n + 4)).astype(np.float32)
    wide_a[:, :a.shape[1]], wide_b[:, :b.shape[1]] = a, b
    start, margin = wide_c[:, :n].copy(), wide_c[:, n:].copy()
    assert onednn._gemm(wide_a[:, :a.shape[1]], wide_b[:, :b.shape[1]], wide_c[:, :n],
                        trans_a, trans_b, accumulate) == 0
    expected = product + start if accumulate else product
    assert_close(wide_c[:, :n], expected.astype(np.float32), float(np.abs(expected).max()),
                 rtol=10 * RTOL[np.dtype(np.float32)])
    np.testing.assert_array_equal(wide_c[:, n:], margin)


@needs_onednn
def test_float64_goes_to_the_blas_with_the_right_answer(rng):
    a, b, product = operands(rng, 7, 13, 5, np.float64, False, True)
    out = np.full((7, 5), np.nan)
    status = onednn._gemm(a, b, out, False, True, False)
    if status == 0:  # a oneDNN with a float64 matmul on CPU
        assert_close(out, product)
    else:  # oneDNN 3.2 has none: C is left for the BLAS
        assert np.isnan(out).all() and onednn.implementation(7, 5, 13, "float64") is None
    fnn.set_gemm_engine("onednn")
    for trans_b in (False, True):
        a, b, product = operands(rng, 7, 13, 5, np.float64, False, trans_b)
        start = rng.standard_normal((7, 5))
        out = gemm.matmul(a, b, out=start.copy(), trans_b=trans_b, accumulate=True)
        assert_close(out, product + start)


def bf16_bits(x):
    """float32 -> bfloat16 bits, rounded to nearest even (finite x)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


@needs_onednn
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_bfloat16_matmul_accumulates_in_float32_or_is_declined(trans_a, trans_b, accumulate,
                                                               rng):
    m, k, n = 37, 300, 19
    a32, b32, _ = operands(rng, m, k, n, np.float32, trans_a, trans_b)
    a, b = bf16_bits(a32), bf16_bits(b32)
    start = rng.standard_normal((m, n)).astype(np.float32)
    out = start.copy()
    status = onednn._gemm(a, b, out, trans_a, trans_b, accumulate)
    if onednn.implementation(m, n, k, "bfloat16", trans_a=trans_a, trans_b=trans_b,
                             accumulate=accumulate) is None:
        assert status == -1  # no bf16 matmul on this CPU: declined, C untouched
        np.testing.assert_array_equal(out, start)
        return
    assert status == 0
    A, B = bf16_value(a).astype(np.float64), bf16_value(b).astype(np.float64)
    expected = (A.T if trans_a else A) @ (B.T if trans_b else B) + (start if accumulate else 0)
    assert_close(out, expected.astype(np.float32), float(np.abs(expected).max()), rtol=1e-5)


@needs_onednn
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_gemm_core_runs_on_onednn_and_reuses_its_primitives(dtype, rng):
    fnn.set_gemm_engine("onednn")
    assert fnn.get_gemm_engine() == "onednn" and gemm.engine() == "external"
    a, b, product = operands(rng, 31, 17, 11, dtype, True, False)
    out = np.empty((31, 11), dtype)
    gemm.matmul(a, b, out=out, trans_a=True)
    entries = onednn.cache_size()
    for _ in range(3):
        gemm.matmul(a, b, out=out, trans_a=True)
    assert onednn.cache_size() == entries  # one primitive per shape, created once
    assert_close(out, product.astype(dtype), float(np.abs(product).max()),
                 rtol=10 * RTOL[np.dtype(dtype)])


@needs_onednn
@pytest.mark.parametrize("optimizer, batch", [("sgd_momentum", 61), ("adam", 67)])
def test_a_training_step_on_onednn_agrees_with_openblas(optimizer, batch, rng):
    # a batch size of each test's own, so that its GEMMs are new shapes to oneDNN's cache
    X = rng.standard_normal((batch, 20)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def train(engine):
        fnn.set_gemm_engine(engine)
        model = fnn.Sequential(fnn.Dense(20, 48, activation="relu"), fnn.Dense(48, 32),
                               fnn.Tanh(), fnn.Dense(32, 10), seed=5)
        opt = (fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
               if optimizer == "sgd_momentum" else fnn.optim.Adam(model.parameters(), lr=1e-3))
        losses = [model.train_step(X, y, "softmax_cross_entropy", opt) for _ in range(5)]
        return losses, model.state_dict()

    with fnn.use_backend("cython"):
        entries = onednn.cache_size()
        on_onednn = train("onednn")
        assert onednn.cache_size() > entries  # oneDNN ran the step's GEMMs
        on_openblas = train("openblas")
    np.testing.assert_allclose(on_onednn[0], on_openblas[0], rtol=1e-5)
    for key, value in on_openblas[1].items():
        np.testing.assert_allclose(on_onednn[1][key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@needs_onednn
def test_two_threads_at_once(rng):
    """The same shapes and new ones from two threads: right answers, no crash (an entry busy in
    the other thread sends the call to the BLAS)."""
    fnn.set_gemm_engine("onednn")
    problems = [operands(rng, m, k, n, np.float32, ta, tb) + (ta, tb)
                for m, k, n in [(40, 30, 20), (41, 30, 20), (64, 64, 64), (5, 300, 7)]
                for ta in (False, True) for tb in (False, True)]
    failures = []

    def work(order):
        for _ in range(15):
            for a, b, product, ta, tb in (problems if order else problems[::-1]):
                out = gemm.matmul(a, b, trans_a=ta, trans_b=tb)
                if not np.allclose(out, product, rtol=1e-4, atol=1e-4):
                    failures.append((a.shape, b.shape, ta, tb))

    threads = [threading.Thread(target=work, args=(order,)) for order in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@needs_onednn
def test_engine_switch_and_info():
    fnn.set_gemm_engine("onednn")
    info = fnn.gemm_engine_info()
    assert info["engine"] == "onednn" and info["requested"] == "onednn"
    assert info["onednn_version"].startswith("3.") and info["onednn_error"] is None
    assert info["onednn_isa"] and info["onednn_isa"] == onednn.isa()
    assert os.path.basename(info["onednn_library"]).startswith("libdnnl.so")
    assert isinstance(info["onednn_implementation"], str) and info["onednn_implementation"]
    # The layers' bfloat16 GEMMs are emulated whatever oneDNN offers: the benchmarks label
    # their bf16 figures from this, so it must change when a layer calls a bf16 kernel.
    assert info["bf16_compute"] == "emulated"
    fnn.set_gemm_engine("openblas")
    assert fnn.get_gemm_engine() == "openblas" == gemm.engine()
    fnn.set_gemm_engine("auto")
    assert fnn.get_gemm_engine() in ("openblas", "onednn")


@pytest.mark.parametrize("bad", ["OpenBLAS", "mkl", "", None, 3])
def test_bad_engine_names_are_refused_and_nothing_changes(bad):
    before = fnn.get_gemm_engine()
    with pytest.raises(ValueError, match=r"set_gemm_engine: name must be one of .*openblas"):
        fnn.set_gemm_engine(bad)
    assert fnn.get_gemm_engine() == before


def test_an_installed_onednn_wheel_is_loaded():
    """With the `onednn` extra installed, oneDNN must load: a broken search for its library must
    not pass as "not installed" and skip the tests above."""
    from importlib import metadata
    try:
        metadata.version("onednn-cpu-gomp")
    except metadata.PackageNotFoundError:
        pytest.skip("onednn-cpu-gomp is not installed")
    if _kernels.CYTHON is None or os.environ.get("FASTNN_ONEDNN_LIBRARY"):
        pytest.skip("no compiled kernels, or oneDNN's library is given explicitly")
    assert onednn.load(), onednn.load_error()
    assert fnn.gemm_engine_info()["onednn_version"].startswith("3.")


def test_without_onednn_the_error_names_the_extra():
    result = run_python(
        "import fastnn as fnn\n"
        "try:\n    fnn.set_gemm_engine('onednn')\n"
        "except ImportError as e:\n    print('refused:', e)\n"
        "print(fnn.get_gemm_engine(), fnn.gemm_engine_info()['onednn_error'] is not None)",
        FASTNN_ONEDNN_LIBRARY="/nonexistent/libdnnl.so.3", FASTNN_GEMM="auto")
    assert result.returncode == 0, result.stderr
    assert 'pip install "fastnn[onednn]"' in result.stdout
    assert result.stdout.strip().endswith("True")
    assert "onednn True" not in result.stdout


def test_fastnn_gemm_is_read_at_import():
    bad = run_python("import fastnn", FASTNN_GEMM="fast")
    assert bad.returncode != 0 and "FASTNN_GEMM='fast'" in bad.stderr and "openblas" in bad.stderr
    blas = run_python("import fastnn; print(fastnn.get_gemm_engine())", FASTNN_GEMM="openblas")
    assert blas.returncode == 0, blas.stderr
    assert blas.stdout.strip() in ("openblas", "numpy")


@needs_onednn
def test_fastnn_gemm_onednn_and_an_avx2_ceiling():
    """ONEDNN_MAX_CPU_ISA=AVX2 (what an AVX2-only CPU gets) still multiplies right."""
    result = run_python(
        "import numpy as np, fastnn as fnn\n"
        "from fastnn._kernels import gemm\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.standard_normal((70, 50)).astype(np.float32)\n"
        "b = rng.standard_normal((50, 30)).astype(np.float32)\n"
        "ok = np.allclose(gemm.matmul(a, b), a.astype(float) @ b, rtol=1e-4, atol=1e-4)\n"
        "info = fnn.gemm_engine_info()\n"
        "print(fnn.get_gemm_engine(), ok, info['onednn_isa'], info['onednn_implementation'])",
        FASTNN_GEMM="onednn", ONEDNN_MAX_CPU_ISA="AVX2")
    assert result.returncode == 0, result.stderr
    engine, ok, isa, implementation = result.stdout.split()
    assert engine == "onednn" and ok == "True" and isa == "avx2"
    assert "avx512" not in implementation


@pytest.mark.skipif(_kernels.CYTHON is None, reason="the compiled backend is not built")
def test_on_the_numpy_backend_the_setting_is_recorded():
    with fnn.use_backend("numpy"):
        fnn.set_gemm_engine("openblas")
        assert fnn.gemm_engine_info()["requested"] == "openblas"
        model = fnn.Sequential(fnn.Dense(4, 3), seed=0)
        X = np.ones((2, 4), np.float32)
        np.testing.assert_allclose(model.forward(X), X @ model.state_dict()["0.W"] +
                                   model.state_dict()["0.b"], rtol=1e-6)
