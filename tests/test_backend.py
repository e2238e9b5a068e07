import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _kernels

from conftest import require_compiled

pytestmark = pytest.mark.backend_independent


def test_compiled_backend_loaded_when_required():
    if not require_compiled():
        pytest.skip("FASTNN_REQUIRE_COMPILED is not set")
    assert fastnn.compiled_available(), _kernels.COMPILED_ERROR
    assert fastnn.get_backend() == "cython"
    assert fastnn.openmp_enabled()


@pytest.mark.skipif(not fastnn.compiled_available(), reason="compiled backend not built")
@pytest.mark.parametrize("name", _kernels.names())
def test_twins_have_identical_signatures(name):
    compiled = getattr(_kernels.CYTHON, name)
    twin = getattr(_kernels.NUMPY, name)
    assert str(inspect.signature(compiled)) == str(inspect.signature(twin))
    assert inspect.getdoc(compiled) == inspect.getdoc(twin)


def test_backend_sets_have_the_same_kernels():
    if _kernels.CYTHON is not None:
        assert sorted(k for k in vars(_kernels.CYTHON) if k != "name") == _kernels.names()


def test_set_and_use_backend():
    start = fastnn.get_backend()
    with fastnn.use_backend("numpy"):
        assert fastnn.get_backend() == "numpy"
        assert fastnn._backend.kernels is _kernels.NUMPY
    assert fastnn.get_backend() == start
    with pytest.raises(ValueError, match="unknown fastnn backend"):
        fastnn.set_backend("torch")
    assert fastnn.get_backend() == start


def test_use_backend_restores_after_an_error():
    start = fastnn.get_backend()
    with pytest.raises(KeyError):
        with fastnn.use_backend("numpy"):
            raise KeyError("boom")
    assert fastnn.get_backend() == start


def _run_python(code, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("FASTNN_BACKEND", "OMP_WAIT_POLICY", "OMP_DISPLAY_ENV")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_environment_variable_selects_numpy():
    result = _run_python("import fastnn; print(fastnn.get_backend())", FASTNN_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_bad_environment_variable_is_an_error():
    result = _run_python("import fastnn", FASTNN_BACKEND="fortran")
    assert result.returncode != 0
    assert "FASTNN_BACKEND" in result.stderr


def test_missing_extension_warns_and_falls_back_loudly():
    # Simulate a build without the compiled modules: block their import.
    code = (
        "import sys, warnings\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('fastnn._kernels.dense', 'fastnn._kernels.loss',\n"
        "                    'fastnn._kernels.optim', 'fastnn._kernels.parallel'):\n"
        "            raise ImportError('simulated missing extension')\n"
        "sys.meta_path.insert(0, Block())\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import fastnn\n"
        "print(fastnn.get_backend(), len(caught), caught[0].message if caught else '')\n"
        "try:\n"
        "    fastnn.set_backend('cython')\n"
        "except RuntimeError as e:\n"
        "    print('error:', e)\n")
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first.startswith("numpy 1 ") and "simulated missing extension" in first
    assert second.startswith("error:") and "not available" in second


def test_required_cython_without_extension_fails_at_import():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fastnn._kernels.dense':\n"
        "            raise ImportError('simulated missing extension')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import fastnn\n")
    result = _run_python(code, FASTNN_BACKEND="cython")
    assert result.returncode != 0
    assert "FASTNN_BACKEND=cython" in result.stderr


def test_num_threads():
    previous = fastnn.get_num_threads()
    assert previous >= 1
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        if fastnn.compiled_available():
            assert _kernels.parallel.get_num_threads() == 1
    finally:
        fastnn.set_num_threads(previous)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises((ValueError, TypeError), match="set_num_threads: n"):
            fastnn.set_num_threads(bad)
    fastnn.set_num_threads(np.int64(1))  # NumPy integers are integers
    assert fastnn.get_num_threads() == 1
    fastnn.set_num_threads(previous)


@pytest.mark.skipif(not fastnn.openmp_enabled(), reason="built without OpenMP")
def test_openmp_waits_passively_unless_the_user_says_otherwise():
    code = "import os, fastnn; print('OMP_WAIT_POLICY' in os.environ)"
    default = _run_python(code, OMP_DISPLAY_ENV="true")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in default.stderr
    assert default.stdout.strip() == "False"  # fastnn leaves the environment as it found it
    chosen = _run_python(code, OMP_DISPLAY_ENV="true", OMP_WAIT_POLICY="active")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in chosen.stderr
