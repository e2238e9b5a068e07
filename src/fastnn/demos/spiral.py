"""The notes' spiral: a linear classifier against a small network, and network capacity."""
import numpy as np

from ..layers import Dense
from ..model import Sequential
from ..optim import SGD
from ._common import accuracy, boundary_fraction, draw_regions, fit_full_batch, region_labels, \
    spiral_data
from ._registry import Result, demo


def two_layer(hidden, X, y, l2, iterations, seed, lr=0.5):
    """A 2-layer ReLU net (one hidden layer) trained full-batch with momentum."""
    model = Sequential(Dense(2, hidden, activation="relu", init=0.01), Dense(hidden, 3, init=0.01),
                       seed=seed)
    fit_full_batch(model, X, y, lr, iterations, l2=l2,
                   optimizer=SGD(model.parameters(), lr=lr, momentum=0.9))
    return model


@demo("spiral", "linear softmax classifier vs a 2-layer net with 100 hidden ReLUs on the spiral",
      "linear softmax ~49-53% training accuracy; 2-layer net ~98%")
def spiral(fast, seed):
    X, y = spiral_data(seed=seed)
    X = X.astype(np.float32)
    # The notes' recipe: full-batch gradient descent, step size 1, L2 1e-3, weights 0.01 * randn;
    # 200 steps for the linear classifier, 10000 for the network (fast: 500 with momentum).
    linear = Sequential(Dense(2, 3, init=0.01), seed=seed)
    fit_full_batch(linear, X, y, 1.0, 200, l2=1e-3)
    if fast:
        net = two_layer(100, X, y, 1e-3, 500, seed)
    else:
        net = Sequential(Dense(2, 100, activation="relu", init=0.01), Dense(100, 3, init=0.01),
                         seed=seed)
        fit_full_batch(net, X, y, 1.0, 10000, l2=1e-3)
    linear_accuracy, net_accuracy = accuracy(linear, X, y), accuracy(net, X, y)
    rows = [("linear softmax, training accuracy", "49-53%", f"{linear_accuracy:.1%}"),
            ("2-layer net (100 ReLUs), training accuracy", "98%", f"{net_accuracy:.1%}")]
    numbers = {"linear_accuracy": linear_accuracy, "two_layer_accuracy": net_accuracy}
    regions = [region_labels(linear, X), region_labels(net, X)]

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        draw_regions(axes[0], regions[0], X, y, f"linear softmax: {linear_accuracy:.1%}")
        draw_regions(axes[1], regions[1], X, y, f"2-layer, 100 ReLUs: {net_accuracy:.1%}")
        fig.tight_layout()
        return fig

    return Result("spiral", rows, numbers, draw)


@demo("capacity", "3, 6 and 20 hidden neurons on the spiral, then 20 under increasing L2",
      "more neurons: more complex decision regions; more L2: smoother regions")
def capacity(fast, seed):
    X, y = spiral_data(seed=seed)
    X = X.astype(np.float32)
    iterations = 1000 if fast else 3000
    configs = [(3, 0.0), (6, 0.0), (20, 0.0), (20, 1e-3), (20, 3e-3), (20, 1e-2)]
    runs = []
    for hidden, l2 in configs:
        model = two_layer(hidden, X, y, l2, iterations, seed, lr=0.2)
        regions = region_labels(model, X, steps=120)
        runs.append(dict(hidden=hidden, l2=l2, accuracy=accuracy(model, X, y),
                         boundary=boundary_fraction(regions[2]), regions=regions))
    # "boundary cells": the fraction of neighbouring cells of a 120 x 120 grid whose predicted
    # classes differ, a measure of how long and convoluted the decision boundary is.
    rows = [(f"{r['hidden']} neurons, L2 {r['l2']:g}: accuracy, boundary cells",
             "more neurons: more complex" if r["l2"] == 0 else "more L2: smoother",
             f"{r['accuracy']:.1%}, {r['boundary']:.2%}") for r in runs]
    numbers = {f"accuracy_{r['hidden']}_{r['l2']:g}": r["accuracy"] for r in runs}
    numbers.update({f"boundary_{r['hidden']}_{r['l2']:g}": r["boundary"] for r in runs})

    def draw(plt):
        fig, axes = plt.subplots(2, 3, figsize=(9, 6))
        for ax, r in zip(axes.ravel(), runs):
            draw_regions(ax, r["regions"], X, y, f"{r['hidden']} neurons, L2 {r['l2']:g}: "
                                                  f"{r['accuracy']:.0%}")
        fig.tight_layout()
        return fig

    return Result("capacity", rows, numbers, draw)
