"""Sequential.summary: the table of layers and the totals the CS231n notes count."""


def summary(model, print_fn):
    """Print the table through print_fn; return the totals (see Sequential.summary)."""
    rows, totals = [], dict(layers=0, neurons=0, weights=0, biases=0, parameters=0)
    features = model.in_features
    for i, layer in enumerate(model.layers):
        params = layer.parameters()
        n_weights = sum(p.size for p in params if p.is_weight)
        n_biases = sum(p.size for p in params if p.name == "b")
        n_params = sum(p.size for p in params)
        features = layer.out_features or features
        if n_weights:
            totals["layers"] += 1
            totals["neurons"] += features
        totals["weights"] += n_weights
        totals["biases"] += n_biases
        totals["parameters"] += n_params
        rows.append((f"{i}: {layer!r}", f"(N, {'D' if features is None else features})",
                     n_weights, n_biases, n_params))
    header = ("layer", "output", "weights", "biases", "parameters")
    widths = [max(len(str(r[c])) for r in rows + [header]) for c in range(5)]
    line = "  ".join(f"{{:<{widths[0]}}}" if c == 0 else f"{{:>{widths[c]}}}"
                     for c in range(5))
    print_fn(line.format(*header))
    for row in rows:
        print_fn(line.format(*row))
    print_fn(f"{totals['layers']}-layer network: {totals['neurons']} neurons, "
             f"{totals['weights']} weights, {totals['biases']} biases, "
             f"{totals['parameters']} learnable parameters")
    return totals
