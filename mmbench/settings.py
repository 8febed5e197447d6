"""``key=value`` overrides of nested settings (recipes, model hyperparameters) from the CLI."""

from __future__ import annotations

import tomllib
from typing import Any

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
