"""Sequential.summary(): the CS231n notes' counts (neurons, weights, biases, learnable parameters,
the N of an N-layer network) and the printed table."""
import re

import numpy as np
import pytest

import fastnn as fnn


def summarize(model):
    lines = []
    totals = model.summary(print_fn=lines.append)
    return totals, lines


def totals_of(layers, neurons, weights, biases, parameters):
    return dict(layers=layers, neurons=neurons, weights=weights, biases=biases,
                parameters=parameters)


NOTES_3_4_2 = totals_of(2, 6, 20, 6, 26)
NOTES_3_4_4_1 = totals_of(3, 9, 32, 9, 41)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build", [
    lambda dtype: fnn.Sequential(fnn.Dense(3, 4, activation="relu"), fnn.Dense(4, 2),
                                 dtype=dtype),
    lambda dtype: fnn.Sequential(fnn.Dense(3, 4), fnn.Sigmoid(), fnn.Dense(4, 2), dtype=dtype),
    lambda dtype: fnn.Sequential(fnn.Dense(3, 4), fnn.Dense(4, 2), dtype=dtype),
], ids=["fused", "activation_layer", "linear"])
def test_notes_first_network_3_4_2(build, dtype):
    totals, lines = summarize(build(dtype))
    assert totals == NOTES_3_4_2
    assert lines[-1] == ("2-layer network: 6 neurons, 20 weights, 6 biases, 26 learnable "
                         "parameters")


@pytest.mark.parametrize("build", [
    lambda: fnn.Sequential(fnn.Dense(3, 4, activation="relu"),
                           fnn.Dense(4, 4, activation="relu"), fnn.Dense(4, 1)),
    lambda: fnn.Sequential(fnn.Dense(3, 4), fnn.ReLU(), fnn.Dense(4, 4), fnn.Tanh(),
                           fnn.Dense(4, 1)),
], ids=["fused", "activation_layers"])
def test_notes_second_network_3_4_4_1(build):
    totals, lines = summarize(build())
    assert totals == NOTES_3_4_4_1
    assert lines[-1] == ("3-layer network: 9 neurons, 32 weights, 9 biases, 41 learnable "
                         "parameters")


def test_counts_match_the_parameters_themselves():
    model = fnn.Sequential(fnn.Dense(7, 5), fnn.Dense(5, 9), fnn.Dense(9, 2), seed=0)
    totals, _ = summarize(model)
    assert totals["parameters"] == sum(p.size for p in model.parameters()) == 7 * 5 + 5 + 5 * 9 \
        + 9 + 9 * 2 + 2
    assert totals["weights"] == 35 + 45 + 18 and totals["biases"] == 5 + 9 + 2
    assert totals["neurons"] == 16 and totals["layers"] == 3
    assert all(isinstance(v, int) for v in totals.values())


def mixed_model():
    return fnn.Sequential(
        fnn.Dense(10, 8), fnn.BatchNorm(8), fnn.ReLU(), fnn.Dropout(0.5),
        fnn.Maxout(8, 5, pieces=3), fnn.PReLU(5), fnn.Tanh(), fnn.LeakyReLU(0.2),
        fnn.Dense(5, 4, activation="relu"), fnn.Dense(4, 3), seed=0)


# per layer: (repr, output width, weights, biases, parameters)
MIXED_ROWS = [
    ("Dense(10 -> 8)", 8, 80, 8, 88),
    ("BatchNorm(8)", 8, 0, 0, 16),           # gamma and beta: parameters, neither weights nor b
    ("ReLU()", 8, 0, 0, 0),
    ("Dropout(p=0.5)", 8, 0, 0, 0),
    ("Maxout(8 -> 5, pieces=3)", 5, 8 * 15, 15, 8 * 15 + 15),  # a bias per piece, 5 units
    ("PReLU(5)", 5, 0, 0, 5),                # one slope per feature
    ("Tanh()", 5, 0, 0, 0),
    ("LeakyReLU(alpha=0.2)", 5, 0, 0, 0),
    ("Dense(5 -> 4, relu)", 4, 20, 4, 24),
    ("Dense(4 -> 3)", 3, 12, 3, 15),
]


def test_mixed_model_counts_every_kind_of_parameter():
    model = mixed_model()
    totals, _ = summarize(model)
    assert totals == totals_of(
        layers=4,                                   # Dense, Maxout, Dense, Dense
        neurons=8 + 5 + 4 + 3,                      # maxout units, not pieces; no inputs
        weights=80 + 120 + 20 + 12,
        biases=8 + 15 + 4 + 3,
        parameters=88 + 16 + 135 + 5 + 24 + 15)
    assert totals["parameters"] == sum(p.size for p in model.parameters())
    assert totals["weights"] == sum(p.size for p in model.parameters() if p.is_weight)


def _row_cells(line):
    """(name, output, weights, biases, parameters) of one printed table row."""
    match = re.fullmatch(r"(\d+: .*?)\s+(\(N, \d+\))\s+(\d+)\s+(\d+)\s+(\d+)", line)
    assert match, f"unexpected table row {line!r}"
    name, output, *numbers = match.groups()
    return (name, output, *map(int, numbers))


def test_printed_table_lists_every_layer():
    model = mixed_model()
    _, lines = summarize(model)
    assert len(lines) == 1 + len(model.layers) + 1  # header, one row per layer, totals
    assert lines[0].split() == ["layer", "output", "weights", "biases", "parameters"]
    for i, (line, (name, width, w, b, p)) in enumerate(zip(lines[1:-1], MIXED_ROWS)):
        assert _row_cells(line) == (f"{i}: {name}", f"(N, {width})", w, b, p)
        assert repr(model.layers[i]) == name
    # aligned columns: every row as long as the header
    assert len({len(line) for line in lines[:-1]}) == 1
    assert lines[-1] == ("4-layer network: 20 neurons, 232 weights, 30 biases, 283 learnable "
                         "parameters")


def test_summary_prints_with_print_by_default(capsys):
    model = fnn.Sequential(fnn.Dense(3, 4, activation="relu"), fnn.Dense(4, 2))
    totals = model.summary()
    out = capsys.readouterr().out.splitlines()
    assert totals == NOTES_3_4_2
    assert len(out) == 4
    assert out[1].startswith("0: Dense(3 -> 4, relu)") and out[2].startswith("1: Dense(4 -> 2)")
    assert out[-1].startswith("2-layer network: 6 neurons")


def test_summary_leaves_the_model_alone(rng):
    model = mixed_model()
    X = rng.standard_normal((6, 10))
    before = model.forward(X, training=False)
    state = model.state_dict()
    summarize(model)
    summarize(model)
    np.testing.assert_array_equal(model.forward(X, training=False), before)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


def test_single_layer_and_parameterless_models():
    totals, lines = summarize(fnn.Sequential(fnn.Dense(3, 1)))
    assert totals == totals_of(1, 1, 3, 1, 4)
    assert lines[-1].startswith("1-layer network:")
    # an input-side normalization alone is not a layer of neurons
    totals, lines = summarize(fnn.Sequential(fnn.BatchNorm(3), fnn.PReLU(3)))
    assert totals == totals_of(0, 0, 0, 0, 9)
    assert len(lines) == 4
