"""The report of bench/compare.py: the Markdown it prints (and writes with --markdown): the machine
(CPU, its vector and bfloat16 instructions, copy bandwidth), the software and what each GEMM
engine dispatched to, then per shape a table of fastnn's step on each engine (float32, and
bfloat16 when it ran) against the OpenBLAS floor, the engine's GEMMs alone, the roofline and
PyTorch, one of the other contenders (the NumPy twin, PyTorch float32 and autocast bfloat16), and
one of memory (float32 and bfloat16)."""
from compare_harness import BLOCK, WARMUP_STEPS

NOISY_SHARE = 0.25  # of the CPU taken by other processes: above it, the report says so


def ms(seconds):
    value = seconds * 1e3
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def megabytes(n):
    return f"{n / 2**20:.2f} MiB"


def table(head, rows, left=1):
    """A Markdown table; the first `left` columns are text, the others numbers."""
    return (["| " + " | ".join(head) + " |",
             "|" + "---|" * left + "---:|" * (len(head) - left)]
            + ["| " + " | ".join(row) + " |" for row in rows] + [""])


def engines_table(result):
    """Per config and engine: fastnn's compiled step against the floor measured in the same
    process, the engine's GEMMs alone, the roofline and PyTorch float32; then fastnn's bfloat16
    step (how it multiplies: emulated or oneDNN's kernel) against its float32 step."""
    bf16 = result["environment"].get("fastnn_bf16", {})
    head = ["config", "engine", "floor ms", "engine GEMMs ms (GFLOP/s)", "roofline ms",
            "fastnn ms", "×floor", "×roofline", "torch fp32 ms", "torch / fastnn"]
    head += ["fastnn bf16 ms (×fp32 step, ×its roofline)"] if bf16 else []
    rows = []
    for config, entry in result["configs"].items():
        torch = entry["times"].get("torch", {}).get("median")
        for engine, run in entry["engines"].items():
            floor, line = run["floor"]["median"], run["roofline"]
            step = entry["times"][f"cython/{engine}"]["median"]
            gemm = line["gemm_seconds"]
            rows.append([config, engine, ms(floor),
                         f"{ms(gemm)} ({result['gemm_flops'] / gemm / 1e9:.0f})",
                         ms(line["seconds"]), ms(step), f"{step / floor:.2f}×",
                         f"{step / line['seconds']:.2f}×", ms(torch) if torch else "—",
                         f"{torch / step:.2f}×" if torch else "—"])
            if bf16:
                low = entry["times"].get(f"cython-bf16/{engine}", {}).get("median")
                line = run.get("roofline_bf16")
                against = f"{low / line['seconds']:.2f}× roofline, " if low and line else ""
                rows[-1].append(f"{ms(low)} ({low / step:.2f}×, {against}{bf16[engine]})"
                                if low else "—")
    return table(head, rows, left=2)


def others_table(result):
    """Per config: the NumPy twin and PyTorch, float32 and autocast bfloat16."""
    head = ["config", "fastnn numpy ms (×floor)", "torch fp32 ms (×floor)",
            "torch autocast-bf16 ms (×floor)"]
    rows = []
    for config, entry in result["configs"].items():
        medians = {name: t["median"] for name, t in entry["times"].items()}
        cells = [config]
        for name in ("numpy", "torch", "torch-bf16"):
            cells.append(f"{ms(medians[name])} ({medians[name] / medians['floor']:.2f}×)"
                         if name in medians else "—")
        rows.append(cells)
    return table(head, rows)


