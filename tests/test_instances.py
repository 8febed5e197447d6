"""Evaluation instances: targets independent of row order, and the paper-sampled negatives."""

import numpy as np
import polars as pl
import pytest
from scipy.stats import chisquare

from mmbench.builders.instances import build_instances, sample_negatives
from mmbench.builders.sessionize import sessionize
from mmbench.builders.split import temporal_split
from mmbench.errors import MmbenchError

N_TRACKS = 400


def _stream(seed: int = 0, n_users: int = 12, n_plays: int = 3000) -> pl.DataFrame:
    """Random plays (line, user, timestamp, track), with equal timestamps and long gaps."""
    rng = np.random.default_rng(seed)
    timestamps = np.cumsum(rng.choice([0, 60, 200, 5000], size=n_plays, p=[0.1, 0.5, 0.3, 0.1]))
    return pl.DataFrame(
        {
            "line": np.arange(1, n_plays + 1, dtype=np.uint32),
            "user": rng.integers(0, n_users, n_plays).astype(np.uint32),
            "timestamp": timestamps.astype(np.int64),
            "track": rng.integers(0, N_TRACKS, n_plays).astype(np.uint32),
        }
    )


def _instances(plays: pl.DataFrame, negatives: int = 20) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    ordered, _ = sessionize(plays, 1200)
    sessions, _ = temporal_split(ordered, 0.8, 0.8)
    sessions = sessions.with_columns(pl.format("u{}:{}", "user", "start").alias("session_id"))
    track_ids = pl.Series([f"t{i:04d}" for i in range(N_TRACKS)])
    user_ids = pl.Series([f"u{i}" for i in range(int(plays["user"].max()) + 1)])
    catalog = np.arange(N_TRACKS, dtype=np.uint32)
    tables, _ = build_instances(ordered, sessions, catalog, track_ids, user_ids, negatives, 7)
    return tables, ordered.join(sessions.select("session", "session_id", "split", "start"), on="session")


def test_targets_do_not_depend_on_row_order():
    plays = _stream()
    ordered, _ = sessionize(plays, 1200)
    expected, _ = _instances(plays)
    for seed in range(3):
        shuffled = ordered.sample(fraction=1.0, shuffle=True, seed=seed)
        sessions, _ = temporal_split(ordered, 0.8, 0.8)
        sessions = sessions.with_columns(pl.format("u{}:{}", "user", "start").alias("session_id"))
        got, _ = build_instances(
            shuffled,
            sessions.sample(fraction=1.0, shuffle=True, seed=seed),
            np.arange(N_TRACKS, dtype=np.uint32),
            pl.Series([f"t{i:04d}" for i in range(N_TRACKS)]),
            pl.Series([f"u{i}" for i in range(12)]),
            20,
            7,
        )
        for split in ("validation", "test"):
            assert got[split].equals(expected[split])


def test_targets_and_inputs_against_a_plain_python_reference():
    tables, plays = _instances(_stream(1))
    by_session: dict[str, list[dict]] = {}
    for row in plays.sort("line").to_dicts():
        by_session.setdefault(row["session_id"], []).append(row)
    for rows in by_session.values():  # session order written out: time, then later lines first
        rows.sort(key=lambda r: (r["timestamp"], -r["line"]))
    split_of = {s: rows[0]["split"] for s, rows in by_session.items()}
    start_of = {s: min(r["timestamp"] for r in rows) for s, rows in by_session.items()}
    user_of = {s: f"u{rows[0]['user']}" for s, rows in by_session.items()}
    train_users = {user_of[s] for s in by_session if split_of[s] == "train"}
    for split in ("validation", "test"):
        table = tables[split]
        next_track = table.filter(pl.col("task") == "next-track")
        expected = {
            s: f"t{rows[-1]['track']:04d}"
            for s, rows in by_session.items()
            if split_of[s] == split and user_of[s] in train_users
        }
        assert dict(zip(next_track["session_id"], next_track["target_track_id"], strict=True)) == expected
        assert set(next_track["user_id"]) <= train_users  # every user has a training session
        paper = table.filter(pl.col("task") == "paper-sampled")
        for row in paper.to_dicts():
            session = row["session_id"]
            firsts = [s for s in by_session if user_of[s] == row["user_id"] and split_of[s] == split]
            assert session == min(firsts, key=lambda s: start_of[s])
            assert row["target_track_id"] == f"t{by_session[session][0]['track']:04d}"
            heard = {
                f"t{r['track']:04d}"
                for s, rows in by_session.items()
                if user_of[s] == row["user_id"] and start_of[s] < start_of[session]
                for r in rows
            }
            candidates = row["candidates"]
            assert len(candidates) == len(set(candidates)) == 21
            assert candidates.count(row["target_track_id"]) == 1
            assert not (set(candidates) - {row["target_track_id"]}) & heard


def test_test_negatives_exclude_validation_plays():
    tables, plays = _instances(_stream(2))
    paper = tables["test"].filter(pl.col("task") == "paper-sampled")
    checked = 0
    for row in paper.to_dicts():
        start = plays.filter(pl.col("session_id") == row["session_id"])["start"][0]
        validation = plays.filter(
            (pl.col("split") == "validation")
            & (pl.format("u{}", "user") == row["user_id"])
            & (pl.col("start") < start)
        )
        heard = {f"t{t:04d}" for t in validation["track"].to_list()}
        checked += bool(heard)
        assert not (set(row["candidates"]) - {row["target_track_id"]}) & heard
    assert checked > 0


def test_negatives_are_distinct_exclude_and_are_fixed_per_instance():
    excluded = np.array([3, 5, 5, 7, 100])
    a = sample_negatives(200, excluded, 199 - 5, seed=1, key="paper-sampled/test/x")
    assert len(set(a.tolist())) == a.size == 194
    assert not set(a.tolist()) & {3, 5, 7, 100}
    again = sample_negatives(200, excluded, 194, seed=1, key="paper-sampled/test/x")
    assert np.array_equal(a, again)
    other = sample_negatives(200, excluded, 194, seed=1, key="paper-sampled/test/y")
    assert not np.array_equal(a, other)
    with pytest.raises(MmbenchError, match="only 196 tracks"):
        sample_negatives(200, excluded, 197, seed=1, key="k")


def test_negatives_are_uniform_over_the_allowed_tracks():
    n_catalog, excluded, n = 60, np.array([0, 1, 2, 30, 59]), 10
    counts = np.zeros(n_catalog)
    for i in range(3000):
        counts[sample_negatives(n_catalog, excluded, n, seed=3, key=f"instance-{i}")] += 1
    allowed = np.setdiff1d(np.arange(n_catalog), excluded)
    assert counts[excluded].sum() == 0
    # Each allowed track is drawn with probability n / 55 per instance.
    assert chisquare(counts[allowed]).pvalue > 0.001
