"""Stage 6, split: a global temporal split of sessions by timestamp quantiles."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from mmbench.errors import MmbenchError

SPLITS = ("train", "validation", "test")


def temporal_cutoffs(
    timestamps: np.ndarray, test_quantile: float, validation_quantile: float
) -> tuple[float, float]:
    """The (validation, test) cutoffs: quantiles with linear interpolation (numpy's default).

    The test cutoff is the ``test_quantile`` of all kept timestamps, the validation cutoff the
    ``validation_quantile`` of the kept timestamps strictly before the test cutoff.
    """
    test = float(np.quantile(timestamps, test_quantile))
    earlier = timestamps[timestamps < test]
    if earlier.size == 0:
        raise MmbenchError("every kept play is at the test cutoff; the data is too small to split")
    return float(np.quantile(earlier, validation_quantile)), test


def temporal_split(
    plays: pl.DataFrame,
    test_quantile: float,
    validation_quantile: float,
    cutoffs: tuple[float, float] | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Assign each session to a split by its start time (its first kept play).

    The (validation, test) ``cutoffs`` are the quantiles of the kept plays' timestamps
    (:func:`temporal_cutoffs`) unless given (a selection made before the test cutoff keeps the
    cutoffs it was made at).

    start >= test cutoff: test; else start >= validation cutoff: validation; else train.
    Returns one row per session (``session``, ``user``, ``start``, ``n_tracks``, ``split``) and
    the report with the cutoffs and the plays of training and validation sessions that fall after
    a later cutoff (sessions that straddle it). Fails clearly when a split would be empty.
    """
    validation_cutoff, test_cutoff = cutoffs or temporal_cutoffs(
        plays["timestamp"].to_numpy(), test_quantile, validation_quantile
    )
    sessions = (
        plays.group_by("session", maintain_order=True)
        .agg(pl.col("user").first(), pl.col("timestamp").min().alias("start"), pl.len().alias("n_tracks"))
        .with_columns(
            pl.when(pl.col("start") >= test_cutoff)
            .then(pl.lit("test"))
            .when(pl.col("start") >= validation_cutoff)
            .then(pl.lit("validation"))
            .otherwise(pl.lit("train"))
            .alias("split")
        )
    )
    counts = {s: sessions.filter(pl.col("split") == s) for s in SPLITS}
    # A session belongs to the split of its start, so a session that straddles a cutoff takes
    # plays from after it into the earlier split: counted, so that the docs can say how many.
    split_of_play = plays.select("session", "timestamp").join(
        sessions.select("session", "split"), on="session", how="left"
    )

    def after(split: str, cutoff: float) -> int:
        return split_of_play.filter((pl.col("split") == split) & (pl.col("timestamp") >= cutoff)).height

    straddling = {
        "train_plays_after_validation_cutoff": after("train", validation_cutoff),
        "train_plays_after_test_cutoff": after("train", test_cutoff),
        "validation_plays_after_test_cutoff": after("validation", test_cutoff),
    }
    empty = [s for s in SPLITS if counts[s].height == 0]
    if empty:
        raise MmbenchError(
            f"the {', '.join(empty)} split would be empty ({sessions.height} sessions kept); "
            "relax the recipe's filters or cutoffs"
        )

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    report = {
        "rows_in": plays.height,
        "rows_out": plays.height,
        "removed": {},
        "validation_cutoff": validation_cutoff,
        "test_cutoff": test_cutoff,
        "validation_cutoff_utc": iso(validation_cutoff),
        "test_cutoff_utc": iso(test_cutoff),
        "sessions": {s: counts[s].height for s in SPLITS},
        "plays": {s: int(counts[s]["n_tracks"].sum()) for s in SPLITS},
        "users": {s: counts[s]["user"].n_unique() for s in SPLITS},
        "plays_after_a_later_cutoff": straddling,
    }
    return sessions, report
