"""Counting parameters, and the loss a network starts from."""
import math

import numpy as np

from .. import losses
from ..layers import Dense
from ..model import Sequential
from ..regularization import L2
from ._registry import Result, demo


def _count(sizes):
    model = Sequential(*[Dense(a, b, activation="relu") for a, b in zip(sizes, sizes[1:])],
                       seed=0)
    weights = sum(p.size for p in model.parameters() if p.is_weight)
    biases = sum(p.size for p in model.parameters() if not p.is_weight)
    return model, weights, biases


@demo("params", "learnable parameters of the notes' two example networks",
      "3-4-2: 26 parameters (20 weights, 6 biases); 3-4-4-1: 41 (32 weights, 9 biases)")
def params(fast, seed):
    networks = {(3, 4, 2): (20, 6, 26), (3, 4, 4, 1): (32, 9, 41)}
    rows, numbers, counted = [], {}, {}
    for sizes, (w_notes, b_notes, total_notes) in networks.items():
        _, weights, biases = _count(sizes)
        label = "-".join(map(str, sizes))
        counted[sizes] = (weights, biases)
        rows.append((f"{label} weights + biases = parameters",
                     f"{w_notes} + {b_notes} = {total_notes}",
                     f"{weights} + {biases} = {weights + biases}"))
        numbers[label] = weights + biases

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for ax, sizes in zip(axes, networks):
            xs = np.arange(len(sizes))
            nodes = [np.linspace(-(n - 1) / 2, (n - 1) / 2, n) for n in sizes]
            for x, (a, b) in enumerate(zip(nodes, nodes[1:])):
                for ya in a:
                    for yb in b:
                        ax.plot([x, x + 1], [ya, yb], color="0.6", linewidth=0.8, zorder=1)
            for x, ys in zip(xs, nodes):
                ax.scatter(np.full(ys.size, x), ys, s=220, zorder=2,
                           color="tab:green" if x == 0 else "tab:blue" if x < xs[-1] else
                           "tab:red", edgecolors="k")
            weights, biases = counted[sizes]
            ax.set_title(f"{'-'.join(map(str, sizes))}: {weights} weights + {biases} biases = "
                         f"{weights + biases}", fontsize=10)
            ax.axis("off")
        fig.tight_layout()
        return fig

    return Result("params", rows, numbers, draw)


@demo("initial-loss", "the loss at initialization with small weights, and with regularization",
      "softmax ~ ln 10 = 2.303, multiclass SVM ~ 9 for 10 classes; regularization raises it")
def initial_loss(fast, seed):
    rng = np.random.default_rng(seed)
    n, d, classes = (200 if fast else 1000), 64, 10
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    model = Sequential(Dense(d, 100, activation="relu", init="small"),
                       Dense(100, classes, init="small"), seed=seed)
    scores = model.forward(X, training=False)
    softmax, _ = losses.softmax_cross_entropy(scores, y)
    hinge, _ = losses.multiclass_hinge(scores, y)
    # The notes' sanity check raises the regularization strength with the data loss unchanged;
    # with 0.01 weights the penalty is 0.5 * lam * ||W||^2 ~ lam * 0.37 here.
    strengths = [0.0, 1.0, 10.0, 100.0]
    with_penalty = [float(softmax) + L2(lam).value(model) if lam else float(softmax)
                    for lam in strengths]
    rows = [("softmax loss, small weights", f"ln 10 = {math.log(10):.3f}", f"{softmax:.4f}"),
            ("multiclass SVM loss", f"{classes - 1} (C - 1)", f"{hinge:.4f}")]
    rows += [(f"softmax + L2 penalty, lam = {lam:g}", "raises the loss", f"{value:.4f}")
             for lam, value in zip(strengths[1:], with_penalty[1:])]
    numbers = {"softmax": float(softmax), "svm": float(hinge),
               "regularized": dict(zip(strengths, with_penalty))}

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        axes[0].bar(["softmax", "SVM"], [softmax, hinge], color=["tab:blue", "tab:orange"])
        axes[0].axhline(math.log(10), color="tab:blue", linestyle="--", label="ln 10")
        axes[0].axhline(classes - 1, color="tab:orange", linestyle="--", label="C - 1 = 9")
        axes[0].set_title("initial loss, 0.01 * randn weights", fontsize=10)
        axes[0].legend(fontsize=8)
        axes[1].plot(strengths, with_penalty, marker="o")
        axes[1].set_xscale("symlog", linthresh=1)
        axes[1].set_xlabel("L2 strength")
        axes[1].set_ylabel("softmax loss + penalty")
        axes[1].set_title("regularization raises the initial loss", fontsize=10)
        fig.tight_layout()
        return fig

    return Result("initial-loss", rows, numbers, draw)
