"""Data preprocessing, as the notes draw it."""
import numpy as np

from ..preprocessing import PCA, MeanSubtraction, StandardScaler
from ._registry import Result, demo


@demo("preprocessing", "2-D data zero-centred, normalized, decorrelated and whitened",
      "zero-centring moves the mean to 0; normalizing gives each dimension unit std; PCA makes "
      "the covariance diagonal; whitening makes it the identity")
def preprocessing(fast, seed):
    rng = np.random.default_rng(seed)
    # correlated 2-D Gaussian data off the origin, with dimensions of different scales
    cov = np.array([[3.0, 1.6], [1.6, 1.2]])
    X = rng.multivariate_normal([4.0, 2.0], cov, size=500 if fast else 1000)
    steps = {"original": X,
             "zero-centred": MeanSubtraction().fit_transform(X),
             "normalized": StandardScaler().fit_transform(X),
             "decorrelated (PCA)": PCA().fit_transform(X),
             "whitened (PCA)": PCA(whiten=True).fit_transform(X)}
    stats = {name: (Z.mean(axis=0), np.cov(Z, rowvar=False, bias=True)) for name, Z in
             steps.items()}

    def fmt(values):
        return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"

    original_mean, original_cov = stats["original"]
    rows = [("original: mean, std, correlation", "", f"{fmt(original_mean)}, "
             f"{fmt(np.sqrt(np.diag(original_cov)))}, "
             f"{original_cov[0, 1] / np.sqrt(original_cov[0, 0] * original_cov[1, 1]):.3f}"),
            ("zero-centred: mean", "0", fmt(stats["zero-centred"][0])),
            ("normalized: std per dimension", "1", fmt(np.sqrt(np.diag(stats["normalized"][1])))),
            ("decorrelated: covariance off-diagonal", "0",
             f"{stats['decorrelated (PCA)'][1][0, 1]:.2g}"),
            ("whitened: covariance", "identity", fmt(stats["whitened (PCA)"][1].ravel()))]
    numbers = {"centred_mean": float(np.abs(stats["zero-centred"][0]).max()),
               "normalized_std": np.sqrt(np.diag(stats["normalized"][1])).tolist(),
               "decorrelated_offdiagonal": float(abs(stats["decorrelated (PCA)"][1][0, 1])),
               "original_offdiagonal": float(abs(original_cov[0, 1])),
               "whitened_error": float(np.abs(stats["whitened (PCA)"][1] - np.eye(2)).max())}

    def draw(plt):
        fig, axes = plt.subplots(1, len(steps), figsize=(15, 3.4))
        for ax, (name, Z) in zip(axes, steps.items()):
            ax.scatter(Z[:, 0], Z[:, 1], s=4, alpha=0.5)
            limit = max(float(np.abs(Z).max()), 1.0) * 1.05
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            ax.axhline(0, color="0.6", linewidth=0.6)
            ax.axvline(0, color="0.6", linewidth=0.6)
            ax.set_aspect("equal")
            ax.set_title(name, fontsize=10)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        return fig

    return Result("preprocessing", rows, numbers, draw)
