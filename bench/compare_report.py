"""The report of bench/compare.py: the Markdown it prints (and writes with --markdown): the machine
and software, then per shape a table of step times against the floor and PyTorch, and one of
memory."""
from compare_harness import BLOCK, WARMUP_STEPS

def ms(seconds):
    value = seconds * 1e3
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def megabytes(n):
    return f"{n / 2**20:.2f} MiB"


def shape_tables(result):
    batch, sizes = result["batch"], result["sizes"]
    lines = [f"### {result['shape']}: batch {batch}, {'-'.join(map(str, sizes))}", ""]
    if "error" in result:
        return lines + [f"failed: {result['error']}", ""]
    head = ["config", "floor ms", "fastnn cython ms (×floor)", "fastnn numpy ms (×floor)",
            "torch ms (×floor)", "cython vs torch", "cython vs numpy"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    spread = []
    for config, entry in result["configs"].items():
        medians = {name: t["median"] for name, t in entry["times"].items()}
        floor = medians["floor"]
        cells = [config, ms(floor)]
        for name in ("cython", "numpy", "torch"):
            cells.append(f"{ms(medians[name])} ({medians[name] / floor:.2f}×)"
                         if name in medians else "—")
        cells.append(f"{medians['torch'] / medians['cython']:.2f}×" if "torch" in medians
                     else "—")
        cells.append(f"{medians['numpy'] / medians['cython']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
        spread.append(f"{config}: " + ", ".join(
            f"{name} {ms(t['q1'])}–{ms(t['q3'])}" for name, t in entry["times"].items()))
        bad = [name for name, l in entry["losses"].items() if not l["finite"]]
        if bad:
            spread.append(f"{config}: NON-FINITE LOSS for {', '.join(bad)}")
    lines += ["", "Interquartile ranges (ms): " + "; ".join(spread) + ".", ""]
    loads = [entry["other_load"].get("other_processes_cpu_share")
             for entry in result["configs"].values()]
    if any(v is not None for v in loads):
        lines += ["CPU share other processes took while timing: " + ", ".join(
            f"{config} {entry['other_load'].get('other_processes_cpu_share', 0):.0%}"
            for config, entry in result["configs"].items()) + ".", ""]
    head = ["config", "needed", "peak (whole run)", "peak / needed", "peak in training",
            "training peak / needed", "retained / step", "transient / step"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for config, entry in result["configs"].items():
        memory = entry["memory"]
        lines.append("| " + " | ".join([
            config, megabytes(memory["needed"]["total"]), megabytes(memory["peak_bytes"]),
            f"{memory['peak_over_needed']:.2f}", megabytes(memory["peak_training_bytes"]),
            f"{memory['training_peak_over_needed']:.2f}",
            f"{memory['retained_per_step']:.0f} B",
            f"{memory['transient_per_step'] / 1024:.1f} KiB"]) + " |")
    lines += ["", "(fastnn cython, tracemalloc; needed = parameters + gradients + optimizer "
              "state + BatchNorm running statistics + activations kept for backward + one batch, "
              "see needed_bytes())", ""]
    return lines


def environment_lines(results, threads):
    env = next((r["environment"] for r in results if "environment" in r), None)
    if env is None:
        return []
    variables = {k: v for k, v in env["openblas_variables"].items() if v is not None}
    apis = sorted({entry["fastnn_step_api"] for r in results
                   for entry in r.get("configs", {}).values()})
    return [
        f"- CPU: {env['cpu']} ({env['cpus_available']} available); threads: "
        f"{threads} ({env['blas_threads_note']}); thread variables: "
        f"{env['thread_variables'] or 'none set'}",
        f"- BLAS ({env['blas']['source']}): {env['blas_summary']}",
        "- OpenBLAS variables: " + (f"SET {variables}: NumPy's BLAS runs slower kernels"
                                    if variables else
                                    "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"),
        f"- Python {env['python']}, NumPy {env['numpy']}, fastnn {env['fastnn_version']} "
        f"(compiled {'loaded' if env['fastnn_compiled'] else 'NOT loaded'}, OpenMP "
        f"{'on' if env['fastnn_openmp'] else 'off'}, build {env['fastnn_compiled_build']}), "
        f"torch {env.get('torch', 'not run')}"
        + (f" ({env['torch_threads']} threads, MKL {env['torch_mkl']})"
           if "torch_threads" in env else ""),
        f"- fastnn step: {', '.join(apis)}",
    ]


def report(results, date, source, seconds, threads):
    """The whole Markdown report of a run."""
    lines = [f"## fastnn training step vs GEMM floor and PyTorch ({date})", ""]
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
