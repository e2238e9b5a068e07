"""Preprocessing fitted on training data and applied to any data (scikit-learn's method names)."""
import numpy as np


class StandardScaler:
    """Per-feature standardization: (X - mean) / std, with the mean and std of the training data.

    Features with zero variance are left centred but unscaled (their std is taken as 1).
    """

    def __init__(self, eps=1e-12):
        self.eps = eps
        self.mean_ = self.scale_ = None

    def fit(self, X):
        X = _as_2d("StandardScaler.fit", X)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > self.eps, std, 1.0)
        return self

    def transform(self, X):
        X = _as_2d("StandardScaler.transform", X)
        self._check_fitted(X)
        return (X - self.mean_) / self.scale_

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        X = _as_2d("StandardScaler.inverse_transform", X)
        self._check_fitted(X)
        return X * self.scale_ + self.mean_

    def _check_fitted(self, X):
        if self.mean_ is None:
            raise RuntimeError("StandardScaler: call fit before transform")
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"StandardScaler: fitted on {self.mean_.shape[0]} features, got "
                             f"{X.shape[1]}")


def _as_2d(where, X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty 2-D array (N, D), got shape {X.shape}")
    return X
