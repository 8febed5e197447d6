"""The dataset as the baselines read it: loaded once per run and passed down, each config read
at most once."""

from __future__ import annotations

import functools
import os

import polars as pl

import mmbench
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
