"""Stage 7, instances: the evaluation instances of the next-track and paper-sampled tasks."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from mmbench.errors import MmbenchError
from mmbench.schema import SCHEMAS
from mmbench.segments import popularity_group, popularity_thresholds

INSTANCE_COLUMNS = SCHEMAS["instances"].names  # the contract's columns, labels included


def _stable_seed(seed: int, key: str) -> list[int]:
    return [seed, int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")]


def sample_negatives(n_catalog: int, excluded: np.ndarray, n: int, seed: int, key: str) -> np.ndarray:
    """``n`` distinct catalogue indices drawn uniformly from those not in ``excluded``.

    The generator is seeded by (seed, SHA-256 of ``key``), so each instance's draw is fixed
    and independent of every other instance.
    """
    excluded = np.unique(excluded)
    if n_catalog - excluded.size < n:
        raise MmbenchError(
            f"{key}: only {n_catalog - excluded.size} tracks outside the user's history, "
            f"{n} negatives requested"
        )
    rng = np.random.default_rng(_stable_seed(seed, key))
    drawn = rng.choice(n_catalog, size=min(n_catalog, n + excluded.size), replace=False)
    return drawn[~np.isin(drawn, excluded)][:n]


def _earlier_plays_of_target(table: pl.DataFrame, plays: pl.DataFrame) -> pl.DataFrame:
    """Per instance, its user's plays of its target before it: in a session that starts earlier
    (``in_prefix`` false) or earlier in the instance's own session (``in_prefix`` true)."""
    pair = pl.col("user").cast(pl.UInt64) * (1 << 32) + pl.col("track").cast(pl.UInt64)
    asked = table.select("instance_id", "session", "start", "position", pair.alias("pair"))
    earlier = plays.select(
        pair.alias("pair"), pl.col("session").alias("play_session"), pl.col("start").alias("play_start"),
        pl.col("position").alias("at"),
    )  # fmt: skip
    in_prefix = (pl.col("play_session") == pl.col("session")) & (pl.col("at") < pl.col("position"))
    return (
        asked.join(earlier, on="pair")
        .filter((pl.col("play_start") < pl.col("start")) | in_prefix)
        .select("instance_id", in_prefix.alias("in_prefix"))
    )


def target_can_repeat_prefix(filters: dict) -> bool:
    """Whether a recipe lets a next-track target repeat a track of its session prefix: not when
    it removes a track's repeats within a session (``dedupe_session_repeats``), whatever the
    other filters do, since the target and the prefix are plays of one session."""
    return not filters.get("dedupe_session_repeats", False)


