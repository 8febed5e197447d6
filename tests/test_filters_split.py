"""The filters and the split against straightforward reference implementations on random data."""

import math
from collections import Counter

import numpy as np
import polars as pl
import pytest

from mmbench.builders.filters import apply_filters
from mmbench.builders.recipe import PLAY_FILTERS, SESSION_FILTERS
from mmbench.builders.sessionize import sessionize
from mmbench.builders.split import temporal_split

ORDER = [*PLAY_FILTERS, *SESSION_FILTERS]
# Thresholds under which every filter removes something from the random streams below.
VALUES = {
    "min_user_plays": 150,
    "min_track_plays": 4,
    "dedupe_session_repeats": True,
    "min_session_length": 3,
    "max_session_length": 5,
    "min_user_sessions": 40,
}


def _random_plays(seed: int, n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 13)
    user = rng.choice(12, size=n, p=weights / weights.sum())
    gaps = rng.choice([0, 30, 200, 1200, 1201, 5000], size=n, p=[0.05, 0.3, 0.4, 0.05, 0.05, 0.15])
    frame = pl.DataFrame({"user": user.astype(np.uint32), "gap": gaps})
    frame = frame.with_columns(
        (1_200_000_000 + pl.col("gap").cum_sum().over("user")).cast(pl.Int64).alias("timestamp")
    )
    order = rng.permutation(n)  # the file's order is not the time order
    return frame[order].select(
        pl.int_range(1, n + 1, dtype=pl.UInt32).alias("line"),
        "user",
        "timestamp",
        pl.Series("track", rng.zipf(1.6, n).clip(max=60).astype(np.uint32)),
    )


def _reference(rows: list[dict], values: dict, gap: int) -> list[tuple]:
    """Sessionize and filter with plain Python lists, one rule at a time."""
    by_user: dict[int, list[dict]] = {}
    for r in rows:
        by_user.setdefault(r["user"], []).append(r)
    plays = []
    session = -1
    for user in sorted(by_user):
        ordered = sorted(by_user[user], key=lambda r: (r["timestamp"], -r["line"]))
        for i, r in enumerate(ordered):
            if i == 0 or r["timestamp"] - ordered[i - 1]["timestamp"] > gap:
                session += 1
            plays.append({**r, "session": session})
    for name in ORDER:
        v = values[name]
        if name == "min_user_plays":
            c = Counter(p["user"] for p in plays)
            plays = [p for p in plays if c[p["user"]] >= v]
        elif name == "min_track_plays":
            c = Counter(p["track"] for p in plays)
            plays = [p for p in plays if c[p["track"]] >= v]
        elif name == "dedupe_session_repeats":
            seen, out = set(), []
            for p in plays:
                if (p["session"], p["track"]) not in seen:
                    seen.add((p["session"], p["track"]))
                    out.append(p)
            plays = out
        elif name == "min_session_length":
            c = Counter(p["session"] for p in plays)
            plays = [p for p in plays if c[p["session"]] >= v]
        elif name == "max_session_length":
            pos: Counter = Counter()
            out = []
            for p in plays:
                if pos[p["session"]] < v:
                    out.append(p)
                pos[p["session"]] += 1
            plays = out
        elif name == "min_user_sessions":
            sessions: dict[int, set] = {}
            for p in plays:
                sessions.setdefault(p["user"], set()).add(p["session"])
            plays = [p for p in plays if len(sessions[p["user"]]) >= v]
    return [(p["line"], p["session"]) for p in plays]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sessionize_and_filters_match_the_reference(seed):
    frame = _random_plays(seed)
    values = VALUES
    ordered, _ = sessionize(frame, 1200)
    kept, report = apply_filters(ordered, values, ORDER)
    expected = _reference(frame.to_dicts(), values, 1200)
    assert list(zip(kept["line"].to_list(), kept["session"].to_list(), strict=True)) == expected
    assert report["rows_in"] == report["rows_out"] + sum(report["removed"].values())
    assert all(report["removed"][name] > 0 for name in ORDER), report["removed"]


def test_split_matches_hand_written_quantiles_and_never_leaks():
    ordered, _ = sessionize(_random_plays(5), 1200)
    sessions, report = temporal_split(ordered, 0.8, 0.75)
    stamps = sorted(ordered["timestamp"].to_list())

    def quantile(v, q):
        pos = q * (len(v) - 1)
        lo = math.floor(pos)
        return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (pos - lo)

    test_cut = quantile(stamps, 0.8)
    val_cut = quantile([t for t in stamps if t < test_cut], 0.75)
    assert report["test_cutoff"] == pytest.approx(test_cut) and report["validation_cutoff"] == pytest.approx(
        val_cut
    )
    starts = ordered.group_by("session").agg(pl.col("timestamp").min().alias("s"))
    expected = {
        r["session"]: ("test" if r["s"] >= test_cut else "validation" if r["s"] >= val_cut else "train")
        for r in starts.to_dicts()
    }
    assert dict(zip(sessions["session"].to_list(), sessions["split"].to_list(), strict=True)) == expected
    assert sessions.filter(pl.col("split") == "train")["start"].max() < val_cut
    assert sessions.filter(pl.col("split") == "test")["start"].min() >= test_cut
    assert sessions["session"].n_unique() == sessions.height


