"""train_step runs small steps on one BLAS thread (fastnn._blas) and always restores the count."""
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _blas

pytestmark = pytest.mark.backend_independent


def numpy_uses_openblas():
    try:
        return "openblas" in np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (TypeError, KeyError):
        return False


def blas_threads():
    return [getter() for _, getter in _blas.controls()]


@pytest.fixture
def controls():
    if sys.platform.startswith("linux") and numpy_uses_openblas():
        assert _blas.controls(), "NumPy's OpenBLAS is loaded but its thread controls were not found"
    if not _blas.controls():
        pytest.skip("no OpenBLAS thread controls in this process")
    before = blas_threads()
    yield
    assert blas_threads() == before


def test_one_thread_inside_and_restored_after(controls):
    before = blas_threads()
    with _blas.one_thread_if(True):
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
    with _blas.one_thread_if(False):
        assert blas_threads() == before


def test_restored_when_the_body_raises(controls):
    before = blas_threads()
    with pytest.raises(RuntimeError):
        with _blas.one_thread_if(True):
            raise RuntimeError("boom")
    assert blas_threads() == before


def test_train_step_uses_one_thread_only_for_small_steps(controls, monkeypatch):
    seen = []
    model = fnn.Sequential(fnn.Dense(64, 128, activation="relu"), fnn.Dense(128, 10), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    step = opt.step

    def recording_step():
        seen.append(blas_threads())
        step()

    monkeypatch.setattr(opt, "step", recording_step)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 64)).astype(np.float32), rng.integers(0, 10, 64)
    model.train_step(X, y, "softmax_cross_entropy", opt)  # 64 x 64 x 128 multiply-adds: small
    monkeypatch.setattr(_blas, "SMALL_GEMM_WORK", 64 * 64 * 128)
    model.train_step(X, y, "softmax_cross_entropy", opt)  # no longer below the threshold
    assert seen[0] == [1] * len(seen[0])
    assert seen[1] == blas_threads()


def test_a_failed_step_restores_the_count(controls):
    model = fnn.Sequential(fnn.Dense(7, 5), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError):
        model.train_step(np.ones((3, 7)), [0, 1, 9], "softmax_cross_entropy", opt)
