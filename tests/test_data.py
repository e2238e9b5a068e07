import numpy as np
import pytest

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


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 16 and set(np.unique(y)) == set(range(10))
