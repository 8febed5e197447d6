"""The dataset as the baselines read it: loaded once per run and passed down, each config read
at most once."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, overload

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


class InstanceInputs(Sequence[dict[str, Any]]):
    """Per instance (sorted by id): its id, the session's ``start`` (every play before it is
    known), the user's plays before the session in time order (``history``), the session prefix
    before the target (``prefix``), each with the plays' completion ratios
    (``history_completion``, ``prefix_completion``; None where unknown), and the candidates
    (paper-sampled only).

    A row is made when it is read: its history is a slice of one list of every play, users one
    after the other in time order, so memory holds each play once instead of once per instance
    of its user (a user's test instances share almost all of their history)."""

    def __init__(self, data: Benchmark, task: str, split: str):
        instances = data.instances(task, split)
        # A user's sessions never overlap, so the plays before a session's start are exactly
        # those of the user's earlier sessions: one slice of the user's plays in time order.
        ordered = data.sessions("train", "validation", "test").sort("user_id", "start_time", "session_id")
        lengths = ordered["track_ids"].list.len()
        placed = ordered.select(
            "session_id",
            "user_id",
            pl.col("start_time").alias("start"),
            pl.col("track_ids").alias("tracks"),
            pl.col("completion_ratios").alias("ratios"),
            (lengths.cum_sum() - lengths).alias("end"),
        ).with_columns(pl.col("end").min().over("user_id").alias("begin"))
        rows = (
            instances.join(placed, on="session_id")
            .select(
                "instance_id",
                "start",
                "begin",
                "end",
                pl.col("tracks").list.head(pl.col("position")).alias("prefix"),
                pl.col("ratios").list.head(pl.col("position")).alias("prefix_completion"),
                "candidates",
            )
            .sort("instance_id")
        )
        self._tracks = ordered["track_ids"].explode().to_list()
        self._ratios = ordered["completion_ratios"].explode().to_list()
        self._spans = list(zip(rows["begin"].to_list(), rows["end"].to_list(), strict=True))
        self._rows = rows.drop("begin", "end").to_dicts()

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, index: int) -> dict[str, Any]:
        begin, end = self._spans[index]
        return {
            **self._rows[index],
            "history": self._tracks[begin:end],
            "history_completion": self._ratios[begin:end],
        }

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        return self._row(range(len(self))[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._row(i) for i in range(len(self)))


def instance_inputs(data: Benchmark, task: str, split: str) -> InstanceInputs:
    """What a memory-based baseline reads of each instance of ``task``/``split``
    (:class:`InstanceInputs`)."""
    return InstanceInputs(data, task, split)
