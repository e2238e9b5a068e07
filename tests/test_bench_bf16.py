"""Smoke test of bench/bench_bf16.py, bfloat16 against float32 training (accuracy on the digits
and a synthetic 784-512-512-10 task, time per epoch, the memory of a step): its quick mode runs
every part in both compute dtypes and writes complete results. It checks that the figures exist
and hang together, never what they are."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench_bf16.py"
DTYPES = ("float32", "bfloat16")


@pytest.mark.backend_independent  # the script picks its backend itself
def test_bench_bf16_quick_run_writes_complete_results(tmp_path):
    import fastnn
    pytest.importorskip("sklearn")
    if not fastnn.compiled_available():
        pytest.skip("bench/bench_bf16.py measures the compiled backend, which is not built")
    out, markdown = tmp_path / "out.json", tmp_path / "out.md"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "2", "--json",
                             str(out), "--markdown", str(markdown)],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert markdown.read_text().strip() == result.stdout.strip()
    for heading in ("### digits", "### synthetic", "### memory", "amx_bf16", "avx512_bf16"):
        assert heading in result.stdout, heading

    data = json.loads(out.read_text())
    assert data["quick"] and data["seeds"] == 2 and data["source"]["commit"]
    env = data["environment"]
    assert env["cpu"] and "amx_bf16" in env["cpu_isa"]["flags"]
    assert env["gemm_engine"]["engine"] in ("openblas", "onednn")
    assert data["bf16_arithmetic"] == "emulated" or data["bf16_arithmetic"].startswith("oneDNN")
    for part in ("digits", "synthetic"):
        runs = data[part]["runs"]
        assert sorted((r["seed"], r["compute_dtype"]) for r in runs) == [
            (seed, dtype) for seed in (0, 1) for dtype in sorted(DTYPES)], part
        for run in runs:
            assert 0 <= run["accuracy"] <= 1 and run["seconds_per_epoch"] > 0, (part, run)
        summary = data["summary"][part]
        for dtype in DTYPES:
            accuracies = sorted(r["accuracy"] for r in runs if r["compute_dtype"] == dtype)
            assert sorted(summary[dtype]["accuracies"]) == accuracies
            assert summary[dtype]["median"] == pytest.approx(sum(accuracies) / 2)
        assert summary["difference_points"] == pytest.approx(
            100 * (summary["bfloat16"]["median"] - summary["float32"]["median"]))
        assert summary["meets"] == (summary["difference_points"] >= -0.5)
    for run in data["digits"]["runs"]:
        assert run["printed"].startswith("validation accuracy") and run["epochs"] == 2
    for run in data["synthetic"]["runs"]:
        assert run["epochs"] == len(run["epoch_seconds"]) == 1
        assert run["stop_reason"] == "completed"
        assert all(math.isfinite(v) for v in run["train_loss_per_epoch"])
    passes = data["memory"]["passes"]
    assert sorted((p["config"], p["compute_dtype"]) for p in passes) == [
        (config, dtype) for config in ("adam", "sgd") for dtype in sorted(DTYPES)]
    for memory in passes:
        assert memory["peak_training_bytes"] >= memory["steady_bytes"] > 0
        assert memory["peak_bytes"] >= memory["peak_training_bytes"]
