"""Recipes: the build's parameters as TOML data, with ``key=value`` overrides from the CLI."""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from mmbench.builders.kinds import KINDS
from mmbench.errors import MmbenchError
from mmbench.settings import apply_override

PLAY_FILTERS = ("min_user_plays", "min_track_plays")
SESSION_FILTERS = (
    "dedupe_session_repeats",
    "min_session_length",
    "max_session_length",
    "min_user_sessions",
)


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with the package."""
    folder = resources.files("mmbench.builders") / "recipes"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a built-in recipe by name, or a TOML file by path, then apply ``key=value`` overrides.

    Overrides use dotted keys (``filters.min_user_plays=500``); values are TOML literals, and a
    bare word is taken as a string. Only keys the recipe already has can be set, with a value of
    the same type, so that a typo fails loudly instead of being ignored.
    """
    path = Path(name_or_path)
    if name_or_path in builtin_recipes():
        text = (resources.files("mmbench.builders") / "recipes" / f"{name_or_path}.toml").read_text()
        origin = f"built-in recipe {name_or_path!r}"
    elif path.suffix == ".toml" and path.is_file():
        text = path.read_text(encoding="utf-8")
        origin = str(path)
    else:
        raise MmbenchError(
            f"unknown recipe {name_or_path!r}: expected one of {', '.join(builtin_recipes())} "
            "or the path of a .toml file"
        )
    try:
        recipe = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MmbenchError(f"{origin}: invalid TOML: {exc}") from None
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        apply_override(recipe, item, what="recipe")
    validate_recipe(recipe, origin)
    return recipe


# Each table's keys and their types ([filters] is checked by name: its order matters).
RECIPE_TABLES = {
    "sessionize": {"gap_seconds": int, "after_filters": list},
    "split": {"test_quantile": float, "validation_quantile": float, "select_before_test_cutoff": bool},
    "instances": {"paper_sampled_negatives": int, "seed": int},
    "enrich": {
        **{kind.recipe_key: str for kind in KINDS},
        "annotate_mgphot": bool,
        "mgphot_limit": int,
        "mgphot_backend": str,
        "mgphot_model": str,
    },
}


def validate_recipe(recipe: dict[str, Any], origin: str = "recipe") -> None:
    """Check a recipe's keys, types and ranges; raise :class:`MmbenchError` naming the key."""
    for key in ("name", "description"):
        if not isinstance(recipe.get(key), str):
            raise MmbenchError(f"{origin}: '{key}' must be a string")
    for section, fields in RECIPE_TABLES.items():
        table = recipe.get(section)
        if not isinstance(table, dict):
            raise MmbenchError(f"{origin}: missing table [{section}]")
        for name, kind in fields.items():
            if not isinstance(table.get(name), kind) or (
                kind is not bool and isinstance(table.get(name), bool)
            ):
                raise MmbenchError(f"{origin}: {section}.{name} must be a {kind.__name__}")
        unknown = set(table) - set(fields)
        if unknown:
            raise MmbenchError(f"{origin}: unknown key {section}.{sorted(unknown)[0]}")
    _validate_filters(recipe, origin)
    if recipe["sessionize"]["gap_seconds"] <= 0:
        raise MmbenchError(f"{origin}: sessionize.gap_seconds must be positive")
    for name in ("test_quantile", "validation_quantile"):
        if not 0.0 < recipe["split"][name] < 1.0:
            raise MmbenchError(f"{origin}: split.{name} must lie strictly between 0 and 1")
    for kind in KINDS:
        encoder = recipe["enrich"][kind.recipe_key]
        if encoder or kind.from_catalog is None:
            try:
                kind.check_encoder(encoder)
            except MmbenchError as exc:
                raise MmbenchError(f"{origin}: enrich.{kind.recipe_key}: {exc}") from None
    if recipe["enrich"]["mgphot_backend"] not in ("local", "http") or recipe["enrich"]["mgphot_limit"] < 0:
        raise MmbenchError(f"{origin}: enrich.mgphot_backend must be local or http, enrich.mgphot_limit >= 0")
    if recipe["split"]["select_before_test_cutoff"] and recipe["sessionize"]["after_filters"]:
        raise MmbenchError(
            f"{origin}: split.select_before_test_cutoff needs every filter to run after sessionizing "
            "(sessionize.after_filters = [])"
        )
    if recipe["instances"]["paper_sampled_negatives"] < 1:
        raise MmbenchError(f"{origin}: instances.paper_sampled_negatives must be at least 1")


def _validate_filters(recipe: dict[str, Any], origin: str) -> None:
    """The [filters] table: known filters with values of their type, and the play filters that
    run before sessionizing (``sessionize.after_filters``) first."""
    filters = recipe.get("filters")
    if not isinstance(filters, dict):
        raise MmbenchError(f"{origin}: missing table [filters]")
    for name, value in filters.items():
        if name not in PLAY_FILTERS + SESSION_FILTERS:
            known = ", ".join(PLAY_FILTERS + SESSION_FILTERS)
            raise MmbenchError(f"{origin}: unknown filter filters.{name} (known: {known})")
        kind = bool if name == "dedupe_session_repeats" else int
        if type(value) is not kind or (kind is int and value < 0):
            raise MmbenchError(f"{origin}: filters.{name} must be a non-negative {kind.__name__}")
    before = recipe["sessionize"]["after_filters"]
    if list(filters)[: len(before)] != before or not set(before) <= set(PLAY_FILTERS):
        raise MmbenchError(
            f"{origin}: sessionize.after_filters must be the first filters of [filters] and only "
            f"play filters ({', '.join(PLAY_FILTERS)}); got {before}"
        )


def enrich_overrides(**values: Any) -> list[str]:
    """``enrich.KEY=VALUE`` overrides for the values given (None: not given), as the build's
    shortcut options (``--audio-encoder``, ``--mgphot-limit``, ...) set them."""
    return [f"enrich.{key}={json.dumps(value)}" for key, value in values.items() if value is not None]


def recipe_toml(recipe: dict) -> str:
    """The recipe as TOML text, for the dataset card."""
    lines = [f"name = {json.dumps(recipe['name'])}", f"description = {json.dumps(recipe['description'])}"]
    for section, table in recipe.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"\n[{section}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"
