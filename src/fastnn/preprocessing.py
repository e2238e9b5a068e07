"""Preprocessing fitted on training data and applied to any data (scikit-learn's method names).

As the CS231n notes insist, statistics are computed on the training data only (`fit`) and then
applied to the training, validation and test data alike (`transform`).

- MeanSubtraction: per feature (for flattened images, the "mean image"), or per channel of image
  arrays.
- StandardScaler: per-feature zero mean and unit variance.
- PCA: project onto the top principal components (k of them, or enough to keep a variance
  fraction), optionally whitened (each component divided by sqrt(eigenvalue + eps)).
- ZCAWhitening: PCA whitening rotated back into the input space.
Each has fit, transform, fit_transform and inverse_transform.
"""
import numbers

import numpy as np

from . import _backend
from ._validation import check_bool, check_choice, check_float, check_int


class _Transformer:
    def fit_transform(self, X):
        return self.fit(X).transform(X)


class MeanSubtraction(_Transformer):
    """Subtract the training mean: per feature (`per="feature"`, the mean image of flattened
    images) or per channel of an image array (`per="channel"`, with `channel_axis`, e.g. -1 for
    (N, H, W, C) or 1 for (N, C, H, W))."""

    def __init__(self, per="feature", channel_axis=-1):
        self.per = check_choice("MeanSubtraction: per", per, ("feature", "channel"))
        self.channel_axis = check_int("MeanSubtraction: channel_axis", channel_axis)
        self.mean_ = None

    def fit(self, X):
        X = _as_real("MeanSubtraction.fit", X, two_d=False)
        if self.per == "feature":
            self.mean_ = X.mean(axis=0)
        else:
            if not -X.ndim <= self.channel_axis < X.ndim or self.channel_axis % X.ndim == 0:
                raise ValueError(f"MeanSubtraction: channel_axis {self.channel_axis} is not a "
                                 f"non-sample axis of an array of shape {X.shape}")
            axis = self.channel_axis % X.ndim
            others = tuple(a for a in range(X.ndim) if a != axis)
            self.mean_ = X.mean(axis=others, keepdims=True)[0]
        return self

    def transform(self, X):
        return self._checked(X, "transform") - self.mean_

    def inverse_transform(self, X):
        return self._checked(X, "inverse_transform") + self.mean_

    def _checked(self, X, method):
        if self.mean_ is None:
            raise RuntimeError(f"MeanSubtraction: call fit before {method}")
        X = _as_real(f"MeanSubtraction.{method}", X, two_d=False)
        matches = X.ndim == self.mean_.ndim + 1 and all(
            m in (1, d) if self.per == "channel" else m == d
            for d, m in zip(X.shape[1:], self.mean_.shape))
        if not matches:
            raise ValueError(f"MeanSubtraction: fitted on samples of shape {self.mean_.shape} "
                             f"(per {self.per}), got an array of shape {X.shape}")
        return X


class StandardScaler(_Transformer):
    """Per-feature standardization: (X - mean) / std, with the mean and std of the training data.

    Features with zero variance are left centred but unscaled (their std is taken as 1).
    """

    def __init__(self, eps=1e-12):
        self.eps = check_float("StandardScaler: eps", eps, 0.0)
        self.mean_ = self.scale_ = None

    def fit(self, X):
        X = _as_2d("StandardScaler.fit", X)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > self.eps, std, 1.0)
        return self

    def transform(self, X):
        X = _as_2d("StandardScaler.transform", X)
        self._check_fitted(X, "transform")
        return (X - self.mean_) / self.scale_

    def inverse_transform(self, X):
        X = _as_2d("StandardScaler.inverse_transform", X)
        self._check_fitted(X, "inverse_transform")
        return X * self.scale_ + self.mean_

    def _check_fitted(self, X, method):
        if self.mean_ is None:
            raise RuntimeError(f"StandardScaler: call fit before {method}")
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"StandardScaler: fitted on {self.mean_.shape[0]} features, got "
                             f"{X.shape[1]}")


