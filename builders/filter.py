"""Stage 5, filter: the recipe's filters, in the recipe's order, each one counted."""

from __future__ import annotations

from typing import Any

import polars as pl


def _keep(name: str, value: Any) -> pl.Expr:
    """The expression that is true for the plays the filter ``name`` keeps."""
    if name == "min_user_plays":
        return pl.len().over("user") >= value
    if name == "min_track_plays":
        return pl.len().over("track") >= value
    if name == "dedupe_session_repeats":
        key = pl.col("session").cast(pl.UInt64) * (1 << 32) + pl.col("track").cast(pl.UInt64)
        return key.is_first_distinct()
    if name == "min_session_length":
        return pl.len().over("session") >= value
    if name == "max_session_length":
        return pl.int_range(pl.len()).over("session") < value
    if name == "min_user_sessions":
        return pl.col("session").n_unique().over("user") >= value
    raise ValueError(f"unknown filter {name!r}")


def apply_filters(
    plays: pl.DataFrame, filters: dict[str, Any], names: list[str]
) -> tuple[pl.DataFrame, dict]:
    """Apply the filters ``names`` (in that order) with their values from ``filters``.

    A value of 0 or false skips a filter. Session filters need the ``session`` column and rely
    on plays being in session order. The report gives the plays each filter removed and, after
    each one, how many users, tracks and sessions remain.
    """
    report: dict[str, Any] = {"rows_in": plays.height, "removed": {}, "after": {}}
    for name in names:
        value = filters[name]
        if value is False or value == 0:
            continue
        before = plays.height
        plays = plays.filter(_keep(name, value))
        report["removed"][name] = before - plays.height
        counts = {
            "plays": plays.height,
            "users": plays["user"].n_unique(),
            "tracks": plays["track"].n_unique(),
        }
        if "session" in plays.columns:
            counts["sessions"] = plays["session"].n_unique()
        report["after"][name] = counts
    report["rows_out"] = plays.height
    return plays, report
