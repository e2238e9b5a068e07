"""Smoke test of bench/compare.py, the end-to-end training-step comparison: its quick mode runs and
writes complete results. It checks that figures exist, never how fast anything is."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "compare.py"
CONFIGS = ("sgd", "adam", "sgd+bn+dropout", "adam+bn+dropout")


@pytest.mark.backend_independent  # the script runs both backends itself
def test_compare_quick_run_writes_complete_results(tmp_path):
    import fastnn
    if not fastnn.compiled_available():
        pytest.skip("bench/compare.py compares against the compiled backend, which is not built")
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--shapes", "tiny",
                             "--no-torch", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "### tiny" in result.stdout

    runs = json.loads(out.read_text())["results"]
    assert [run["shape"] for run in runs] == ["tiny"]
    configs = runs[0]["configs"]
    assert set(configs) == set(CONFIGS)
    for name, entry in configs.items():
        assert set(entry["times"]) == {"floor", "cython", "numpy"}, name
        for contender, times in entry["times"].items():
            assert times["n"] > 0
            for key in ("median", "q1", "q3", "min"):
                assert math.isfinite(times[key]) and times[key] > 0, (name, contender, key)
        assert all(loss["finite"] for loss in entry["losses"].values()), name
        memory = entry["memory"]
        for key in ("peak_bytes", "peak_training_bytes", "steady_bytes", "peak_over_needed"):
            assert memory[key] > 0, (name, key)
        assert memory["needed"]["total"] > 0
        assert entry["fastnn_step_api"] in ("train_step", "forward/zero_grad/backward/step")


@pytest.mark.backend_independent
def test_compare_times_torch_in_a_process_of_its_own(tmp_path):
    """With torch installed, its steps come from a second worker, where it runs alone (in one
    process it would share libgomp's wait policy with fastnn and the cores with OpenBLAS's
    spinning threads), merged per config."""
    import fastnn
    pytest.importorskip("torch")
    if not fastnn.compiled_available():
        pytest.skip("bench/compare.py compares against the compiled backend, which is not built")
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--shapes", "tiny",
                             "--configs", "sgd", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    entry = json.loads(out.read_text())["results"][0]["configs"]["sgd"]
    assert set(entry["times"]) == {"floor", "cython", "numpy", "torch"}
    assert all(times["n"] > 0 and times["median"] > 0 for times in entry["times"].values())
    assert entry["losses"]["torch"]["finite"]
