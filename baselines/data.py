"""The dataset as the baselines read it: loaded once per run and passed down, each config read
at most once."""

from __future__ import annotations

import functools
import os
from typing import Any

import polars as pl

import mmbench
from mmbench.digests import sha256_bytes
from mmbench.loading import resolve_source

SESSION_COLUMNS = ("session_id", "user_id", "start_time", "track_ids", "completion_ratios")


class Benchmark:
    """One build (a folder or a Hub id) whose configs are read on first use and kept."""

    def __init__(self, source: str | os.PathLike | None = None):
        self.source = resolve_source(source)
        self._frames: dict[tuple[str, str], pl.DataFrame] = {}

    def frame(self, config: str, split: str) -> pl.DataFrame:
        """One config split as a polars frame."""
        if (config, split) not in self._frames:
            self._frames[config, split] = mmbench.load(config, split, source=self.source).to_polars()
        return self._frames[config, split]

    @functools.cached_property
    def tracks(self) -> pl.DataFrame:
        """The catalogue, in its published order (by track id)."""
        return self.frame("tracks", "catalog")

    @functools.cached_property
    def track_ids(self) -> list[str]:
        """Track ids in catalogue order; a neural model's item number i + 1 is ``track_ids[i]``."""
        return self.tracks["track_id"].to_list()

    @functools.cached_property
    def build_report(self) -> dict:
        """The build's ``build_report.json`` (recipe, split cutoffs, protocol rules)."""
        from mmbench.loading import build_report

        return build_report(self.source)

    @functools.cached_property
    def excludes_prefix(self) -> bool:
        """Whether rankings leave out the session prefix: on a build whose next-track target can
        never repeat a prefix track (its ``protocol`` rule), ranking one wastes a slot."""
        from mmbench.loading import target_can_repeat_prefix

        return not target_can_repeat_prefix(self.source)

    def sessions(self, *splits: str) -> pl.DataFrame:
        """The sessions of the splits given, in that order (:data:`SESSION_COLUMNS`)."""
        return pl.concat([self.frame("sessions", s).select(SESSION_COLUMNS) for s in splits])

    def instances(self, task: str, split: str) -> pl.DataFrame:
        """The instances of one task and split, sorted by id."""
        return self.frame("instances", split).filter(pl.col("task") == task).sort("instance_id")


def catalogue_digest(track_ids: list[str]) -> str:
    """SHA-256 over the catalogue's track ids in order: a trained model fits any build with the
    same digest (DESIGN.md section 9; not the dataset fingerprint, which covers the instances)."""
    return sha256_bytes("\n".join(track_ids).encode("utf-8"))


def popularity_order(data: Benchmark) -> list[str]:
    """All catalogue track ids, most played in training first, ties broken by track id."""
    return data.tracks.sort(["n_plays_train", "track_id"], descending=[True, False])["track_id"].to_list()


def instance_inputs(data: Benchmark, task: str, split: str) -> list[dict[str, Any]]:
    """Per instance: its id, the session's ``start`` (every play before it is known), the user's
    plays before the session (time order), the session prefix before the target, each with the
    plays' completion ratios (``history_completion``, ``prefix_completion``; None where
    unknown), and the candidates (paper-sampled only)."""
    instances = data.instances(task, split)
    sessions = data.sessions("train", "validation", "test")
    own = instances.join(
        sessions.select(
            "session_id",
            pl.col("start_time").alias("start"),
            pl.col("track_ids").alias("tracks"),
            pl.col("completion_ratios").alias("ratios"),
        ),
        on="session_id",
    )
    history = (
        own.select("instance_id", "user_id", "start")
        .join(sessions.select("user_id", "start_time", "track_ids", "completion_ratios"), on="user_id")
        .filter(pl.col("start_time") < pl.col("start"))
        .sort("instance_id", "start_time")
        .group_by("instance_id", maintain_order=True)
        .agg(
            pl.col("track_ids").list.explode(keep_nulls=False, empty_as_null=False).alias("history"),
            pl.col("completion_ratios").list.explode(keep_nulls=False, empty_as_null=False).alias("history_completion"),
        )
    )  # fmt: skip
    rows = (
        own.join(history, on="instance_id", how="left")
        .select(
            "instance_id",
            "start",
            pl.col("history").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("history_completion").fill_null(pl.lit([], dtype=pl.List(pl.Float32))),
            pl.col("tracks").list.head(pl.col("position")).alias("prefix"),
            pl.col("ratios").list.head(pl.col("position")).alias("prefix_completion"),
            "candidates",
        )
        .sort("instance_id")
    )
    return rows.to_dicts()
