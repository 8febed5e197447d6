"""Stages as data: a declared list of steps, and one loop that runs each or reuses its artefacts.

A :class:`Stage` names the module that holds its code, the recipe values it reads, the earlier
stages whose artefacts it takes and the build inputs outside the recipe it depends on. Its key
is a SHA-256 of all of that: the code digest (the source of its module, of the project modules
that module imports, and of the module that declares the stages), the recipe values as
[key, value] pairs in the recipe's order (so reordering ``[filters]`` changes the key), the keys
of the stages it takes from, and the fingerprints of its outside inputs. Its artefacts are
Arrow IPC files under ``<out>/.build/<stage>/`` plus a JSON marker holding the key, written last
and atomically: a stage killed halfway is simply run again, and a rerun reuses every stage
whose key is unchanged.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mmbench.files import atomic_path, write_atomic

if TYPE_CHECKING:
    from mmbench.builders.recipe import Recipe

log = logging.getLogger(__name__)

Frames = dict[str, pl.DataFrame]


@dataclass(frozen=True)
class Stage:
    """One cached step of the build: ``run(context)`` returns its artefacts and its report."""

    name: str
    run: Callable[[Context], tuple[Frames, dict]]
    module: str
    reads: tuple[str, ...] = ()  # "section" (all of it) or "section.key", in the recipe's order
    needs: tuple[str, ...] = ()  # earlier stages whose artefacts it takes
    inputs: tuple[str, ...] = ()  # outside inputs (Context.inputs) whose fingerprints key it


@dataclass
class Context:
    """What a stage may read: the recipe, the artefacts and reports of the stages before it,
    and the build's outside inputs (raw source, manifests, options)."""

    recipe: Recipe
    inputs: dict[str, Any]
    frames: dict[str, Frames] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def frame(self, stage: str, name: str) -> pl.DataFrame:
        """The artefact ``name`` of an earlier stage."""
        return self.frames[stage][name]


def _project_imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the source file ``path`` imports (``from P import m``
    may name a module or an attribute: both candidates are returned, unknown ones drop out)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == package or n.startswith(package + ".")}


@functools.cache
def code_digest(module: str, package: str = "mmbench", follow: bool = True) -> str:
    """SHA-256 of the source of ``module`` and (``follow``) of every ``package`` module it
    imports, directly or not: a stage's artefacts are reused only while this code is unchanged."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # ``from package import attribute``: not a module
            spec = None
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        seen[name] = Path(spec.origin)
        if follow:
            todo.extend(_project_imports(seen[name], package))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\n".encode())
        digest.update(hashlib.sha256(seen[name].read_bytes()).digest())
    return digest.hexdigest()


def recipe_values(recipe: Recipe, reads: tuple[str, ...]) -> list[list]:
    """The [key, value] pairs a stage reads, in the recipe's order within each section."""
    pairs = []
    for item in reads:
        section, _, key = item.partition(".")
        table = recipe.section(section)
        pairs += [[f"{section}.{k}", table[k]] for k in table if not key or k == key]
    return pairs


def fingerprint(value: Any) -> Any:
    """A cheap identity of an outside input: a file's path, size and time; else the value."""
    if isinstance(value, Path):
        return [str(value), value.stat().st_size, value.stat().st_mtime_ns]
    if hasattr(value, "fingerprint"):
        return value.fingerprint()
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


class StageCache:
    """Runs stages in order, or loads their artefacts when their key is unchanged."""

    def __init__(self, work: Path, declared_in: str):
        self.work = work
        # The module that declares the stages holds the glue around each one: its own source
        # keys every stage, not the modules it imports.
        self.glue = code_digest(declared_in, follow=False)
        work.mkdir(parents=True, exist_ok=True)

    def key(self, stage: Stage, context: Context) -> str:
        """The stage's key (see the module docstring)."""
        parts = {
            "stage": stage.name,
            "code": [code_digest(stage.module), self.glue],
            "recipe": recipe_values(context.recipe, stage.reads),
            "needs": [context.keys[n] for n in stage.needs],
            "inputs": [fingerprint(context.inputs.get(i)) for i in stage.inputs],
        }
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def run(self, stages: list[Stage], context: Context) -> Context:
        """Run or reuse every stage in order, filling ``context`` with artefacts and reports."""
        for stage in stages:
            key = self.key(stage, context)
            frames, report = self._reuse(stage.name, key)
            if frames is None:
                started = time.perf_counter()
                frames, report = stage.run(context)
                log.info(f"{stage.name}: {time.perf_counter() - started:.1f} s")
                self._store(stage.name, key, frames, report)
            else:
                log.info(f"{stage.name}: unchanged, reusing {self.work / stage.name}")
            context.frames[stage.name], context.reports[stage.name] = frames, report
            context.keys[stage.name] = key
        return context

    def _reuse(self, name: str, key: str) -> tuple[Frames | None, dict]:
        marker, folder = self.work / f"{name}.json", self.work / name
        if not marker.exists():
            return None, {}
        done = json.loads(marker.read_text())
        if done["key"] == key and all((folder / f"{f}.arrow").exists() for f in done["frames"]):
            return {f: pl.read_ipc(folder / f"{f}.arrow") for f in done["frames"]}, done["report"]
        marker.unlink()
        return None, {}

    def _store(self, name: str, key: str, frames: Frames, report: dict) -> None:
        folder = self.work / name
        folder.mkdir(exist_ok=True)
        for f, frame in frames.items():
            with atomic_path(folder / f"{f}.arrow") as tmp:
                frame.write_ipc(tmp, compression="lz4")
        marker = {"key": key, "frames": list(frames), "report": report}
        write_atomic(self.work / f"{name}.json", json.dumps(marker, indent=1))