def build_instances(
    plays: pl.DataFrame,
    sessions: pl.DataFrame,
    catalog: np.ndarray,
    track_ids: pl.Series,
    user_ids: pl.Series,
    negatives: int,
    seed: int,
    can_repeat_prefix: bool = True,
) -> tuple[dict[str, pl.DataFrame], dict]:
    """The instances of both tasks for the validation and test splits.

    ``plays`` hold ``session`` and ``track`` codes in session order; ``sessions`` are the split
    stage's output with a ``session_id``; ``catalog`` holds the sorted track codes of the
    catalogue, ``track_ids`` maps track codes to ids and ``user_ids`` user codes to ids.

    next-track: one instance per session of the split whose user has a training session,
    target its last track. paper-sampled: per such user, the first play of their first session
    in the split, with ``negatives`` tracks drawn uniformly from the catalogue minus the target
    and every track of the instance's input (the user's plays in sessions that start before
    it: training, and validation for test instances).

    Each instance also gets the labels of its target that the evaluation breakdown groups by
    (docs/protocol.md): ``target_heard_before`` (the user played it before: in an earlier
    session or the session prefix), ``target_popularity`` (head, torso or tail of the
    catalogue's training plays), ``target_cold`` (no training play) and ``target_cold_new``
    (cold and never played by the user before: what neither a history nor an ID can find).

    ``can_repeat_prefix`` is the recipe's rule (:func:`target_can_repeat_prefix`); the report
    states it with the count of next-track targets found in their prefix, and a build whose
    rule says "never" but whose data has one fails.

    A session's plays are put in session order here (time, then the reverse of file order for
    equal times, as :func:`~mmbench.builders.sessionize.sessionize` orders them), so the targets
    do not depend on the order of the rows given.
    """
    plays = (
        plays.join(sessions.select("session", "session_id", "split", "user", "start"), on="session")
        .sort(["session", "timestamp", "line"], descending=[False, False, True])
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over("session").alias("position"))
    )
    train_users = sessions.filter(pl.col("split") == "train")["user"].unique()
    tables = []
    report: dict = {"next-track": {}, "paper-sampled": {}}
    for split in ("validation", "test"):
        eligible = sessions.filter((pl.col("split") == split) & pl.col("user").is_in(train_users.implode()))
        tables.append(_split_instances(split, eligible, plays, catalog, track_ids, negatives, seed))
        for task in ("next-track", "paper-sampled"):
            report[task][split] = int((tables[-1]["task"] == task).sum())
    # Both splits are labelled at once: one join with the plays instead of one per split.
    n_plays_train = _train_play_counts(plays, catalog)
    everything = pl.concat(tables)
    earlier = _earlier_plays_of_target(everything, plays)
    labelled = _labelled(everything, earlier, catalog, n_plays_train, track_ids, user_ids)
    in_prefix = everything.filter(
        (pl.col("task") == "next-track")
        & pl.col("instance_id").is_in(earlier.filter("in_prefix")["instance_id"].implode())
    )
    report["target_can_repeat_prefix"] = can_repeat_prefix
    report["next_track_targets_in_prefix"] = {
        split: int((in_prefix["split"] == split).sum()) for split in ("validation", "test")
    }
    if not can_repeat_prefix and in_prefix.height:
        raise MmbenchError(
            f"{in_prefix.height} next-track targets repeat a track of their session prefix, which the "
            "recipe's dedupe_session_repeats rules out"
        )
    out = {
        split: labelled.filter(pl.col("split") == split).select(INSTANCE_COLUMNS).sort("task", "instance_id")
        for split in ("validation", "test")
    }
    report["rows_in"] = report["rows_out"] = plays.height
    report["removed"] = {}
    return out, report


def targets_among(tables: dict[str, pl.DataFrame], tracks: pl.Series, identified: pl.DataFrame) -> dict:
    """Per split and task, how many instances have a target among ``tracks`` (codes), of how
    many (``identified`` maps codes to ids)."""
    ids = identified.filter(pl.col("track").is_in(tracks.implode()))["track_id"]
    return {
        split: {
            task: {"targets": int(rows.filter(pl.col("task") == task)["target_track_id"].is_in(ids.implode()).sum()),
                   "instances": int((rows["task"] == task).sum())}
            for task in ("next-track", "paper-sampled")
        }
        for split, rows in tables.items()
    }  # fmt: skip


def _split_instances(
    split: str,
    eligible: pl.DataFrame,
    plays: pl.DataFrame,
    catalog: np.ndarray,
    track_ids: pl.Series,
    negatives: int,
    seed: int,
) -> pl.DataFrame:
    """Both tasks' instances of one split, from its ``eligible`` sessions (those whose user has
    a training session)."""
    in_split = plays.filter(pl.col("session").is_in(eligible["session"].implode()))
    no_candidates = pl.lit(None, dtype=pl.List(pl.String)).alias("candidates")
    next_track = _next_track(in_split).with_columns(no_candidates)
    paper = _paper_sampled(split, eligible, in_split, plays, catalog, track_ids, negatives, seed)
    table = pl.concat([next_track, paper]).with_columns(pl.lit(split).alias("split"))
    if table.height == 0:
        raise MmbenchError(f"no {split} instance: no {split} session has a user with a training session")
    return table


