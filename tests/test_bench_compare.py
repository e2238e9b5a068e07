"""Smoke test of bench/compare.py, the end-to-end training-step comparison: its quick mode runs each
GEMM engine in a process of its own and writes complete results; its engine GEMMs compute what
the floor's do; its roofline's byte count and CPU probe are right on hand-made cases. It checks
that figures exist and add up, never how fast anything is."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "compare.py"
CONFIGS = ("sgd", "adam+bn+dropout")  # both optimizers, plain and regularized


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import compare_contenders
    import compare_roofline
    return compare_contenders, compare_roofline


def onednn_loads():
    import fastnn
    try:
        from fastnn._kernels import onednn
    except ImportError:
        return False
    return fastnn.compiled_available() and onednn.load()


@pytest.mark.backend_independent
def test_roofline_traffic_counts_every_pass_of_a_small_network(bench_modules):
    contenders, roofline = bench_modules
    spec = contenders.architecture((4, 3, 2), regularized=False)  # Dense(4,3,relu), Dense(3,2)
    n = 5
    forward = (n * 3 * 4 + 3 * 4 + n * 3 * 4) + (n * 2 * 4 + 2 * 4 + n * 2 * 4)
    loss = n * 2 * 4 + n * 8 + n * 2 * 4
    backward = (n * 2 * 4 + 2 * 4) + (n * 3 * 12 + 3 * 4)  # identity: db only; relu: dA, A, dZ
    params = 4 * 3 + 3 + 3 * 2 + 2
    traffic = roofline.step_traffic(spec, n, "sgd")
    assert traffic == dict(forward=forward, loss=loss, backward=backward, update=params * 20,
                           total=forward + loss + backward + params * 20)
    assert roofline.step_traffic(spec, n, "adam")["update"] == params * 28
    regularized = roofline.step_traffic(contenders.architecture((4, 3, 2), True), n, "sgd")
    # + BatchNorm (read, write, 8 vectors; backward 3 passes, 4 vectors), ReLU as a layer of its
    # own, Dropout (read, write, mask; backward dY, mask, dX), 2 BatchNorm parameters a unit
    assert regularized["forward"] - forward == (2 * n * 3 * 4 + 8 * 3 * 4) + 2 * n * 3 * 4 + (
        2 * n * 3 * 4 + n * 3)
    assert regularized["update"] - traffic["update"] == 2 * 3 * 20
    assert roofline.roofline(1e-3, traffic, 1e9) == pytest.approx(1e-3 + traffic["total"] / 1e9)
    # bfloat16 (emulated): each Dense's input rounded into a buffer, the update writes the copy
    emulated = roofline.step_traffic(spec, n, "sgd", "bfloat16")
    assert emulated["forward"] - forward == 2 * n * (4 + 3) * 4
    assert emulated["update"] == params * 24 and emulated["backward"] == backward


@pytest.mark.backend_independent
@pytest.mark.parametrize("flags, bf16, on", [
    ("fpu sse avx2 fma", "none", {"avx2"}),
    ("avx512f avx512_bf16 avx2", "AVX512-BF16", {"avx2", "avx512f", "avx512_bf16"}),
    ("avx512_bf16 amx_bf16 amx_tile avx512f", "AMX",
     {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})])
def test_cpu_isa_reads_the_cpu_flags(bench_modules, tmp_path, flags, bf16, on):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n")
    isa = bench_modules[1].cpu_isa(str(cpuinfo))
    assert isa["bf16"] == bf16
    assert {flag for flag, present in isa["flags"].items() if present} == on
    assert bench_modules[1].cpu_isa(str(tmp_path / "missing"))["bf16"] == "unknown"


@pytest.mark.backend_independent
@pytest.mark.parametrize("engine", ["openblas", "onednn"])
def test_engine_gemms_compute_the_floors_products(bench_modules, engine):
    """The "engine GEMMs" contender runs the floor's products (transposes included) through
    fastnn's GEMM module on the chosen engine: same outputs as np.matmul."""
    import fastnn
    if not fastnn.compiled_available():
        pytest.skip("the compiled kernels are not built")
    if engine == "onednn" and not onednn_loads():
        pytest.skip("oneDNN is not installed")
    contenders = bench_modules[0]
    sizes, batch = (7, 5, 3), 4
    batches = contenders.make_batches(batch, sizes)
    previous = fastnn.gemm_engine_info()["requested"]
    fastnn.set_gemm_engine(engine)
    try:
        floor = contenders.GemmFloor(batch, sizes, batches)
        on_engine = contenders.GemmFloor(batch, sizes, batches, contenders.engine_matmul())
        floor.step()
        on_engine.step()
    finally:
        fastnn.set_gemm_engine(previous)
    for ours, theirs in zip(on_engine.layers, floor.layers):
        for key in ("Z", "dW", "dX"):
            if theirs[key] is not None:
                np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-7)


