"""Every test runs once per backend (compiled "cython" and the "numpy" twin) unless it is marked
`backend_independent` (tests that compare the two backends themselves run once)."""
import os

# Kernels go parallel only above this much work (default 2**21); the suite's thread-count tests
# use shapes just above 65536, so lower it before the compiled modules read it.
os.environ.setdefault("FASTNN_PARALLEL_MIN_WORK", "65536")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastnn  # noqa: E402

BACKENDS = ("cython", "numpy")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames and not metafunc.definition.get_closest_marker(
            "backend_independent"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    """The backend a test runs on; restores the previous one afterwards."""
    name = getattr(request, "param", None)
    if name is None:
        yield fastnn.get_backend()
        return
    if name == "cython" and not fastnn.compiled_available():
        pytest.skip("the compiled backend is not built")
    with fastnn.use_backend(name):
        yield name


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def require_compiled():
    """CI sets FASTNN_REQUIRE_COMPILED=1 so that a broken build cannot hide behind the fallback."""
    return os.environ.get("FASTNN_REQUIRE_COMPILED", "") not in ("", "0")