class PCA(_Transformer):
    """Principal component analysis on centred data.

    n_components: an int k (keep the top k components), a float in (0, 1) (keep the fewest
    components whose explained variance reaches that fraction) or None (all). whiten divides each
    component by sqrt(eigenvalue + eps), so whitened training data has covariance ~ identity.
    Attributes after fit: mean_, components_ (D, k) columns, explained_variance_ (k,),
    explained_variance_ratio_ (k,).
    """

    def __init__(self, n_components=None, whiten=False, eps=1e-5):
        self.n_components = n_components
        if n_components is not None:
            self._n_kept(None, None)  # the checks that need no data, up front
        self.whiten = check_bool(f"{type(self).__name__}: whiten", whiten)
        self.eps = check_float(f"{type(self).__name__}: eps", eps, 0.0)
        self.mean_ = self.components_ = None

    def fit(self, X):
        X = _as_2d("PCA.fit", X)
        self.mean_, eigenvalues, eigenvectors = _covariance_eigh(X)
        k = self._n_kept(eigenvalues, X.shape[1])
        total = eigenvalues.sum()
        self.components_ = eigenvectors[:, :k]
        self.explained_variance_ = eigenvalues[:k]
        self.explained_variance_ratio_ = eigenvalues[:k] / total if total > 0 else eigenvalues[:k]
        return self

    def _n_kept(self, eigenvalues, n_features):
        k = self.n_components
        if k is None:
            return n_features
        if isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)):
            if not 1 <= k <= (n_features or k):
                bound = f"lie in [1, {n_features}]" if n_features else "be >= 1"
                raise ValueError(f"PCA: n_components must {bound}, got {k}")
            return int(k)
        if isinstance(k, numbers.Real) and 0 < k < 1 and eigenvalues is None:
            return None
        if isinstance(k, numbers.Real) and 0 < k < 1:
            ratio = np.cumsum(eigenvalues) / eigenvalues.sum()
            return int(np.searchsorted(ratio, k) + 1)
        raise ValueError(f"PCA: n_components must be an int, a fraction in (0, 1) or None, got "
                         f"{k!r}")

    def transform(self, X):
        Z = _matmul(self._checked(X, "transform") - self.mean_, self.components_)
        if self.whiten:
            Z /= np.sqrt(self.explained_variance_ + self.eps)
        return Z

    def inverse_transform(self, Z):
        if self.components_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit before inverse_transform")
        Z = _as_2d(f"{type(self).__name__}.inverse_transform", Z)
        if Z.shape[1] != self.components_.shape[1]:
            raise ValueError(f"{type(self).__name__}.inverse_transform: expected "
                             f"{self.components_.shape[1]} components, got {Z.shape[1]}")
        if self.whiten:
            Z = Z * np.sqrt(self.explained_variance_ + self.eps)
        return _matmul(Z, self.components_, trans_b=True) + self.mean_

    def _checked(self, X, method):
        if self.components_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit before {method}")
        X = _as_2d(f"{type(self).__name__}.{method}", X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"{type(self).__name__}: fitted on {self.mean_.shape[0]} features, "
                             f"got {X.shape[1]}")
        return X


class ZCAWhitening(PCA):
    """ZCA whitening: PCA whitening rotated back, X_white = (X - mean) U diag(1/sqrt(S + eps)) U^T.
    The whitened training data has covariance ~ identity and stays closest to the original."""

    def __init__(self, eps=1e-5):
        super().__init__(n_components=None, whiten=True, eps=eps)

    def transform(self, X):
        return _matmul(super().transform(X), self.components_, trans_b=True)

    def inverse_transform(self, X):
        if self.components_ is None:
            raise RuntimeError("ZCAWhitening: call fit before inverse_transform")
        return super().inverse_transform(_matmul(_as_2d("ZCAWhitening.inverse_transform", X),
                                                 self.components_))


def _matmul(A, B, trans_a=False, trans_b=False):
    # Every matrix multiply goes through the GEMM module (in A's float dtype).
    return _backend.kernels.matmul(A, B, trans_a=trans_a, trans_b=trans_b)


def _covariance_eigh(X):
    """Mean, and eigenvalues (descending) and eigenvectors (columns) of the covariance X^T X / N."""
    mean = X.mean(axis=0)
    centred = X - mean
    covariance = _matmul(centred, centred, trans_a=True) / X.shape[0]
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    return mean, np.clip(eigenvalues[order], 0, None), eigenvectors[:, order]


def _as_real(where, X, two_d=True):
    """X as a float64 array of real, finite numbers with samples and features, or a clear
    error: complex, object or string input is refused, not cast, and NaN/inf are refused rather
    than spread through the fitted statistics."""
    try:
        X = np.asarray(X)
    except Exception as error:  # ragged lists and such
        raise TypeError(f"{where}: X must be an array of real numbers: {error}") from None
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{where}: X must hold real numbers, got dtype {X.dtype}")
    if (X.ndim != 2 if two_d else X.ndim < 2) or 0 in X.shape:
        expected = "a 2-D array (N, D)" if two_d else "an (N, ...) array"
        raise ValueError(f"{where}: X must be {expected} with N >= 1 samples and >= 1 features, "
                         f"got shape {X.shape}")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{where}: X contains NaN or inf")
    return X


def _as_2d(where, X):
    return _as_real(where, X)
