"""Stage 5, filter: the recipe's filters, in the recipe's order, each one counted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from mmbench.builders.recipe import Recipe

# The filters that keep a user or a track by counting its plays or sessions over the whole
# period: the unit each one keeps.
THRESHOLDS = {"min_user_plays": "user", "min_track_plays": "track", "min_user_sessions": "user"}


def _keep(name: str, value: Any, count_before: float | None = None) -> pl.Expr:
    """The expression that is true for the plays the filter ``name`` keeps; with
    ``count_before``, a threshold filter counts only the plays (sessions) before that time."""
    counted = pl.col("timestamp") < count_before if count_before is not None else None
    if name in ("min_user_plays", "min_track_plays"):
        unit = THRESHOLDS[name]
        return (pl.len() if counted is None else counted.sum()).over(unit) >= value
    if name == "dedupe_session_repeats":
        key = pl.col("session").cast(pl.UInt64) * (1 << 32) + pl.col("track").cast(pl.UInt64)
        return key.is_first_distinct()
    if name == "min_session_length":
        return pl.len().over("session") >= value
    if name == "max_session_length":
        return pl.int_range(pl.len()).over("session") < value
    if name == "min_user_sessions":
        sessions = pl.col("session") if counted is None else pl.col("session").filter(counted)
        return sessions.n_unique().over("user") >= value
    raise ValueError(f"unknown filter {name!r}")


def apply_filters(
    plays: pl.DataFrame,
    filters: dict[str, Any],
    names: list[str],
    reached: dict[str, pl.DataFrame] | None = None,
    count_before: float | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Apply the filters ``names`` (in that order) with their values from ``filters``.

    With ``count_before`` (a time), the threshold filters count only the plays, and the sessions
    that start, before it: users and tracks are selected on what was known then.

    A value of 0 or false skips a filter. Session filters need the ``session`` column and rely
    on plays being in session order. The report gives the plays each filter removed and, after
    each one, how many users, tracks and sessions remain. With ``reached``, each threshold
    filter also records there when each unit it keeps reached its threshold
    (:func:`threshold_reached`).
    """
    report: dict[str, Any] = {"rows_in": plays.height, "removed": {}, "after": {}}
    for name in names:
        value = filters[name]
        if value is False or value == 0:
            continue
        if reached is not None and name in THRESHOLDS:
            reached[name] = threshold_reached(plays, name, value)
        before = plays.height
        plays = plays.filter(_keep(name, value, count_before))
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


def threshold_reached(plays: pl.DataFrame, name: str, value: int) -> pl.DataFrame:
    """For the threshold filter ``name`` at ``value`` applied to ``plays``: each unit it keeps
    (``unit``) and the time it reached the threshold (``reached``: its ``value``-th earliest
    play, or for sessions the start of its ``value``-th session). A unit passes the threshold
    counted on the plays before a cutoff exactly when it reached it before the cutoff."""
    unit = THRESHOLDS[name]
    events = plays.select(unit, "timestamp")
    if name == "min_user_sessions":
        events = plays.group_by("user", "session").agg(pl.col("timestamp").min()).select(unit, "timestamp")
    return (
        events.group_by(unit)
        .agg(pl.col("timestamp").bottom_k(value).max().alias("reached"), pl.len())
        .filter(pl.col("len") >= value)
        .select(pl.col(unit).alias("unit"), "reached")
    )


def passed_only_with_later_plays(reached: dict[str, pl.DataFrame], cutoff: float) -> dict[str, pl.Series]:
    """Per threshold filter: the units that pass it but would not on the plays before
    ``cutoff`` alone, the other filters unchanged (they reached the threshold only at or after
    the cutoff). ``reached`` comes from :func:`apply_filters`."""
    return {name: frame.filter(pl.col("reached") >= cutoff)["unit"] for name, frame in reached.items()}


def kept_only_with_later_plays(found: dict[str, pl.Series], kept: pl.Series, unit: str) -> pl.Series:
    """The kept units (``user`` or ``track`` codes) that pass some threshold only thanks to
    plays after the cutoff (``found``: :func:`passed_only_with_later_plays`)."""
    owing = [found[n] for n in found if THRESHOLDS[n] == unit]
    union = pl.concat(owing).unique() if owing else pl.Series(unit, [], dtype=kept.dtype)
    return union.filter(union.is_in(kept.implode())).sort()


def later_plays_report(
    found: dict[str, pl.Series], plays: pl.DataFrame, sessions: pl.DataFrame, filters: dict[str, Any]
) -> dict:
    """How much the selection of users and tracks owes to plays after the test cutoff: per
    threshold filter, the units that pass it only thanks to them and how many of those the
    build keeps; then the kept users and tracks in that case under any filter, and the
    catalogue tracks without a training play."""
    kept = {"user": plays["user"].unique(), "track": plays["track"].unique()}
    per_filter = {}
    for name, units in found.items():
        unit = THRESHOLDS[name]
        per_filter[name] = {
            "unit": unit,
            "threshold": filters[name],
            "pass_only_with_later_plays": units.len(),
            "kept": int(units.is_in(kept[unit].implode()).sum()),
        }
    report: dict[str, Any] = {"filters": per_filter}
    for unit in ("user", "track"):
        report[f"{unit}s_kept"] = kept[unit].len()
        report[f"{unit}s_kept_only_with_later_plays"] = kept_only_with_later_plays(
            found, kept[unit], unit
        ).len()
    train = plays.join(sessions.filter(pl.col("split") == "train").select("session"), on="session")
    report["tracks_without_training_play"] = kept["track"].len() - train["track"].n_unique()
    return report


def describe_filters(recipe: Recipe) -> list[str]:
    """One sentence per filter of ``recipe`` that is on, in the order the build applies them,
    saying what it does to the plays and sessions (the card and docs/protocol.md print them)."""
    values = recipe.filters
    before = recipe.sessionize.after_filters
    gap = recipe.sessionize.gap_seconds
    counted = (
        "counted on the plays before the test cutoff"
        if recipe.split.select_before_test_cutoff
        else "counted over the whole period"
    )
    what = {
        "min_user_plays": f"keeps the users with at least {{v:,}} plays ({counted})",
        "min_track_plays": f"keeps the tracks with at least {{v:,}} plays ({counted})",
        "dedupe_session_repeats": "removes every repeat of a track within a session, keeping its first "
        "play (so no track occurs twice in a session)",
        "min_session_length": "drops the sessions with fewer than {v} plays left",
        "max_session_length": "cuts every longer session to its first {v} plays (the rest of the "
        "session is removed; the session is kept)",
        "min_user_sessions": f"keeps the users with at least {{v:,}} sessions left ({counted.replace('plays', 'sessions')})",
    }
    steps = [f"`{n}` {what[n].format(v=values[n])}" for n in before if values[n]]
    steps.append(f"sessions are cut where the gap between two plays of a user exceeds {gap:,} s")
    steps += [f"`{n}` {what[n].format(v=values[n])}" for n in values if n not in before and values[n]]
    return steps
