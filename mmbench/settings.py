"""Settings (recipes, model hyperparameters): typed models validated once, and the CLI's
``key=value`` overrides of their nested values."""

from __future__ import annotations

import tomllib
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mmbench.errors import MmbenchError


def leaf_keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of every non-table value of a nested dict."""
    keys = []
    for k, v in node.items():
        keys += leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return keys


def apply_override(settings: dict[str, Any], item: str, what: str = "setting") -> None:
    """Set ``a.b=value`` in ``settings`` in place; the key must exist and the type must match.

    The value is a TOML literal (``500``, ``0.8``, ``true``, ``"x"``, ``[1, 2]``); a bare word
    is taken as a string; an int is accepted where a float is expected.
    """
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise MmbenchError(f"--set {item!r}: expected key=value, e.g. filters.min_user_plays=500")
    parts = key.split(".")
    node = settings
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise MmbenchError(f"--set {item!r}: unknown {what} key {key!r}")
        node = node[part]
    leaf = parts[-1]
    if leaf not in node or isinstance(node[leaf], dict):
        known = ", ".join(leaf_keys(settings))
        raise MmbenchError(f"--set {item!r}: unknown {what} key {key!r} (known: {known})")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    old = node[leaf]
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(old):
        raise MmbenchError(f"--set {item!r}: {key} expects a {type(old).__name__}, got {raw!r}")
    node[leaf] = value


class Settings(BaseModel):
    """Typed settings, validated once: an unknown key, a missing one or a value of another type
    fails; fields are read by name (``config.learning_rate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as the original was."""
        return self.model_validate({**self.model_dump(), **changes})


SettingsT = TypeVar("SettingsT", bound=Settings)


def validation_problems(exc: ValidationError, what: str = "") -> str:
    """Pydantic's errors as one line: ``field.path: message, got value; ...``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or what
        where = f"{where}: " if where else ""
        given = error.get("input")
        got = (
            f", got {given!r}"
            if isinstance(given, str | int | float) and error["type"] != "value_error"
            else ""
        )
        problems.append(f"{where}{error['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(problems)


def validated(kind: type[SettingsT], data: dict[str, Any], origin: str) -> SettingsT:
    """``data`` as ``kind``; a :class:`MmbenchError` naming ``origin`` and each bad field."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise MmbenchError(f"{origin}: {validation_problems(exc)}") from None