@pytest.mark.backend_independent  # the script runs both backends itself
def test_compare_quick_run_writes_complete_results(tmp_path):
    import fastnn
    if not fastnn.compiled_available():
        pytest.skip("bench/compare.py compares against the compiled backend, which is not built")
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--shapes", "tiny",
                             "--configs", "sgd,adam+bn+dropout", "--engines", "openblas,onednn",
                             "--no-torch", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "### tiny" in result.stdout and "fastnn bf16 ms" in result.stdout
    assert "× roofline, emulated" in result.stdout
    assert "CPU instructions" in result.stdout

    runs = json.loads(out.read_text())["results"]
    assert [run["shape"] for run in runs] == ["tiny"]
    engines = ["openblas", "onednn"] if onednn_loads() else ["openblas"]
    assert runs[0]["engines"] == engines
    if engines == ["openblas"]:
        assert any(note.startswith("engine onednn: ") for note in runs[0]["skipped"])
    env = runs[0]["environment"]
    assert set(env["gemm_engines"]) == set(engines)
    bf16_native = env["cpu_isa"]["bf16"] in ("AMX", "AVX512-BF16")
    for engine, how in env["fastnn_bf16"].items():  # emulated is said so, in the report too
        assert how == "emulated" or (engine == "onednn" and bf16_native), (engine, how)
        if how == "emulated":
            assert f"compute_dtype='bfloat16' on engine {engine!r}: emulated" in result.stdout
    assert set(env["fastnn_bf16"]) == set(engines)
    for engine, info in env["gemm_engines"].items():
        assert info["engine"] == engine and info["requested"] == engine
        if engine == "onednn":
            assert info["onednn_implementation"]  # what oneDNN dispatched to, recorded
    assert "avx2" in env["cpu_isa"]["flags"] and env["cpu_isa"]["bf16"] in (
        "AMX", "AVX512-BF16", "none", "unknown")
    configs = runs[0]["configs"]
    assert set(configs) == set(CONFIGS)
    for name, entry in configs.items():
        per_engine = {f"{kind}/{engine}" for engine in engines
                      for kind in ("gemm", "cython", "cython-bf16")}
        assert set(entry["times"]) == {"floor", "numpy", *per_engine}, name
        assert set(entry["engines"]) == set(engines), name
        for engine, run in entry["engines"].items():
            line = run["roofline"]
            assert line["gemm_seconds"] == entry["times"][f"gemm/{engine}"]["median"]
            assert line["traffic"]["total"] > 0 and line["bandwidth"] > 1e8
            assert line["seconds"] > line["gemm_seconds"]
            if env["fastnn_bf16"][engine] == "emulated":  # the same GEMMs, more bytes
                emulated = run["roofline_bf16"]
                assert emulated["gemm_seconds"] == line["gemm_seconds"]
                assert emulated["traffic"]["total"] > line["traffic"]["total"]
            assert run["floor"]["n"] > 0
            for memory, dtype in ((run["memory"], "float32"), (run["memory_bf16"], "bfloat16")):
                assert memory["compute_dtype"] == dtype
                for key in ("peak_bytes", "peak_training_bytes", "steady_bytes",
                            "peak_over_needed"):
                    assert memory[key] > 0, (name, engine, dtype, key)
                assert memory["needed"]["total"] > 0
        for contender, times in entry["times"].items():
            assert times["n"] > 0
            for key in ("median", "q1", "q3", "min"):
                assert math.isfinite(times[key]) and times[key] > 0, (name, contender, key)
        assert set(entry["losses"]) == {"numpy", *(f"{kind}/{e}" for e in engines
                                                   for kind in ("cython", "cython-bf16"))}
        assert all(loss["finite"] for loss in entry["losses"].values()), name
        assert entry["fastnn_step_api"] in ("train_step", "forward/zero_grad/backward/step")


@pytest.mark.backend_independent
def test_compare_times_torch_in_a_process_of_its_own(tmp_path):
    """With torch installed, its float32 and autocast-bfloat16 steps come from workers of their
    own, where each runs alone (in one process it would share libgomp's wait policy with fastnn
    and the cores with OpenBLAS's spinning threads), merged per config."""
    import fastnn
    pytest.importorskip("torch")
    if not fastnn.compiled_available():
        pytest.skip("bench/compare.py compares against the compiled backend, which is not built")
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--shapes", "tiny",
                             "--configs", "sgd", "--engines", "openblas", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    entry = json.loads(out.read_text())["results"][0]["configs"]["sgd"]
    assert set(entry["times"]) == {"floor", "gemm/openblas", "cython/openblas",
                                   "cython-bf16/openblas", "numpy", "torch", "torch-bf16"}
    assert all(times["n"] > 0 and times["median"] > 0 for times in entry["times"].values())
    assert entry["losses"]["torch"]["finite"] and entry["losses"]["torch-bf16"]["finite"]
    assert set(entry["other_load_torch_runs"]) == {"torch", "torch-bf16"}
    assert "torch autocast-bf16 ms" in result.stdout
    env = json.loads(out.read_text())["results"][0]["environment"]
    assert env["torch"].startswith("2.") and env["torch_cpu_capability"]
