"""The shape of the code: the project's import graph has no cycle, counting imports inside
functions and the modules the baseline runner loads by name, and the core imports neither the
builders nor the baselines at import time."""

import ast
import tomllib
from pathlib import Path

from mmbench.baselines import BASELINES

ROOT = Path(__file__).resolve().parents[1]


def _packages() -> dict[str, Path]:
    """Every package of the distribution (pyproject's list, sub-packages included) and its folder."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = tool["package-dir"]
    out = {}
    for package in tool["packages"]:
        base = max((p for p in folders if package == p or package.startswith(p + ".")), key=len)
        out[package] = (
            ROOT
            / folders[base]
            / Path(*package[len(base) :].strip(".").split(".") if package != base else ())
        )
    return out


PACKAGES = _packages()
# Modules that import others by a name held in data, and the names they may import that way.
LOADED_BY_NAME = {"mmbench.baselines.runner": set(BASELINES.values())}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path], top_level_only: bool = False) -> set[str]:
    """The project modules ``module`` imports: ``import``/``from`` statements (at any depth unless
    ``top_level_only``) and ``importlib.import_module`` calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and not top_level_only
        ):
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant):
                names.add(argument.value)
            else:
                assert module in LOADED_BY_NAME, f"{module} imports a module by a computed name"
                names.update(LOADED_BY_NAME[module])
    return {n for n in names if n in modules}


def test_every_package_is_seen():
    modules = _modules()
    for name in ("mmbench.leaderboard.site", "mmbench.builders.kinds", "mmbench.baselines.zeroshot"):
        assert name in modules
    assert all(path.is_file() for path in modules.values())


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) - {m} for m, p in modules.items()}
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
    assert len(graph) > 50


def test_the_core_does_not_import_builders_or_baselines_at_import_time():
    """The core may read the baselines' registry (names and the settings' base class: its
    ``__init__`` imports only the core), never a builder or a model module."""
    modules = _modules()
    registry = "mmbench.baselines"
    below = _imports(registry, modules[registry], modules, top_level_only=True)
    assert not {m for m in below if m.startswith(("mmbench.builders", registry + "."))}, below
    for module, path in modules.items():
        if module.startswith(("mmbench.builders", "mmbench.baselines")) or module == "mmbench.cli":
            continue
        found = _imports(module, path, modules, top_level_only=True)
        heavy = {m for m in found if m.startswith("mmbench.builders") or m.startswith(registry + ".")}
        assert not heavy, f"{module} imports {sorted(heavy)} at import time"
