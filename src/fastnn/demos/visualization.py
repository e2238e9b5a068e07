"""Visualizing what a network learned: t-SNE of its features, saliency maps."""
import numpy as np

from .. import _backend
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
    gram = _backend.kernels.matmul(points, points, trans_b=True)
    distances = squared[:, None] + squared[None, :] - 2 * gram
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
        # exact: O(N^2), and faster than Barnes-Hut at the fast mode's 200 points
        embeddings[name] = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30,
                                max_iter=500, method="exact" if fast else "barnes_hut"
                                ).fit_transform(
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


@demo("saliency", "gradient of the class score w.r.t. the input pixels on the digits (8x8 maps)",
      "the gradient's magnitude shows which pixels the class score depends on: changing the "
      "most salient pixels changes the score far more than changing as many random ones")
def saliency(fast, seed):
    model, (X, y, Xv, yv) = trained_digits_net(seed, 10 if fast else 30)
    images = Xv[:100] if fast else Xv
    labels = yv[: len(images)]
    scores = model.forward(images, training=True)  # no dropout or BatchNorm: as in inference
    classes = scores.argmax(axis=1)
    rows_index = np.arange(len(images))
    dscores = np.zeros_like(scores)
    dscores[rows_index, classes] = 1.0  # d(score of the predicted class) / d(scores)
    model.zero_grad()
    gradient = model.backward(dscores, input_grad=True)
    salient = np.abs(gradient)
    # The check: set the k most salient pixels of each image to the mean (0 after
    # standardization) and see the class score fall; then k pixels picked at random.
    k = 8
    rng = np.random.default_rng(seed)
    top = np.argsort(-salient, axis=1)[:, :k]
    random = np.argsort(rng.random(salient.shape), axis=1)[:, :k]
    drops = {}
    for name, picked in (("salient", top), ("random", random)):
        changed = images.copy()
        changed[rows_index[:, None], picked] = 0.0
        after = model.forward(changed, training=False)[rows_index, classes]
        drops[name] = float(np.mean(scores[rows_index, classes] - after))
    accuracy = float(np.mean(classes == labels))
    rows = [("validation accuracy of the net", "", f"{accuracy:.1%}"),
            (f"class score drop, {k} most salient pixels set to the mean", "large",
             f"{drops['salient']:.2f}"),
            (f"class score drop, {k} random pixels set to the mean", "small",
             f"{drops['random']:.2f}")]
    numbers = {"drop_salient": drops["salient"], "drop_random": drops["random"],
               "accuracy": accuracy}
    shown = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)
             if np.any(labels == digit)]

    def draw(plt):
        fig, axes = plt.subplots(2, len(shown), figsize=(1.3 * len(shown), 3.2))
        for column, i in enumerate(shown):
            axes[0, column].imshow(images[i].reshape(8, 8), cmap="gray_r")
            axes[0, column].set_title(f"{labels[i]} (as {classes[i]})", fontsize=8)
            axes[1, column].imshow(salient[i].reshape(8, 8), cmap="hot")
            for ax in axes[:, column]:
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("digit", fontsize=8)
        axes[1, 0].set_ylabel("|d score / d pixel|", fontsize=8)
        fig.tight_layout()
        return fig

    return Result("saliency", rows, numbers, draw)
