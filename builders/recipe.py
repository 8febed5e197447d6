"""Recipes: the build's parameters as TOML data, with ``key=value`` overrides from the CLI,
validated once into a typed :class:`Recipe`."""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from mmbench.builders.kinds import KINDS
from mmbench.errors import MmbenchError
from mmbench.settings import Settings, apply_override, validated

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


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
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
    return validated(Recipe, recipe, origin)


Quantile = Annotated[float, Field(gt=0, lt=1)]


class Sessionize(Settings):
    gap_seconds: Annotated[int, Field(gt=0)]  # a longer silence starts a new session
    after_filters: list[str]  # the play filters that run before sessionizing (named for history)


class Split(Settings):
    test_quantile: Quantile
    validation_quantile: Quantile
    select_before_test_cutoff: bool


class Instances(Settings):
    paper_sampled_negatives: Annotated[int, Field(ge=1)]
    seed: int


def _encoder_exists(encoder: str, info: ValidationInfo) -> str:
    kind = next(k for k in KINDS if k.recipe_key == info.field_name)
    if encoder or kind.from_catalog is None:
        try:
            kind.check_encoder(encoder)
        except MmbenchError as exc:
            raise ValueError(str(exc)) from None
    return encoder


# The content kinds' encoders (``<kind>_encoder``, declared once by the kinds) come first, then
# the MGPHot annotation's settings.
Enrich = create_model(
    "Enrich",
    __base__=Settings,
    __validators__={"encoder_exists": field_validator(*(k.recipe_key for k in KINDS))(_encoder_exists)},
    **{kind.recipe_key: (str, ...) for kind in KINDS},
    annotate_mgphot=(bool, ...),
    mgphot_limit=(Annotated[int, Field(ge=0)], ...),  # the most played tracks annotated (0: all)
    mgphot_backend=(Literal["local", "http"], ...),
    mgphot_model=(str, ...),
)


class Recipe(Settings):
    """A build's parameters. ``filters`` maps each filter to its threshold (or, for
    ``dedupe_session_repeats``, a switch) in the order they run; the play filters named by
    ``sessionize.after_filters`` come first and run before sessionizing."""

    name: str
    description: str
    sessionize: Sessionize
    filters: dict[str, int | bool]
    split: Split
    instances: Instances
    enrich: Enrich  # type: ignore[valid-type]

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, filters: dict[str, int | bool]) -> dict[str, int | bool]:
        for name, value in filters.items():
            if name not in PLAY_FILTERS + SESSION_FILTERS:
                raise ValueError(
                    f"unknown filter {name} (known: {', '.join(PLAY_FILTERS + SESSION_FILTERS)})"
                )
            kind = bool if name == "dedupe_session_repeats" else int
            if type(value) is not kind or (kind is int and value < 0):
                raise ValueError(f"{name} must be a non-negative {kind.__name__}")
        return filters

    @model_validator(mode="after")
    def _filter_order(self) -> Recipe:
        before = self.sessionize.after_filters
        if list(self.filters)[: len(before)] != before or not set(before) <= set(PLAY_FILTERS):
            raise ValueError(
                "sessionize.after_filters must be the first filters of [filters] and only "
                f"play filters ({', '.join(PLAY_FILTERS)}); got {before}"
            )
        if self.split.select_before_test_cutoff and before:
            raise ValueError(
                "split.select_before_test_cutoff needs every filter to run after sessionizing "
                "(sessionize.after_filters = [])"
            )
        return self

    def section(self, name: str) -> dict[str, Any]:
        """One table of the recipe as plain values, in its order (stage keys, reports)."""
        value = getattr(self, name)
        return value.model_dump() if isinstance(value, Settings) else dict(value)


def enrich_overrides(**values: Any) -> list[str]:
    """``enrich.KEY=VALUE`` overrides for the values given (None: not given), as the build's
    shortcut options (``--audio-encoder``, ``--mgphot-limit``, ...) set them."""
    return [f"enrich.{key}={json.dumps(value)}" for key, value in values.items() if value is not None]


def recipe_toml(recipe: Recipe) -> str:
    """The recipe as TOML text, for the dataset card."""
    lines = [f"name = {json.dumps(recipe.name)}", f"description = {json.dumps(recipe.description)}"]
    for section, table in recipe.model_dump().items():
        if not isinstance(table, dict):
            continue
        lines.append(f"\n[{section}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"
