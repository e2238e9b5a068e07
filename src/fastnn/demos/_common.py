"""What several demos share: the notes' spiral data, full-batch training, decision regions."""
import numpy as np

from .. import data, losses
from ..optim import SGD
from ..preprocessing import StandardScaler
from ..regularization import L2


def spiral_data(points_per_class=100, classes=3, seed=0, noise=0.2):
    """The notes' 2-D spiral: `classes` arms of `points_per_class` points (radius 0..1, angle
    with Gaussian noise of standard deviation `noise`, 0.2 in the notes). Returns (X float64 (N, 2), y int64 (N,))."""
    rng = np.random.default_rng(seed)
    X = np.zeros((points_per_class * classes, 2))
    y = np.repeat(np.arange(classes), points_per_class)
    for j in range(classes):
        r = np.linspace(0.0, 1.0, points_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, points_per_class) + rng.standard_normal(
            points_per_class) * noise
        X[j * points_per_class:(j + 1) * points_per_class] = np.c_[r * np.sin(t), r * np.cos(t)]
    return X, y


def digits(seed=0, val_fraction=0.2):
    """The 8x8 digits, standardized with the training part's statistics:
    (X_train, y_train, X_val, y_val), float32."""
    X, y = data.load_digits()
    train, val = data.stratified_split(y, val_fraction, seed=seed)
    scaler = StandardScaler().fit(X[train])
    return (scaler.transform(X[train]).astype(np.float32), y[train],
            scaler.transform(X[val]).astype(np.float32), y[val])


def fit_full_batch(model, X, y, lr, iterations, l2=0.0, loss="softmax_cross_entropy",
                   optimizer=None):
    """Gradient descent on the whole data set, as the notes' spiral code does; returns the
    data loss + L2 penalty per iteration."""
    loss_fn = losses.get(loss)
    optimizer = optimizer or SGD(model.parameters(), lr=lr)
    penalty = L2(l2) if l2 else None
    history = np.empty(iterations)
    for i in range(iterations):
        value, _ = model.forward_backward(X, y, loss_fn)
        history[i] = value + (penalty(model) if penalty else 0.0)
        optimizer.step()
    return history


def accuracy(model, X, y):
    return float(np.mean(model.predict(X) == y))


def region_grid(X, steps=200):
    """A grid over the data's bounding box (with a margin): (xx, yy, points (steps^2, 2))."""
    low, high = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps), np.linspace(low[1], high[1], steps))
    return xx, yy, np.c_[xx.ravel(), yy.ravel()]


def boundary_fraction(labels):
    """Fraction of neighbouring grid cells with different predicted classes: longer, more
    convoluted decision boundaries give more."""
    changes = np.count_nonzero(labels[1:, :] != labels[:-1, :]) + np.count_nonzero(
        labels[:, 1:] != labels[:, :-1])
    return changes / (labels[1:, :].size + labels[:, 1:].size)


def region_labels(model, X, steps=200):
    """The model's predicted class over a grid around the data: (xx, yy, labels (steps, steps))."""
    xx, yy, grid = region_grid(X, steps)
    return xx, yy, model.predict(grid.astype(model.dtype)).reshape(xx.shape)


def draw_regions(ax, regions, X, y, title):
    xx, yy, labels = regions
    ax.contourf(xx, yy, labels, levels=np.arange(int(y.max()) + 2) - 0.5, cmap="Spectral",
                alpha=0.6)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="Spectral", edgecolors="k", linewidths=0.3)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
