"""Plots of a training History (matplotlib, from the `plot` extra)."""
import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib, which fastnn installs with its `plot` extra: "
                          "pip install \"fastnn[plot]\" (from a clone: "
                          "pip install \".[plot]\")") from None
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def smooth(values, window):
    """Moving average over the last `window` iterations (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_history(history, path):
    plt = _pyplot()
    path = str(path)
    loss_path, accuracy_path = f"{path}-loss.png", f"{path}-accuracy.png"

    fig, ax = plt.subplots(figsize=(7, 4))
    iterations = np.arange(1, len(history.loss) + 1)
    ax.plot(iterations, history.loss, color="tab:blue", alpha=0.3, linewidth=0.8,
            label="data loss per iteration")
    window = max(1, min(len(history.loss), max(5, len(history.loss) // 25)))
    ax.plot(iterations, smooth(history.loss, window), color="tab:blue",
            label=f"moving average ({window} iterations)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if len(history.loss) and min(history.loss) > 0:
        ax.set_yscale("log")
    ax.legend()
    ax.set_title("Loss")
    fig.tight_layout()
    fig.savefig(loss_path, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    for values, label in ((history.train_accuracy, "train"), (history.val_accuracy, "validation")):
        if any(a is not None for a in values):
            ax.plot(history.epochs, values, marker="o", label=label)
            plotted = True
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy")
    if plotted:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no accuracy for this loss (regression)", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(accuracy_path, dpi=100)
    plt.close(fig)
    return loss_path, accuracy_path
