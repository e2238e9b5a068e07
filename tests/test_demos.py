"""`fastnn demo`: each demo's fast mode, with its headline number held to the notes' claim.

The demos train with fixed seeds, so the numbers are reproducible, but each range is one the
claim allows, not the number one run gave: a broken layer, loss or optimizer moves them out.
Demos whose training is long for the NumPy twin, or that only call NumPy and scikit-learn, run
once (backend_independent); the others run on both backends."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import demos


def run(name):
    return demos.run(name, fast=True, seed=0).numbers


def test_registry_lists_every_demo_of_the_issue():
    assert demos.names() == ["params", "initial-loss", "init", "spiral", "capacity",
                             "learning-rate", "relu-vs-tanh", "dead-relu", "dropout",
                             "preprocessing", "features", "saliency"]
    for demo in demos.DEMOS.values():
        assert demo.description and demo.claim


def test_params_counts_the_notes_networks():
    numbers = run("params")
    assert numbers == {"3-4-2": 26, "3-4-4-1": 41}


def test_initial_loss_is_chance_and_regularization_raises_it():
    numbers = run("initial-loss")
    assert abs(numbers["softmax"] - math.log(10)) < 0.05
    assert abs(numbers["svm"] - 9.0) < 0.1
    regularized = list(numbers["regularized"].values())
    assert all(b > a for a, b in zip(regularized, regularized[1:]))


def test_init_collapse_saturation_and_calibration():
    numbers = run("init")
    assert numbers["small_last_std"] < 1e-5  # 0.01 * randn: about 0.22x per layer
    assert numbers["large_saturated"] > 0.8  # 1.0 * randn: |a| > 0.99
    assert 0.1 < numbers["xavier_last_std"] < numbers["xavier_first_std"] < 0.8
    assert 0.4 < numbers["relu_xavier_variance_ratio"] < 0.6  # halves per layer
    assert 0.85 < numbers["relu_he_variance_ratio"] < 1.15  # kept


def test_spiral_linear_vs_two_layer():
    numbers = run("spiral")
    assert 0.40 <= numbers["linear_accuracy"] <= 0.60
    assert numbers["two_layer_accuracy"] >= 0.95


@pytest.mark.backend_independent
def test_capacity_more_neurons_more_complex_more_l2_smoother():
    numbers = run("capacity")
    assert numbers["accuracy_3_0"] < 0.8 < numbers["accuracy_6_0"] < numbers["accuracy_20_0"]
    assert numbers["boundary_3_0"] < numbers["boundary_20_0"]
    assert numbers["boundary_20_0"] > numbers["boundary_20_0.003"] > numbers["boundary_20_0.01"]
    assert numbers["accuracy_20_0.01"] < numbers["accuracy_20_0"] - 0.2


def test_learning_rate_curves_and_update_ratio():
    numbers = run("learning-rate")
    good = numbers["final_good"]
    assert good < 0.3
    assert numbers["final_low"] > 3 * good
    assert numbers["final_high"] > 2 * good
    assert numbers["explosion"] > 100  # the very high rate's loss blows up
    assert 3e-4 < numbers["good_ratio"] < 5e-3


def test_relu_converges_several_times_faster_than_tanh():
    numbers = run("relu-vs-tanh")
    assert numbers["relu_epochs"] is not None and numbers["tanh_epochs"] is not None
    assert numbers["speedup"] >= 2.5


def test_dead_relu_fraction_high_vs_good_learning_rate():
    numbers = run("dead-relu")
    assert numbers["good_dead"] <= 0.02
    assert numbers["high_dead"] >= 0.1


@pytest.mark.backend_independent
def test_dropout_narrows_the_gap():
    numbers = run("dropout")
    assert numbers["gap_without"] > 0.0  # memorized some of the random labels
    assert numbers["gap_with"] < numbers["gap_without"] - 0.1
    assert numbers["val_with"] > numbers["val_without"] + 0.05


@pytest.mark.backend_independent
def test_preprocessing_statistics():
    numbers = run("preprocessing")
    assert numbers["centred_mean"] < 1e-12
    np.testing.assert_allclose(numbers["normalized_std"], 1.0, atol=1e-9)
    assert numbers["original_offdiagonal"] > 1.0
    assert numbers["decorrelated_offdiagonal"] < 1e-9
    assert numbers["whitened_error"] < 1e-4


@pytest.mark.backend_independent
def test_features_cluster_by_class():
    pytest.importorskip("sklearn")
    numbers = run("features")
    assert numbers["val_accuracy"] > 0.9
    assert numbers["knn_hidden"] > 0.9


def test_saliency_points_at_the_pixels_the_score_depends_on():
    numbers = run("saliency")
    assert numbers["accuracy"] > 0.9
    assert numbers["drop_salient"] > 2 * numbers["drop_random"]
    assert numbers["drop_salient"] > 3.0


@pytest.mark.backend_independent
def test_run_writes_a_png_and_refuses_bad_arguments(tmp_path):
    pytest.importorskip("matplotlib")
    result = demos.run("params", out=str(tmp_path))
    assert result.figure == os.path.join(str(tmp_path), "params.png")
    with open(result.figure, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "26" in str(result) and "notes" in str(result)
    with pytest.raises(ValueError, match="unknown demo 'nope'"):
        demos.run("nope")
    with pytest.raises(ValueError, match="does not exist"):
        demos.run("params", out=str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="seed"):
        demos.run("params", seed=1.5)


@pytest.mark.backend_independent
def test_cli_demo_params_and_list(tmp_path):
    pytest.importorskip("matplotlib")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(os.path.dirname(__file__), "..", "src"), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "fastnn.cli", "demo"]
    listed = subprocess.run(command + ["--list"], capture_output=True, text=True, env=env,
                            check=True)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == demos.names()
    ran = subprocess.run(command + ["params", "--out", str(tmp_path / "pictures")],
                         capture_output=True, text=True, env=env, check=True)
    assert "3-4-2" in ran.stdout and "20 + 6 = 26" in ran.stdout and "32 + 9 = 41" in ran.stdout
    assert (tmp_path / "pictures" / "params.png").stat().st_size > 1000
    unknown = subprocess.run(command + ["nope"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 1 and "unknown demo 'nope'" in unknown.stderr


@pytest.mark.backend_independent
def test_missing_extras_are_named_before_any_work(monkeypatch, capsys, tmp_path):
    from fastnn import cli
    ran = []
    monkeypatch.setattr(demos, "run", lambda *args, **kwargs: ran.append(args))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "pictures"
    assert cli.main(["demo", "spiral", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "fastnn demo: error:" in err and "matplotlib" in err and "[plot]" in err
    assert ran == [] and not out.exists()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match=r"datasets"):
        demos.DEMOS["features"].function(fast=True, seed=0)
