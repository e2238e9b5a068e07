"""Weight initialization: how activations' spread survives ten layers."""
import numpy as np

from ..layers import Dense
from ..model import Sequential
from ._registry import Result, demo

# (label, activation, init): the lecture's figures, then ReLU with Xavier against He.
CONFIGS = (("tanh, 0.01 * randn", "tanh", 0.01), ("tanh, 1.0 * randn", "tanh", 1.0),
           ("tanh, Xavier", "tanh", "xavier"), ("ReLU, Xavier", "relu", "xavier"),
           ("ReLU, He", "relu", "he"))


def layer_activations(activation, init, X, layers=10, width=500, seed=0):
    """Each hidden layer's output for X through `layers` Dense(width, activation, init) layers."""
    model = Sequential(*[Dense(X.shape[1] if i == 0 else width, width, activation=activation,
                               init=init) for i in range(layers)], seed=seed)
    outputs, H = [], X
    for layer in model.layers:
        H = layer(H).copy()  # a layer's output lives in its buffer, which the next call reuses
        outputs.append(H)
    return outputs


@demo("init", "activation statistics through a 10-layer, 500-unit network for five inits",
      "tanh: 0.01 * randn collapses to 0, 1.0 * randn saturates at +-1, Xavier keeps a spread; "
      "ReLU: He keeps the variance, Xavier halves it per layer")
def init(fast, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((100 if fast else 1000, 500)).astype(np.float32)
    stats = {}
    for label, activation, scale in CONFIGS:
        outputs = layer_activations(activation, scale, X, seed=seed)
        stds = np.array([float(H.std()) for H in outputs])
        saturated = np.array([float(np.mean(np.abs(H) > 0.99)) for H in outputs])
        samples = [H.ravel()[rng.integers(0, H.size, 4000)] for H in outputs]  # histograms
        stats[label] = dict(std=stds, saturated=saturated, samples=samples,
                            variance_ratio=float(np.exp(np.mean(np.diff(np.log(stds ** 2))))))
    small, large, xavier = (stats[c[0]] for c in CONFIGS[:3])
    relu_xavier, relu_he = stats["ReLU, Xavier"], stats["ReLU, He"]
    rows = [("tanh 0.01*randn: std at layers 1 / 10", "collapses toward 0",
             f"{small['std'][0]:.2g} / {small['std'][-1]:.2g}"),
            ("tanh 1.0*randn: units with |a| > 0.99, layer 10", "almost all saturated",
             f"{large['saturated'][-1]:.0%}"),
            ("tanh Xavier: std at layers 1 / 10", "roughly constant",
             f"{xavier['std'][0]:.3f} / {xavier['std'][-1]:.3f}"),
            ("ReLU Xavier: variance ratio per layer", "1/2",
             f"{relu_xavier['variance_ratio']:.3f}"),
            ("ReLU He: variance ratio per layer", "1",
             f"{relu_he['variance_ratio']:.3f}")]
    numbers = {"small_last_std": float(small["std"][-1]),
               "large_saturated": float(large["saturated"][-1]),
               "xavier_first_std": float(xavier["std"][0]),
               "xavier_last_std": float(xavier["std"][-1]),
               "relu_xavier_variance_ratio": relu_xavier["variance_ratio"],
               "relu_he_variance_ratio": relu_he["variance_ratio"],
               "std": {label: s["std"].tolist() for label, s in stats.items()}}

    def draw(plt):
        layers = len(small["std"])
        fig, axes = plt.subplots(len(CONFIGS), layers + 1, figsize=(15, 7.5),
                                 gridspec_kw={"width_ratios": [2.2] + [1] * layers})
        for row, (label, activation, scale) in zip(axes, CONFIGS):
            s = stats[label]
            row[0].plot(np.arange(1, layers + 1), s["std"], marker="o", markersize=3)
            if scale == 0.01:
                row[0].set_yscale("log")  # the collapse spans seven orders of magnitude
            else:
                row[0].set_ylim(0, 1.15 * float(s["std"].max()))
            row[0].set_title(f"{label}: std per layer", fontsize=8)
            row[0].tick_params(labelsize=6)
            for i, ax in enumerate(row[1:]):
                values = s["samples"][i]
                if activation == "relu":  # the zeros would dwarf the rest: positive values only
                    values = values[values > 0]
                    span = (0.0, float(np.percentile(values, 99)) if values.size else 1.0)
                elif scale == 0.01:  # each layer on its own scale, which shrinks every layer
                    limit = max(float(np.abs(values).max()), 1e-12)
                    span = (-limit, limit)
                else:
                    span = (-1.0, 1.0)
                ax.hist(values, bins=30, range=span, color="tab:blue")
                ax.set_yticks([])
                ax.tick_params(labelsize=5)
                ax.set_title(f"layer {i + 1}", fontsize=7)
        fig.tight_layout()
        return fig

    return Result("init", rows, numbers, draw)
