"""Stage 3, sessionize: cut each user's plays into sessions at gaps longer than the recipe's."""

from __future__ import annotations

import polars as pl


def sessionize(plays: pl.DataFrame, gap_seconds: int) -> tuple[pl.DataFrame, dict]:
    """Sort each user's plays ascending in time and number the sessions.

    Plays with equal timestamps keep the reverse of their file order, since the raw file runs
    newest first. A session starts at a user's first play and wherever the gap to the previous
    play exceeds ``gap_seconds`` (a gap of exactly ``gap_seconds`` stays in the session).
    Returns the plays in (user, time) order with a ``session`` number (UInt32, increasing).
    """
    ordered = plays.sort(["user", "timestamp", "line"], descending=[False, False, True])
    starts = (pl.col("user") != pl.col("user").shift(1)).fill_null(True) | (
        pl.col("timestamp").diff() > gap_seconds
    ).fill_null(True)
    ordered = ordered.with_columns((starts.cast(pl.UInt32).cum_sum() - 1).alias("session"))
    n_sessions = int(ordered["session"][-1]) + 1 if ordered.height else 0
    report = {"rows_in": plays.height, "rows_out": ordered.height, "removed": {}, "sessions": n_sessions}
    return ordered, report
