"""Babysitting the learning process: learning rates, activations, dead units, dropout."""
import warnings

import numpy as np

from ..layers import Dense, Dropout
from ..model import Sequential
from ..optim import SGD, Adam
from ..plotting import smooth
from ..trainer import Trainer, TrainingWarning
from ._common import accuracy, digits, draw_regions, region_labels, spiral_data
from ._registry import Result, demo


def _fit(model, optimizer, X, y, epochs, batch_size, seed, validation_data=None, monitor=True):
    """Trainer.fit, quiet: the demos show the warnings' subject themselves."""
    trainer = Trainer(model, optimizer, batch_size=batch_size, epochs=epochs, seed=seed,
                      progress=False, monitor=monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        return trainer.fit(X, y, validation_data=validation_data)


def _mlp(sizes, activation, seed, dropout=0.0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(Dense(a, b, activation="identity" if last else activation))
        if dropout and not last:
            layers.append(Dropout(dropout))
    return Sequential(*layers, seed=seed)


@demo("learning-rate", "loss curves for a too low, good, too high and very high learning rate",
      "low: slow, nearly linear decrease; high: fast drop, then a plateau above the good one; "
      "very high: the loss explodes; update/weight ratio ~1e-3 for a good one")
def learning_rate(fast, seed):
    X, y = spiral_data(seed=seed)
    X = X.astype(np.float32)
    epochs = 40 if fast else 100
    rates = {"low": 1e-3, "good": 1.0, "high": 4.0, "very high": 100.0}
    runs = {}
    for label, lr in rates.items():
        model = _mlp([2, 100, 3], "relu", seed)
        history = _fit(model, SGD(model.parameters(), lr=lr), X, y, epochs, 30, seed)
        ratios = [r["0.W"] for r in history.update_ratio]
        runs[label] = dict(lr=lr, loss=np.array(history.loss), stop=history.stop_reason,
                           final=float(np.mean(history.train_loss[-10:])) if
                           history.train_loss else float("inf"),
                           ratio=float(np.median(ratios)) if ratios else float("nan"))
    initial = float(runs["good"]["loss"][0])
    peak = float(np.max(runs["very high"]["loss"]))
    rows = [(f"{label} (lr {r['lr']:g}): mean training loss, last 10 epochs",
             {"low": "stays high", "good": "lowest", "high": "plateaus higher",
              "very high": "explodes"}[label], f"{r['final']:.3f}") for label, r in runs.items()]
    rows.append(("very high: largest loss / initial loss", "explodes", f"{peak / initial:.3g}"))
    rows.append(("good: update/weight ratio, first layer (median)", "~1e-3",
                 f"{runs['good']['ratio']:.1e}"))
    numbers = {f"final_{label.replace(' ', '_')}": r["final"] for label, r in runs.items()}
    numbers.update(good_ratio=runs["good"]["ratio"], explosion=peak / initial)

    def draw(plt):
        fig, ax = plt.subplots(figsize=(7, 4))
        colors = {"low": "tab:blue", "good": "tab:red", "high": "tab:green",
                  "very high": "gold"}
        for label, r in runs.items():
            loss = np.minimum(r["loss"], 1e3)  # the exploding run, drawn as far as it fits
            ax.plot(np.arange(1, loss.size + 1), smooth(loss, 30), color=colors[label],
                    label=f"{label} learning rate ({r['lr']:g})")
        ax.set_yscale("log")
        ax.set_xlabel("iteration (batches of 30)")
        ax.set_ylabel("training loss (moving average)")
        ax.set_title("learning rates", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return Result("learning-rate", rows, numbers, draw)


@demo("relu-vs-tanh", "epochs to a training-loss threshold for ReLU and tanh on the same net",
      "ReLU converges several times faster (Krizhevsky et al.: 6x, to 25% training error)")
def relu_vs_tanh(fast, seed):
    X, y = spiral_data(seed=seed)
    X = X.astype(np.float32)
    threshold, epochs = 0.25, (80 if fast else 300)
    curves, reached = {}, {}
    for activation in ("relu", "tanh"):
        # each with its own default initialization: He for ReLU, Xavier for tanh
        model = _mlp([2, 100, 3], activation, seed)
        history = _fit(model, SGD(model.parameters(), lr=1.0), X, y, epochs, 30, seed,
                       monitor=False)
        curves[activation] = np.array(history.train_loss)
        below = np.flatnonzero(curves[activation] < threshold)
        reached[activation] = int(below[0]) + 1 if below.size else None
    relu, tanh = reached["relu"], reached["tanh"]
    speedup = tanh / relu if relu and tanh else float("nan")
    rows = [(f"epochs to training loss < {threshold}: ReLU / tanh", "",
             f"{relu} / {tanh}"),
            ("speed-up of ReLU", "several times (6x in AlexNet)", f"{speedup:.1f}x")]
    numbers = {"relu_epochs": relu, "tanh_epochs": tanh, "speedup": speedup}

    def draw(plt):
        fig, ax = plt.subplots(figsize=(7, 4))
        for activation, style in (("relu", "-"), ("tanh", "--")):
            curve = curves[activation]
            ax.plot(np.arange(1, curve.size + 1), curve, style,
                    label=f"{activation}: below {threshold} at epoch {reached[activation]}")
        ax.axhline(threshold, color="0.5", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"2-layer net, 100 hidden units, SGD lr 1.0: ReLU {speedup:.1f}x faster",
                     fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return Result("relu-vs-tanh", rows, numbers, draw)


@demo("dead-relu", "dead ReLUs per layer over training: a good vs a too high learning rate",
      "a too high learning rate can leave as much as 40% of the network dead; a good one few")
def dead_relu(fast, seed):
    X, y, _, _ = digits(seed=seed)
    epochs = 6 if fast else 20
    runs = {}
    for label, lr in (("good", 0.05), ("too high", 1.0)):
        model = _mlp([64, 100, 100, 10], "relu", seed)
        history = _fit(model, SGD(model.parameters(), lr=lr), X, y, epochs, 32, seed)
        # per epoch: each ReLU layer's fraction of units that never fired on that epoch's data
        fractions = np.array([list(d.values()) for d in history.dead_fraction])
        runs[label] = dict(lr=lr, fractions=fractions, loss=history.train_loss[-1],
                           stop=history.stop_reason)
    rows = []
    for label, r in runs.items():
        last = r["fractions"][-1]
        per_layer = " / ".join(f"{f:.0%}" for f in last)
        rows.append((f"{label} lr {r['lr']:g}: dead per layer (1 / 2), whole net, after "
                     f"{len(r['fractions'])} epochs",
                     "few" if label == "good" else "up to ~40% of the net",
                     f"{per_layer}, {last.mean():.0%}"))
    numbers = {"good_dead": float(runs["good"]["fractions"][-1].max()),
               "high_dead": float(runs["too high"]["fractions"][-1].max()),
               "high_dead_net": float(runs["too high"]["fractions"][-1].mean())}

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), sharey=True)
        for ax, (label, r) in zip(axes, runs.items()):
            epochs_run = np.arange(1, len(r["fractions"]) + 1)
            for layer in range(r["fractions"].shape[1]):
                ax.plot(epochs_run, r["fractions"][:, layer], marker="o", markersize=3,
                        label=f"ReLU layer {layer + 1}")
            ax.set_title(f"{label} learning rate ({r['lr']:g})", fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylim(-0.02, 1.02)
        axes[0].set_ylabel("fraction of dead units")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        return fig

    return Result("dead-relu", rows, numbers, draw)


@demo("dropout", "train/validation accuracy with and without dropout on a net that overfits",
      "dropout (p = 0.5) narrows the train/validation gap of an overfitting net")
def dropout(fast, seed):
    # The spiral with a quarter of its training labels replaced by random ones: a large net
    # memorizes them (training accuracy above the ~83% of labels that are right) and its
    # validation accuracy on clean points suffers.
    X, y = spiral_data(seed=seed)
    X = X.astype(np.float32)
    rng = np.random.default_rng(seed)
    flipped = rng.random(y.size) < 0.25
    y = y.copy()
    y[flipped] = rng.integers(0, 3, int(flipped.sum()))
    Xv, yv = spiral_data(300, seed=seed + 1)
    Xv = Xv.astype(np.float32)
    width, epochs, batch = (128, 800, 300) if fast else (128, 1000, 100)
    runs = {}
    for p in (0.0, 0.5):
        model = _mlp([2, width, width, 3], "relu", seed, dropout=p)
        _fit(model, Adam(model.parameters(), lr=1e-2), X, y, epochs, batch, seed, monitor=False)
        train, val = accuracy(model, X, y), accuracy(model, Xv, yv)
        runs[p] = dict(train=train, val=val, gap=train - val, regions=region_labels(model, X))
    rows = [(f"{'dropout 0.5' if p else 'no dropout'}: train / validation accuracy, gap",
             "smaller gap" if p else "overfits", f"{r['train']:.1%} / {r['val']:.1%}, "
                                                 f"{r['gap']:+.1%}") for p, r in runs.items()]
    numbers = {"gap_without": runs[0.0]["gap"], "gap_with": runs[0.5]["gap"],
               "val_without": runs[0.0]["val"], "val_with": runs[0.5]["val"]}

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
        for ax, (p, r) in zip(axes, runs.items()):
            draw_regions(ax, r["regions"], X, y, f"{'dropout 0.5' if p else 'no dropout'}: "
                         f"train {r['train']:.0%}, validation {r['val']:.0%}")
        fig.suptitle(f"2-{width}-{width}-3 ReLU net, 25% of the training labels randomized "
                     "(points: training labels)", fontsize=9)
        fig.tight_layout()
        return fig

    return Result("dropout", rows, numbers, draw)
