"""Markdown tables of median times, compiled vs NumPy twin, from a pytest-benchmark JSON file.

    python bench/summarize.py [--kinds KIND,KIND] RUN.json [RUN2.json ...]

One table per kind of benchmark (dense, bias_act_forward, ...), one row per group (shape and
activation): the median of each backend and the speed-up, the other's median / the compiled
median (> 1: compiled faster).
With several files, each group is taken from the file in which other processes took the least
CPU while it ran (extra_info["other_processes_cpu_share"], recorded by bench/conftest.py); a row
is marked when that share was still above CONTENDED.
"""
import argparse
import json
import re
from collections import defaultdict

CONTENDED = 0.05
COLUMNS = ("cython", "numpy", "torch")


def build_of(run):
    """The compiled build and source commit a run measured (recorded by bench/conftest.py)."""
    fastnn = run["machine_info"].get("fastnn", {})
    commit = run.get("commit_info", {})
    return (json.dumps(fastnn.get("fastnn_compiled_build"), sort_keys=True), commit.get("id"),
            commit.get("dirty"))


def load(paths):
    """{group: (load share, file index, {backend: benchmark})}, each group from its least
    contended file. Refuses to mix runs of different compiled builds or commits."""
    best = {}
    builds = set()
    for index, path in enumerate(paths):
        with open(path) as f:
            run = json.load(f)
        builds.add(build_of(run))
        if len(builds) > 1:
            raise SystemExit(f"{path} measured another build or commit than {paths[0]}: "
                             f"{sorted(builds)}")
        groups = defaultdict(dict)
        for bench in run["benchmarks"]:
            backend = bench["extra_info"].get("backend")
            if backend in COLUMNS:
                groups[bench["group"]][backend] = bench
        for group, rows in groups.items():
            load_share = max(b["extra_info"].get("other_processes_cpu_share", 0.0)
                             for b in rows.values())
            if group not in best or load_share < best[group][0]:
                best[group] = (load_share, index, rows)
    return best


def fmt(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"


def shape_key(shape):
    return tuple(int(v) for v in shape.split("x"))


def split_group(group):
    """"KIND WORDS SHAPE [ACTIVATION]" -> (kind, shape, activation); no NxM shape: (group, "", "")."""
    words = group.split(" ")
    for i, word in enumerate(words):
        if re.fullmatch(r"\d+(x\d+)+", word):
            return " ".join(words[:i]), word, " ".join(words[i + 1:])
    return group, "", ""


def tables(best, n_files, only=None):
    kinds = defaultdict(list)
    for group, (load_share, index, rows) in best.items():
        kind, shape, activation = split_group(group)
        if only and not any(kind.startswith(k) for k in only):
            continue
        kinds[kind].append((shape, activation, load_share, index, rows))
    order = ["dense fwd+bwd", "bias_act_forward", "bias_act_backward", "softmax_cross_entropy"]
    out = []
    for kind in sorted(kinds, key=lambda k: (order.index(k) if k in order else len(order), k)):
        entries = kinds[kind]
        has_torch = any("torch" in e[4] for e in entries)
        has_activation = any(e[1] for e in entries)
        text = (["shape"] if entries[0][0] else []) + (["activation"] if has_activation else [])
        head = text + ["compiled", "NumPy twin", "speed-up"]
        if has_torch:
            head += ["PyTorch", "speed-up vs PyTorch"]
        head += ["other load"] + (["run"] if n_files > 1 else [])
        out.append(f"### {kind}\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < len(text) else "---:" for i in range(len(head)))
                   + "|")
        activations = ["identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh"]
        entries.sort(key=lambda e: (shape_key(e[0]) if e[0] else (),
                                    activations.index(e[1]) if e[1] in activations else 0))
        for shape, activation, load_share, index, rows in entries:
            medians = {b: rows[b]["stats"]["median"] for b in rows}
            cells = ([shape.replace("x", "×")] if shape else [])
            cells += [activation] if has_activation else []
            cells += [fmt(medians["cython"]) if "cython" in medians else "—",
                      fmt(medians["numpy"]) if "numpy" in medians else "—"]
            if "cython" in medians and "numpy" in medians:
                cells.append(f"{medians['numpy'] / medians['cython']:.2f}×")
            else:
                cells.append("—")
            if has_torch:
                cells.append(fmt(medians["torch"]) if "torch" in medians else "—")
                cells.append(f"{medians['torch'] / medians['cython']:.2f}×"
                             if "torch" in medians and "cython" in medians else "—")
            flag = " ⚠" if load_share > CONTENDED else ""
            cells.append(f"{load_share:.0%}{flag}")
            if n_files > 1:
                cells.append(str(index + 1))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="pytest-benchmark JSON files (--benchmark-json)")
    parser.add_argument("--kinds", help="comma-separated group prefixes to keep, e.g. dense,training")
    args = parser.parse_args()
    only = args.kinds.split(",") if args.kinds else None
    print(tables(load(args.runs), len(args.runs), only))


if __name__ == "__main__":
    main()