def memory_table(result):
    head = ["config", "engine", "compute", "needed", "peak (whole run)", "peak / needed",
            "peak in training", "training peak / needed", "retained / step", "transient / step"]
    rows = []
    for config, entry in result["configs"].items():
        for engine, run in entry["engines"].items():
            for memory in filter(None, (run["memory"], run.get("memory_bf16"))):
                rows.append([
                    config, engine, memory.get("compute_dtype", "float32"),
                    megabytes(memory["needed"]["total"]),
                    megabytes(memory["peak_bytes"]), f"{memory['peak_over_needed']:.2f}",
                    megabytes(memory["peak_training_bytes"]),
                    f"{memory['training_peak_over_needed']:.2f}",
                    f"{memory['retained_per_step']:.0f} B",
                    f"{memory['transient_per_step'] / 1024:.1f} KiB"])
    return table(head, rows, left=3) + [
        "(fastnn cython, tracemalloc: Python's and NumPy's allocations, not the BLAS's or "
        "oneDNN's; needed = parameters + gradients + optimizer state + BatchNorm running "
        "statistics + activations kept for backward + one batch, all in float32, see "
        "needed_bytes(), for both compute dtypes)", ""]


def shape_tables(result):
    batch, sizes = result["batch"], result["sizes"]
    lines = [f"### {result['shape']}: batch {batch}, {'-'.join(map(str, sizes))}", ""]
    if "error" in result:
        return lines + [f"failed: {result['error']}", ""]
    lines += engines_table(result) + others_table(result)
    spread = []
    for config, entry in result["configs"].items():
        spread.append(f"{config}: " + ", ".join(
            f"{name} {ms(t['q1'])}–{ms(t['q3'])}" for name, t in entry["times"].items()))
        bad = [name for name, l in entry["losses"].items() if not l["finite"]]
        if bad:
            spread.append(f"{config}: NON-FINITE LOSS for {', '.join(bad)}")
    lines += ["Interquartile ranges (ms; floor: the first engine's run): " + "; ".join(spread)
              + ".", ""]
    bandwidths = sorted({run["roofline"]["bandwidth"] for entry in result["configs"].values()
                         for run in entry["engines"].values()})
    lines += ["Roofline: the step's GEMMs measured alone on its engine (through fastnn's GEMM "
              "module) + the bytes its elementwise passes and update move (compare_roofline.py) "
              f"at {bandwidths[0] / 1e9:.1f}–{bandwidths[-1] / 1e9:.1f} GB/s (np.copyto, the "
              "faster of a 64 MiB copy and one the size of what the step holds). Floor: the "
              "same GEMMs by np.matmul (OpenBLAS), in each engine's process.", ""]
    loads = []
    for config, entry in result["configs"].items():
        runs = {engine: run["other_load"] for engine, run in entry["engines"].items()}
        runs.update(entry.get("other_load_torch_runs", {}))
        shares = [f"{name} {load['other_processes_cpu_share']:.0%}"
                  for name, load in runs.items()
                  if load.get("other_processes_cpu_share") is not None]
        if shares:
            loads.append(f"{config} ({', '.join(shares)})")
    if loads:
        lines += ["CPU share other processes took while timing: " + "; ".join(loads) + ".", ""]
    busiest = max((load.get("other_processes_cpu_share") or 0 for entry in
                   result["configs"].values() for load in [
                       *(run["other_load"] for run in entry["engines"].values()),
                       *entry.get("other_load_torch_runs", {}).values()]), default=0)
    if busiest > NOISY_SHARE:
        lines += [f"**Noisy: other processes took up to {busiest:.0%} of the CPU while timing; "
                  "these times say little about the contenders' speeds.**", ""]
    notes = sorted({note for entry in result["configs"].values()
                    for run in entry["engines"].values() for note in run["notes"]})
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    return lines + memory_table(result)


def engine_lines(env):
    """What each engine's run reported (fnn.gemm_engine_info())."""
    lines = []
    for engine, info in env.get("gemm_engines", {}).items():
        if info.get("onednn_version"):
            onednn = (f"oneDNN {info['onednn_version']} (ISA {info['onednn_isa']}; float32 "
                      f"matmul {info['onednn_implementation']}, bfloat16 matmul "
                      f"{info['onednn_bf16_implementation'] or 'none on this CPU'})")
        else:
            onednn = f"oneDNN not loaded ({info.get('onednn_error')})"
        lines.append(f"- fastnn engine {engine!r}: multiplies on {info['engine']}; {onednn}")
    return lines


