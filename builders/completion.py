"""Stage 4, completion: how long each play lasted, and what share of the track that was."""

from __future__ import annotations

import polars as pl


def completion_ratios(plays: pl.DataFrame, durations: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Add ``listen_seconds`` and ``completion_ratio`` (Float32, null where unknown).

    ``listen_seconds`` is the next play's timestamp minus this play's within the same session
    (null for a session's last play); ``completion_ratio`` is listen_seconds / duration clipped
    to [0, 1], null where either is unknown. ``durations`` maps ``track`` to
    ``duration_seconds``. ``plays`` must be in session order (the output of sessionize).
    """
    same_session = pl.col("session").shift(-1) == pl.col("session")
    listen = pl.when(same_session).then(pl.col("timestamp").shift(-1) - pl.col("timestamp"))
    out = (
        plays.with_columns(listen.cast(pl.Float32).alias("listen_seconds"))
        .join(durations.select("track", "duration_seconds"), on="track", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("duration_seconds") > 0)
            .then((pl.col("listen_seconds") / pl.col("duration_seconds")).clip(0.0, 1.0))
            .cast(pl.Float32)
            .alias("completion_ratio")
        )
        .drop("duration_seconds")
    )
    report = {
        "rows_in": plays.height,
        "rows_out": out.height,
        "removed": {},
        "plays_with_listen_seconds": int(out["listen_seconds"].is_not_null().sum()),
        "plays_with_completion_ratio": int(out["completion_ratio"].is_not_null().sum()),
    }
    return out, report