def _later(plays, filters, names, cutoff):
    from mmbench.builders.filters import passed_only_with_later_plays

    reached = {}
    apply_filters(plays, filters, names, reached)
    return passed_only_with_later_plays(reached, cutoff)


def test_units_that_pass_a_threshold_only_with_later_plays():
    # (user, track, timestamp); the cutoff is 100. u1 has 3 plays before it and 1 after; u2 has 4
    # before. Track b has 2 plays before and 2 after, track a 5 before.
    rows = [("u1", "a", 10), ("u1", "a", 20), ("u1", "b", 30), ("u1", "b", 150)]
    rows += [("u2", "a", 11), ("u2", "b", 12), ("u2", "a", 13), ("u2", "a", 14), ("u2", "b", 160)]
    plays = pl.DataFrame(rows, schema=["user", "track", "timestamp"], orient="row")
    filters = {"min_user_plays": 4, "min_track_plays": 4, "min_user_sessions": 0}
    found = _later(plays, filters, list(filters), cutoff=100)
    assert sorted(found) == ["min_track_plays", "min_user_plays"]  # a filter set to 0 is off
    assert found["min_user_plays"].to_list() == ["u1"]
    assert found["min_track_plays"].to_list() == ["b"]
    # The next filter sees the plays the earlier ones kept: with 5 plays for a user, nobody
    # passes, and no track is then left to count.
    found = _later(
        plays, {"min_user_plays": 6, "min_track_plays": 1}, ["min_user_plays", "min_track_plays"], 100
    )
    assert found["min_user_plays"].to_list() == [] and found["min_track_plays"].to_list() == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_reached_agrees_with_reapplying_each_threshold_before_the_cutoff(seed):
    """The build records when each unit reached a threshold; by definition, a unit passes only
    thanks to later plays when the threshold re-applied to the plays before the cutoff (the
    other filters unchanged) drops it. Both, on random streams, for every threshold filter."""
    from mmbench.builders.filters import THRESHOLDS, _keep, passed_only_with_later_plays

    values = VALUES
    ordered, _ = sessionize(_random_plays(seed), 1200)
    cutoff = float(np.quantile(ordered["timestamp"].to_numpy(), 0.8))
    reached: dict = {}
    apply_filters(ordered, values, ORDER, reached)
    found = passed_only_with_later_plays(reached, cutoff)
    plays, expected = ordered, {}
    for name in ORDER:  # the definition, written out: re-apply each threshold on earlier plays
        if name in THRESHOLDS:
            unit = THRESHOLDS[name]
            passing = set(plays.filter(_keep(name, values[name]))[unit])
            early = set(plays.filter(pl.col("timestamp") < cutoff).filter(_keep(name, values[name]))[unit])
            expected[name] = passing - early
        plays = plays.filter(_keep(name, values[name]))
    assert {name: set(units) for name, units in found.items()} == expected
    assert any(expected.values())


def test_selection_counted_before_a_time_keeps_later_plays_of_the_units_it_selects():
    # As above, with a later play of a by u2. Counted before 100, u1 has 3 plays and goes; of
    # u2's plays, track b has 1 before 100 and goes; u2 and a stay, with a's play after 100.
    rows = [("u1", "a", 10), ("u1", "a", 20), ("u1", "b", 30), ("u1", "b", 150)]
    rows += [("u2", "a", 11), ("u2", "b", 12), ("u2", "a", 13), ("u2", "a", 14), ("u2", "b", 160)]
    rows += [("u2", "a", 170)]
    plays = pl.DataFrame(rows, schema=["user", "track", "timestamp"], orient="row")
    filters = {"min_user_plays": 4, "min_track_plays": 3}
    whole, _ = apply_filters(plays, filters, list(filters))
    assert set(whole["user"]) == {"u1", "u2"} and set(whole["track"]) == {"a", "b"}
    before, report = apply_filters(plays, filters, list(filters), count_before=100)
    assert set(before["user"]) == {"u2"} and set(before["track"]) == {"a"}
    assert before["timestamp"].to_list() == [11, 13, 14, 170]
    assert report["rows_in"] == report["rows_out"] + sum(report["removed"].values())


def test_split_straddling_plays_are_counted():
    ordered, _ = sessionize(_random_plays(5), 1200)
    sessions, report = temporal_split(ordered, 0.8, 0.75)
    split_of = dict(zip(sessions["session"].to_list(), sessions["split"].to_list(), strict=True))
    rows = ordered.select("session", "timestamp").to_dicts()
    val, test = report["validation_cutoff"], report["test_cutoff"]
    expected = {
        "train_plays_after_validation_cutoff": sum(split_of[r["session"]] == "train" and r["timestamp"] >= val for r in rows),
        "train_plays_after_test_cutoff": sum(split_of[r["session"]] == "train" and r["timestamp"] >= test for r in rows),
        "validation_plays_after_test_cutoff": sum(
            split_of[r["session"]] == "validation" and r["timestamp"] >= test for r in rows
        ),
    }  # fmt: skip
    assert report["plays_after_a_later_cutoff"] == expected
    # Fixed cutoffs are kept as given.
    _, fixed = temporal_split(ordered, 0.8, 0.75, (val - 1.0, test + 1.0))
    assert (fixed["validation_cutoff"], fixed["test_cutoff"]) == (val - 1.0, test + 1.0)