def isa_line(env):
    isa = env.get("cpu_isa", {"flags": {}, "bf16": "unknown"})
    flags = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in isa["flags"].items())
    bf16 = {"none": "none (bfloat16 matrix multiplies are emulated or converted)",
            "AMX": "AMX", "AVX512-BF16": "AVX512-BF16"}.get(isa["bf16"], isa["bf16"])
    return f"- CPU instructions (/proc/cpuinfo flags): {flags or 'unknown'}; bfloat16: {bf16}"


def environment_lines(results, threads):
    env = next((r["environment"] for r in results if "environment" in r), None)
    if env is None:
        return [f"- skipped: {note}" for r in results for note in r.get("skipped", [])]
    variables = {k: v for k, v in env["openblas_variables"].items() if v is not None}
    apis = sorted({entry["fastnn_step_api"] for r in results
                   for entry in r.get("configs", {}).values()})
    skipped = sorted({note for r in results for note in r.get("skipped", [])})
    lines = [
        f"- CPU: {env['cpu']} ({env['cpus_available']} available); copy bandwidth (64 MiB "
        "np.copyto): " + (f"{env['copy_bandwidth_large'] / 1e9:.1f} GB/s"
                          if "copy_bandwidth_large" in env else "not measured")
        + f"; threads: {threads} ({env['blas_threads_note']}); thread variables: "
        f"{env['thread_variables'] or 'none set'}",
        isa_line(env),
        f"- BLAS ({env['blas']['source']}): {env['blas_summary']}",
        "- OpenBLAS variables: " + (f"SET {variables}: NumPy's BLAS runs slower kernels"
                                    if variables else
                                    "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"),
        f"- Python {env['python']}, NumPy {env['numpy']}, fastnn {env['fastnn_version']} "
        f"(compiled {'loaded' if env['fastnn_compiled'] else 'NOT loaded'}, OpenMP "
        f"{'on' if env['fastnn_openmp'] else 'off'}, build {env['fastnn_compiled_build']}), "
        f"torch {env.get('torch', 'not run')}"
        + (f" ({env['torch_threads']} threads, MKL {env['torch_mkl']}, CPU capability "
           f"{env.get('torch_cpu_capability')}; autocast-bf16 ran on the instructions above)"
           if "torch_threads" in env else ""),
        f"- fastnn step: {', '.join(apis)}",
    ]
    lines += engine_lines(env)
    lines += [f"- fastnn compute_dtype='bfloat16' on engine {engine!r}: "
              + ("emulated (float32 GEMMs of operands rounded to bfloat16: no bfloat16 matmul "
                 "here), so slower than float32" if how == "emulated" else f"multiplies on {how}")
              for engine, how in env.get("fastnn_bf16", {}).items()]
    lines += [f"- skipped: {note}" for note in skipped]
    lines += [f"- torch {part}: {error}" for part, error in env.get("torch_errors", {}).items()]
    return lines


def report(results, date, source, seconds, threads):
    """The whole Markdown report of a run."""
    lines = [f"## fastnn training step vs GEMM floor, roofline and PyTorch ({date})", ""]
    lines += environment_lines(results, threads)
    if source:
        lines.append(f"- fastnn sources: commit {source['commit']}"
                     + (", with uncommitted changes under src/" if source["src_dirty"] else ""))
    lines += ["- steps recorded per contender: "
              + ", ".join(f"{r['shape']} {r.get('steps', '?')}" for r in results)
              + f" (blocks of {BLOCK}, first unrecorded; {WARMUP_STEPS} warm-up steps); "
              f"whole run {seconds:.0f} s", ""]
    for result in results:
        lines += shape_tables(result)
    return "\n".join(lines)
