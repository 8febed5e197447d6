"""The shape of the code: the project's import graph has no cycle, counting imports inside
functions, and the core imports neither the builders nor the baselines at import time."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "mmbench": ROOT / "mmbench",
    "mmbench.builders": ROOT / "builders",
    "mmbench.baselines": ROOT / "baselines",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def _imports(path: Path, modules: dict[str, Path], top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n in modules}


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    # A package's __init__ importing its own modules is how a package exposes them, not a cycle.
    for package in PACKAGES:
        graph[package] = {m for m in graph[package] if not m.startswith(package + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert len(graph) > 30


def test_the_core_does_not_import_builders_or_baselines_at_import_time():
    modules = _modules()
    for module, path in modules.items():
        if module.startswith(("mmbench.builders", "mmbench.baselines")) or module == "mmbench.cli":
            continue
        heavy = {
            m
            for m in _imports(path, modules, top_level_only=True)
            if m.startswith(("mmbench.builders", "mmbench.baselines"))
        }
        assert not heavy, f"{module} imports {sorted(heavy)} at import time"
