import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
import fastnn.data
from fastnn.data import load_digits, stratified_split
from fastnn.preprocessing import StandardScaler

pytestmark = pytest.mark.backend_independent


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(4), [50, 30, 10, 5])
    train, held = stratified_split(y, 0.2, seed=0)
    assert len(set(train) & set(held)) == 0 and len(train) + len(held) == len(y)
    np.testing.assert_array_equal(np.bincount(y[held]), [10, 6, 2, 1])
    again, _ = stratified_split(y, 0.2, seed=0)
    np.testing.assert_array_equal(train, again)
    with pytest.raises(ValueError):
        stratified_split(y, 1.5)


def test_standard_scaler():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, (200, 4))
    X[:, 2] = 7  # constant feature
    scaler = StandardScaler()
    Z = scaler.fit_transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), [1, 1, 0, 1], atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X)
    with pytest.raises(ValueError, match="fitted on 4 features"):
        scaler.transform(X[:, :3])
    with pytest.raises(RuntimeError, match="fit"):
        StandardScaler().transform(X)


DIGITS = Path(fastnn.__file__).parent / "datasets" / "digits.npz"


def test_load_digits_needs_numpy_alone(monkeypatch):
    # scikit-learn hidden: the digits ship inside fastnn.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.array_equal(np.unique(y), np.arange(10))
    np.testing.assert_array_equal(X, np.round(X))
    with np.load(DIGITS, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["data", "target"]
        assert archive["data"].dtype == np.uint8 and archive["target"].dtype == np.uint8
    assert DIGITS.stat().st_size < 60_000
    assert "CC BY 4.0" in (DIGITS.parent / "DIGITS.md").read_text()


def sklearn_digits_csv():
    """scikit-learn's digits.csv.gz, found without importing scikit-learn (slow to import)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        pytest.skip("scikit-learn is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def test_shipped_digits_are_scikit_learns():
    # The file sklearn.datasets.load_digits reads, read here independently of tools/.
    with gzip.open(sklearn_digits_csv(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    X, y = load_digits()
    np.testing.assert_array_equal(X, table[:, :-1])
    np.testing.assert_array_equal(y, table[:, -1])


def test_make_digits_script_regenerates_the_shipped_bytes(tmp_path):
    csv = sklearn_digits_csv()
    script = Path(__file__).parents[1] / "tools" / "make_digits.py"
    spec = importlib.util.spec_from_file_location("make_digits", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "digits.npz"
    module.write_npz(out, dict(zip(("data", "target"), module.read_csv(csv))))
    assert out.read_bytes() == DIGITS.read_bytes()


def test_load_digits_refuses_a_damaged_file(monkeypatch, tmp_path):
    package = tmp_path / "fastnn"
    (package / "datasets").mkdir(parents=True)
    (package / "datasets" / "digits.npz").write_bytes(DIGITS.read_bytes()[:1000])
    monkeypatch.setattr(fastnn.data.resources, "files", lambda name: package)
    with pytest.raises(OSError, match="digits data shipped with fastnn .* reinstall"):
        load_digits()
    np.savez(package / "datasets" / "digits.npz", data=np.zeros((10, 64), np.uint8),
             target=np.zeros(10, np.uint8))
    with pytest.raises(OSError, match="not the expected 1797 x 64"):
        load_digits()