def _train_play_counts(plays: pl.DataFrame, catalog: np.ndarray) -> np.ndarray:
    """Each catalogue track's number of training plays, in ``catalog`` order."""
    train_counts = plays.filter(pl.col("split") == "train").group_by("track").len()
    n_plays_train = np.zeros(len(catalog), dtype=np.int64)
    n_plays_train[np.searchsorted(catalog, train_counts["track"].to_numpy())] = train_counts["len"].to_numpy()
    return n_plays_train


def _next_track(in_split: pl.DataFrame) -> pl.DataFrame:
    """One instance per session: the target is its last track."""
    last = in_split.group_by("session", maintain_order=True).agg(
        pl.col("session_id").first(),
        pl.col("user").first(),
        pl.col("start").first(),
        pl.col("track").last(),
        (pl.len() - 1).cast(pl.Int32).alias("position"),
    )
    return last.select(
        pl.format("next-track/{}", "session_id").alias("instance_id"),
        pl.lit("next-track").alias("task"),
        "user",
        "session",
        "session_id",
        "start",
        "position",
        "track",
    )


def _paper_sampled(
    split: str,
    eligible: pl.DataFrame,
    in_split: pl.DataFrame,
    plays: pl.DataFrame,
    catalog: np.ndarray,
    track_ids: pl.Series,
    negatives: int,
    seed: int,
) -> pl.DataFrame:
    """Per user, the first play of their first session in the split, with its candidates: the
    target and ``negatives`` tracks outside the instance's input."""
    first = (
        eligible.sort("user", "start", "session")
        .group_by("user", maintain_order=True)
        .agg(pl.col("session").first(), pl.col("session_id").first(), pl.col("start").first())
        .join(in_split.group_by("session", maintain_order=True).agg(pl.col("track").first()), on="session")
        .sort("user")
    )
    heard = (
        first.select("user", "session", pl.col("start").alias("instance_start"))
        .join(plays.select("user", "start", pl.col("track").alias("heard")), on="user")
        .filter(pl.col("start") < pl.col("instance_start"))
        .group_by("session")
        .agg(pl.col("heard").unique())
    )
    first = first.join(heard, on="session", how="left", maintain_order="left")
    candidates = []
    for session_id, target, input_tracks in first.select("session_id", "track", "heard").iter_rows():
        excluded = np.searchsorted(catalog, np.append(input_tracks or [], target))
        drawn = sample_negatives(
            len(catalog), excluded, negatives, seed, f"paper-sampled/{split}/{session_id}"
        )
        candidates.append(sorted(track_ids.gather(np.append(catalog[drawn], target)).to_list()))
    return first.select(
        pl.format("paper-sampled/{}/{}", pl.lit(split), "session_id").alias("instance_id"),
        pl.lit("paper-sampled").alias("task"),
        "user",
        "session",
        "session_id",
        "start",
        pl.lit(0, dtype=pl.Int32).alias("position"),
        "track",
    ).with_columns(pl.Series("candidates", candidates, dtype=pl.List(pl.String)))


def _labelled(
    table: pl.DataFrame,
    earlier: pl.DataFrame,
    catalog: np.ndarray,
    n_plays_train: np.ndarray,
    track_ids: pl.Series,
    user_ids: pl.Series,
) -> pl.DataFrame:
    """The instances with their ids and their targets' segment labels, in the published form."""
    n_target = n_plays_train[np.searchsorted(catalog, table["track"].to_numpy())]
    heard = pl.col("instance_id").is_in(earlier["instance_id"].unique().implode())
    return table.with_columns(
        pl.Series("user_id", user_ids.gather(table["user"])),
        pl.Series("target_track_id", track_ids.gather(table["track"])),
        heard.alias("target_heard_before"),
        pl.Series("target_popularity", popularity_group(n_target, popularity_thresholds(n_plays_train))),
        pl.Series("target_cold", n_target == 0),
    ).with_columns((pl.col("target_cold") & ~pl.col("target_heard_before")).alias("target_cold_new"))
