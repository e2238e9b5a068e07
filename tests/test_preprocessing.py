"""Preprocessing (fastnn.preprocessing): statistics fitted on training data and applied to any
data; whitening gives identity covariance; PCA keeps the right components; inverse transforms;
per-feature and per-channel mean subtraction; errors."""
import numpy as np
import pytest

from fastnn.preprocessing import PCA, MeanSubtraction, StandardScaler, ZCAWhitening

D = 6
EIGENVALUES = np.array([5.0, 3.0, 1.0, 0.5, 0.3, 0.2])  # sum 10: cumulative 0.5 .8 .9 .95 .98 1


def exact_data(n=500, seed=0):
    """(X, mean, R): data whose covariance (X^T X / N after centring) has exactly EIGENVALUES,
    with eigenvectors the columns of the orthogonal R, around a non-zero mean."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, D))
    Z -= Z.mean(axis=0)
    U, _, _ = np.linalg.svd(Z, full_matrices=False)
    Z = U * np.sqrt(n)  # zero mean, Z^T Z / n = I
    R, _ = np.linalg.qr(rng.standard_normal((D, D)))
    mean = rng.uniform(-5, 5, D)
    return Z * np.sqrt(EIGENVALUES) @ R.T + mean, mean, R


def correlated(n, seed, d=D):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    return rng.standard_normal((n, d)) @ A + rng.uniform(-3, 3, d)


def covariance(Z):
    Zc = Z - Z.mean(axis=0)
    return Zc.T @ Zc / Z.shape[0]


# ------------------------------------------------------------------------------------------------
# Whitening: covariance ~ identity


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_pca_whitened_training_data_has_identity_covariance(eps):
    X = correlated(2000, 1)
    assert np.abs(covariance(X) - np.diag(np.diag(covariance(X)))).max() > 0.5  # correlated
    pca = PCA(whiten=True, eps=eps).fit(X)
    Z = pca.transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-10)
    S = pca.explained_variance_
    # exactly diag(S / (S + eps)): identity up to eps / min(S)
    np.testing.assert_allclose(covariance(Z), np.diag(S / (S + eps)), atol=1e-10)
    np.testing.assert_allclose(covariance(Z), np.eye(D), atol=2 * eps / S.min() + 1e-10)


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_zca_whitened_training_data_has_identity_covariance(eps):
    X = correlated(2000, 2)
    zca = ZCAWhitening(eps=eps).fit(X)
    Z = zca.transform(X)
    S, U = zca.explained_variance_, zca.components_
    np.testing.assert_allclose(covariance(Z), U @ np.diag(S / (S + eps)) @ U.T, atol=1e-10)
    np.testing.assert_allclose(covariance(Z), np.eye(D), atol=2 * eps / S.min() + 1e-10)
    # ZCA = U diag(1/sqrt(S + eps)) U^T: a symmetric positive-definite map, read off unit inputs
    W = zca.transform(zca.mean_ + np.eye(D))
    np.testing.assert_allclose(W, W.T, atol=1e-10)
    assert np.linalg.eigvalsh(W).min() > 0
    # ... the whitening closest to the data: each whitened feature correlates most with its own
    Xs, Zs = (X - X.mean(0)) / X.std(0), Z / Z.std(0)
    corr = Xs.T @ Zs / X.shape[0]
    assert np.all(np.argmax(np.abs(corr), axis=1) == np.arange(D))


def test_whitening_uses_training_statistics_on_new_data():
    X, X_new = correlated(1500, 3), correlated(1500, 3) + 1.0  # other samples, shifted by 1
    pca = PCA(whiten=True, eps=1e-12).fit(X)
    Z_new = pca.transform(X_new)
    want = (X_new - X.mean(0)) @ pca.components_ / np.sqrt(pca.explained_variance_ + 1e-12)
    np.testing.assert_allclose(Z_new, want, rtol=1e-10, atol=1e-10)
    assert np.abs(Z_new.mean(axis=0)).max() > 0.05  # not re-centred on the new data's mean


# ------------------------------------------------------------------------------------------------
# PCA: components and variance


@pytest.mark.parametrize("k", [1, 2, 4, D])
def test_pca_keeps_k_components(k):
    X, mean, R = exact_data()
    pca = PCA(n_components=k).fit(X)
    assert pca.components_.shape == (D, k)
    np.testing.assert_allclose(pca.mean_, mean, atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_, EIGENVALUES[:k], rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio_, EIGENVALUES[:k] / 10, rtol=1e-10)
    np.testing.assert_allclose(pca.components_.T @ pca.components_, np.eye(k), atol=1e-12)
    # the components are R's columns, up to sign
    np.testing.assert_allclose(np.abs(pca.components_.T @ R[:, :k]), np.eye(k), atol=1e-8)
    Z = pca.transform(X)
    assert Z.shape == (X.shape[0], k)
    np.testing.assert_allclose(Z.var(axis=0), EIGENVALUES[:k], rtol=1e-10)  # biased (/N)
    np.testing.assert_allclose(covariance(Z), np.diag(EIGENVALUES[:k]), atol=1e-10)


@pytest.mark.parametrize("fraction,k", [(0.3, 1), (0.7, 2), (0.85, 3), (0.92, 4), (0.97, 5),
                                        (0.99, 6)])
def test_pca_keeps_the_fewest_components_reaching_a_variance_fraction(fraction, k):
    X, _, _ = exact_data()
    pca = PCA(n_components=fraction).fit(X)
    assert pca.components_.shape == (D, k)
    assert pca.transform(X).shape == (X.shape[0], k)
    np.testing.assert_allclose(pca.explained_variance_ratio_, EIGENVALUES[:k] / 10, rtol=1e-10)
    assert pca.explained_variance_ratio_.sum() >= fraction
    assert pca.explained_variance_ratio_[:-1].sum() < fraction


def test_pca_all_components_by_default_and_like_sklearn():
    X = correlated(300, 4)
    pca = PCA().fit(X)
    assert pca.components_.shape == (D, D)
    assert pca.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(pca.explained_variance_) <= 0)  # sorted, largest first
    sklearn = pytest.importorskip("sklearn.decomposition")
    theirs = sklearn.PCA().fit(X)
    np.testing.assert_allclose(pca.explained_variance_ratio_, theirs.explained_variance_ratio_,
                               rtol=1e-9)
    np.testing.assert_allclose(np.abs(pca.components_.T @ theirs.components_.T), np.eye(D),
                               atol=1e-8)


def test_fit_transform_equals_fit_then_transform():
    X = correlated(200, 5)
    for make in (lambda: PCA(3, whiten=True), ZCAWhitening, StandardScaler, MeanSubtraction):
        a = make().fit_transform(X)
        model = make()
        assert model.fit(X) is model
        np.testing.assert_array_equal(a, model.transform(X))


# ------------------------------------------------------------------------------------------------
# inverse_transform


@pytest.mark.parametrize("make", [lambda: PCA(), lambda: PCA(whiten=True), lambda: ZCAWhitening(),
                                  lambda: ZCAWhitening(eps=0.1), StandardScaler, MeanSubtraction],
                         ids=["pca", "pca_whiten", "zca", "zca_big_eps", "standard", "mean"])
def test_inverse_transform_round_trips_exactly(make):
    X, X_new = correlated(400, 6), correlated(50, 7)
    model = make().fit(X)
    for data in (X, X_new):
        np.testing.assert_allclose(model.inverse_transform(model.transform(data)), data,
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_truncated_pca_inverse_is_the_projection_onto_the_kept_components(k, whiten):
    X, mean, R = exact_data()
    pca = PCA(n_components=k, whiten=whiten).fit(X)
    back = pca.inverse_transform(pca.transform(X))
    want = mean + (X - mean) @ R[:, :k] @ R[:, :k].T
    np.testing.assert_allclose(back, want, atol=1e-10)
    # a projection: idempotent, residual orthogonal to the kept components, and its mean squared
    # norm is the dropped variance
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(back)), back, atol=1e-10)
    np.testing.assert_allclose((X - back) @ pca.components_, 0, atol=1e-9)
    assert np.mean(np.sum((X - back) ** 2, axis=1)) == pytest.approx(EIGENVALUES[k:].sum(),
                                                                     rel=1e-10)


# ------------------------------------------------------------------------------------------------
# StandardScaler and MeanSubtraction


def test_standard_scaler():
    X = correlated(300, 8) * np.array([1, 10, 100, 0.1, 1, 1])
    X[:, 5] = 4.0  # a constant feature
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :5].std(axis=0), 1, rtol=1e-12)
    assert np.all(Z[:, 5] == 0) and scaler.scale_[5] == 1.0
    X_new = correlated(20, 9)
    np.testing.assert_allclose(scaler.transform(X_new), (X_new - X.mean(0)) / scaler.scale_)


def test_mean_subtraction_per_feature_is_the_mean_image():
    rng = np.random.default_rng(10)
    images = rng.uniform(0, 255, (40, 4, 5, 3))
    ms = MeanSubtraction().fit(images)
    assert ms.mean_.shape == (4, 5, 3)
    np.testing.assert_allclose(ms.mean_, images.mean(axis=0))
    np.testing.assert_allclose(ms.transform(images).mean(axis=0), 0, atol=1e-10)
    test_images = rng.uniform(0, 255, (7, 4, 5, 3))
    np.testing.assert_allclose(ms.transform(test_images), test_images - images.mean(axis=0))
    flat = images.reshape(40, -1)  # flattened images: the same mean, per pixel
    np.testing.assert_allclose(MeanSubtraction().fit(flat).mean_, ms.mean_.reshape(-1))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_mean_subtraction_per_channel(layout):
    rng = np.random.default_rng(11)
    channel_means = np.array([120.0, 60.0, 10.0])
    images = rng.normal(0, 20, (30, 4, 5, 3)) + channel_means  # NHWC
    axis = -1
    if layout == "NCHW":
        images, axis = images.transpose(0, 3, 1, 2), 1
    ms = MeanSubtraction(per="channel", channel_axis=axis).fit(images)
    assert ms.mean_.size == 3
    others = tuple(a for a in range(4) if a != (axis % 4))
    np.testing.assert_allclose(ms.mean_.reshape(-1), images.mean(axis=others))
    centred = ms.transform(images)
    assert centred.shape == images.shape
    np.testing.assert_allclose(centred.mean(axis=others), 0, atol=1e-10)
    # Only one number per channel was subtracted: differences within a channel are unchanged.
    np.testing.assert_allclose(np.diff(centred, axis=0), np.diff(images, axis=0), atol=1e-10)
    # Any image size: the per-channel mean applies to bigger images too.
    big_shape = (2, 8, 9, 3) if layout == "NHWC" else (2, 3, 8, 9)
    big = rng.normal(0, 1, big_shape)
    expand = (1, 1, 1, 3) if layout == "NHWC" else (1, 3, 1, 1)
    np.testing.assert_allclose(ms.transform(big), big - images.mean(axis=others).reshape(expand))
    np.testing.assert_allclose(ms.inverse_transform(centred), images, atol=1e-10)
    bad_channels = (2, 4, 5, 4) if layout == "NHWC" else (2, 4, 4, 5)
    with pytest.raises(ValueError):
        ms.transform(np.zeros(bad_channels))


@pytest.mark.parametrize("fitted,axis,data", [((30, 4, 5, 3), -1, (7, 3)),
                                               ((30, 3, 4, 5), 1, (7, 3)),
                                               ((50, D), -1, (D,))], ids=["NHWC", "NCHW", "2d"])
def test_mean_subtraction_per_channel_rejects_arrays_of_another_rank(fitted, axis, data):
    """Once broadcast instead: fitted on (30, 4, 5, 3) images, transform(np.zeros((7, 3)))
    returned shape (1, 7, 3)."""
    ms = MeanSubtraction(per="channel", channel_axis=axis)
    ms.fit(np.random.default_rng(12).normal(size=fitted))
    with pytest.raises(ValueError, match="shape"):
        ms.transform(np.zeros(data))
    with pytest.raises(ValueError, match="shape"):
        ms.inverse_transform(np.zeros(data))
    higher = np.zeros(fitted[1:] + (1,))[None]  # one more axis of size 1: also another rank
    with pytest.raises(ValueError, match="shape"):
        ms.transform(higher)


@pytest.mark.parametrize("axis", [4, 5, -5, 0, -4])
def test_mean_subtraction_rejects_a_channel_axis_out_of_range(axis):
    """Axes outside [-4, 4) and the sample axis are errors; once, channel_axis=5 silently used
    axis 5 % 4 = 1."""
    images = np.random.default_rng(13).normal(size=(30, 4, 5, 3))
    with pytest.raises(ValueError, match="channel_axis"):
        MeanSubtraction(per="channel", channel_axis=axis).fit(images)


# ------------------------------------------------------------------------------------------------
# Errors


ALL = {"mean": MeanSubtraction, "channel": lambda: MeanSubtraction(per="channel"),
       "standard": StandardScaler, "pca": PCA, "pca_k": lambda: PCA(2), "zca": ZCAWhitening}


@pytest.mark.parametrize("name", sorted(ALL))
def test_transform_before_fit_raises(name):
    with pytest.raises(RuntimeError, match="fit"):
        ALL[name]().transform(np.ones((3, D)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_inverse_transform_before_fit_raises_like_transform(name):
    """Once PCA raised ValueError 'expected the output of transform' and ZCAWhitening a numpy
    matmul ValueError."""
    with pytest.raises(RuntimeError, match="call fit before"):
        ALL[name]().inverse_transform(np.ones((3, 2)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_wrong_feature_count_raises(name):
    model = ALL[name]().fit(correlated(50, 14))
    for bad in (np.ones((3, D + 1)), np.ones((3, D - 1))):
        with pytest.raises(ValueError):
            model.transform(bad)
    if name != "channel":  # (per channel: test_mean_subtraction_per_channel_rejects_arrays...)
        with pytest.raises(ValueError):
            model.transform(np.ones(D))  # a single sample must be (1, D)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [np.zeros((0, D)), np.zeros(D)], ids=["empty", "1d"])
def test_fit_on_empty_or_1d_data_raises(name, bad):
    with pytest.raises(ValueError):
        ALL[name]().fit(bad)


@pytest.mark.parametrize("n_components", [0, -1, D + 1, 0.0, 1.0, 1.5, -0.5, "half", True])
def test_bad_n_components_raise(n_components):
    with pytest.raises(ValueError, match="n_components"):
        PCA(n_components=n_components).fit(correlated(50, 15))


def test_pca_inverse_transform_rejects_inputs_of_the_wrong_width():
    pca = PCA(2).fit(correlated(50, 16))
    with pytest.raises(ValueError):
        pca.inverse_transform(np.ones((3, D)))


def test_bad_mean_subtraction_options():
    with pytest.raises(ValueError, match="per"):
        MeanSubtraction(per="pixel")
    with pytest.raises(ValueError, match="channel_axis"):
        MeanSubtraction(per="channel", channel_axis=0).fit(np.ones((4, 3, 2)))
