"""The package's import structure: every module imports alone, and no module imports (even inside
a function) a module that imports it back."""
import ast
import os
import pathlib
import subprocess
import sys
import types

import pytest

import fastnn as fnn

pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(fnn.__file__).parent


def _modules():
    """{module name: (path, is_package)} of every .py file in the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


def import_graph():
    """{module: set of package modules it imports}, from the source (every import statement,
    module level or not); `from X import name` counts as importing X.name when that is a module."""
    modules = _modules()
    graph = {}
    for name, (path, package) in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "fastnn")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").split(".")[0] == "fastnn":
                    source = node.module
                else:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if sub in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_the_package():
    graph = import_graph()
    assert "fastnn.io" in graph["fastnn"] and "fastnn.model" in graph["fastnn.io"]
    assert "fastnn._backend" in graph["fastnn.layers.dense"]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_module_above_the_backend_imports_kernel_internals():
    """Only _backend (the switch point) and the kernels themselves reach into fastnn._kernels."""
    # _step builds the compiled step's plan from fastnn._kernels.step, the kernel it drives.
    # _engine switches the compiled GEMM core between the BLAS and oneDNN.
    allowed = {"fastnn._backend": None, "fastnn._step": {"fastnn._kernels", "fastnn._kernels.step"},
               "fastnn._engine": {"fastnn._kernels", "fastnn._kernels.gemm",
                                  "fastnn._kernels.onednn"}}
    offenders = {}
    for name, targets in import_graph().items():
        if name.startswith("fastnn._kernels") or (name in allowed and allowed[name] is None):
            continue
        bad = {t for t in targets if t.startswith("fastnn._kernels")} - allowed.get(name, set())
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_every_module_imports_alone_in_a_fresh_interpreter():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    names = sorted(_modules())
    failures = {}
    for start in range(0, len(names), 8):  # a few at once: 2 cores are shared
        batch = names[start:start + 8]
        procs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in batch}
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures[name] = err.strip().splitlines()[-1:]
    assert failures == {}


def test_star_import_does_not_shadow_the_standard_library():
    namespace = {}
    exec("from fastnn import *", namespace)
    assert "io" not in namespace
    assert set(fnn.__all__) <= set(namespace)


def test_gradcheck_the_function_and_its_module():
    import fastnn.gradient_check
    assert isinstance(fastnn.gradient_check, types.ModuleType)
    assert fnn.gradcheck is fastnn.gradient_check.gradcheck and callable(fnn.gradcheck)
    assert isinstance(fnn.io, types.ModuleType)
