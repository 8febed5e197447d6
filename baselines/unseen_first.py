"""Unseen first, a protocol probe: the catalogue tracks that nobody played before the period of
the instance's split began, then the popularity ranking.

No model and no content. The catalogue holds only tracks that pass the recipe's play thresholds
over the whole period, so a catalogue track with no play before a split's cutoff is certain to
be played after it: this rule reads the future out of the catalogue's membership, using only
what is known at the instance's session start (the cutoff precedes it). A cold-start claim is
meaningful only above it on the same segment (docs/protocol.md).

Why the split's cutoff and not the session's start: a track stays certain to be played in the
period once someone has played it there, and new tracks are played most in the weeks after they
appear; "no play before the session" drops them as soon as anyone plays them. Chosen on the
sample's validation split: of its 40 cold targets, the session-start version keeps 3 at their
session's start, the cutoff's version all 40.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mmbench.baselines import BaselineSettings as Settings  # a description, nothing to set
from mmbench.baselines.data import Benchmark
from mmbench.schema import MAX_PREDICTIONS


def fit(data: Benchmark, config: Settings) -> dict:
    """Each catalogue track's first play (any user, any split), in the order the ranking takes
    unseen tracks: popularity order, which for tracks without a training play is track id; and
    the build's split cutoffs."""
    plays = (
        pl.concat(
            [
                data.frame("sessions", s).select("track_ids", "timestamps")
                for s in ("train", "validation", "test")
            ]
        )
        .explode("track_ids", "timestamps")
        .group_by("track_ids")
        .agg(pl.col("timestamps").min().alias("first"))
    )
    order = (
        data.tracks.select("track_id", "n_plays_train")
        .join(plays, left_on="track_id", right_on="track_ids", how="left")
        .sort(["n_plays_train", "track_id"], descending=[True, False])
    )
    first = order["first"].dt.epoch("s").fill_null(np.iinfo(np.int64).max).to_numpy()
    cut = data.build_report["stages"]["split"]
    return {
        "track_ids": order["track_id"].to_list(),
        "first": first,
        "cutoffs": (cut["validation_cutoff"], cut["test_cutoff"]),
    }


def score(inputs: dict, state: dict, config: Settings) -> dict[str, float]:
    """The first tracks, in popularity order, whose first play is at or after the cutoff of
    the instance's split (the rest of the ranking is the popularity back-off)."""
    start = inputs["start"].timestamp()
    validation, test = state["cutoffs"]
    period = test if start >= test else validation
    unseen = np.flatnonzero(state["first"] >= period)
    if inputs["candidates"] is None:  # only the top of the ranking matters
        unseen = unseen[: MAX_PREDICTIONS + len(inputs["prefix"])]
    return {state["track_ids"][i]: 1.0 for i in unseen}
