"""Visualizing what a network learned: t-SNE of its features, saliency maps."""
import numpy as np

from ..layers import Dense
from ..model import Sequential
from ..optim import SGD
from ._common import digits
from ._registry import Result, demo
from .training import _fit


def _tsne():
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ImportError("the features demo uses scikit-learn's TSNE, which fastnn installs with "
                          "its `datasets` extra: pip install \"fastnn[datasets]\" (from a clone: "
                          "pip install \".[datasets]\")") from None
    return TSNE


def knn_accuracy(points, labels, k=5):
    """Leave-one-out k-nearest-neighbour accuracy: how often a point's k nearest other points
    vote for its own class."""
    squared = np.sum(points ** 2, axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * points @ points.T
    np.fill_diagonal(distances, np.inf)
    nearest = np.argpartition(distances, k, axis=1)[:, :k]
    votes = np.apply_along_axis(np.bincount, 1, labels[nearest], minlength=labels.max() + 1)
    return float(np.mean(votes.argmax(axis=1) == labels))


def trained_digits_net(seed, epochs):
    """A 64-128-64-10 ReLU net trained on the digits' training part; (model, data)."""
    X, y, Xv, yv = digits(seed=seed)
    model = Sequential(Dense(64, 128, activation="relu"), Dense(128, 64, activation="relu"),
                       Dense(64, 10), seed=seed)
    _fit(model, SGD(model.parameters(), lr=0.05, momentum=0.9), X, y, epochs, 32, seed,
         monitor=False)
    return model, (X, y, Xv, yv)


@demo("features", "2-D t-SNE of the last hidden layer's activations on the digits (scikit-learn)",
      "the network's codes cluster by class: nearby points in the embedding share a class")
def features(fast, seed):
    TSNE = _tsne()  # before any training: the extra is needed
    model, (X, y, Xv, yv) = trained_digits_net(seed, 10 if fast else 30)
    points = np.concatenate([Xv, X])  # the held-out digits first
    labels = np.concatenate([yv, y])
    # t-SNE is the slow part: the 360 held-out digits and 440 training digits (fast: 200
    # held-out digits, the hidden layer's map only)
    points, labels = (points[:200], labels[:200]) if fast else (points[:800], labels[:800])
    H = points
    for layer in model.layers[:-1]:  # the scores layer left out: its input is the last code
        H = layer(H)
    embeddings = {}
    for name, data in ((("pixels", points),) if not fast else ()) + (("last hidden layer", H),):
        embeddings[name] = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30,
                                max_iter=500).fit_transform(
                                    np.asarray(data, np.float64))
    accuracy = {name: knn_accuracy(E, labels) for name, E in embeddings.items()}
    val_accuracy = float(np.mean(model.predict(Xv) == yv))
    rows = [("network's validation accuracy", "", f"{val_accuracy:.1%}")]
    rows += [(f"5-NN accuracy in the t-SNE map of the {name}",
              "clusters by class" if name != "pixels" else "", f"{value:.1%}")
             for name, value in accuracy.items()]
    numbers = {"knn_hidden": accuracy["last hidden layer"], "knn_pixels": accuracy.get("pixels"),
               "val_accuracy": val_accuracy}

    def draw(plt):
        fig, axes = plt.subplots(1, len(embeddings), figsize=(5 * len(embeddings), 4.8),
                                 squeeze=False)
        for ax, (name, E) in zip(axes[0], embeddings.items()):
            scatter = ax.scatter(E[:, 0], E[:, 1], c=labels, cmap="tab10", s=5)
            ax.set_title(f"t-SNE of the {name} (5-NN accuracy {accuracy[name]:.1%})",
                         fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(scatter, ax=axes[0].tolist(), ticks=range(10), label="digit")
        return fig

    return Result("features", rows, numbers, draw)
