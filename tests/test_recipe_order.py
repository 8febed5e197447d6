"""Both recipe orders, built by `mmbench build`, against a plain-Python reference of the pipeline
on a small random stream: the paper's (play filters before sessionizing) and the official one."""

import numpy as np
import polars as pl
import pytest

from conftest import T0, run_cli, stamp
from mmbench.builders.identify import track_id_for
from mmbench.builders.ingest import PLAYS_NAME

# Each test builds datasets from scratch, several times over.
pytestmark = pytest.mark.slow

FILTERS = {
    "min_user_plays": 50,
    "min_track_plays": 4,
    "dedupe_session_repeats": True,
    "min_session_length": 3,
    "max_session_length": 5,
    "min_user_sessions": 3,
}


def _stream(seed: int) -> list[tuple[str, int, str, str]]:
    """(user, time, artist, track) in time order per user; equal times and gaps around 1200 s."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, 61) ** 0.9
    plays = []
    for u in range(8):
        t = T0 + int(rng.integers(0, 3000))
        for _ in range(int(rng.choice([30, 70, 120, 200]))):
            t += int(rng.choice([0, 60, 200, 1200, 1201, 20000], p=[0.05, 0.4, 0.3, 0.05, 0.05, 0.15]))
            track = int(rng.choice(60, p=weights / weights.sum()))
            plays.append((f"user_{u:06d}", t, f"Artist {track % 7}", f"Song {track}"))
    return plays


def _write(plays: list, path) -> list[tuple[int, tuple]]:
    """The plays file as LastFM-1K writes it (per user, newest first); (line, play) pairs."""
    lines, numbered = [], []
    for user in sorted({p[0] for p in plays}):
        for play in reversed([p for p in plays if p[0] == user]):
            lines.append("\t".join([user, stamp(play[1]), "", play[2], "", play[3]]))
            numbered.append((len(lines), play))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return numbered


def _sessionize(plays: list[tuple[int, tuple]]) -> list[list[tuple[int, tuple]]]:
    by_user: dict[str, list] = {}
    for line, play in plays:
        by_user.setdefault(play[0], []).append((line, play))
    sessions = []
    for user in sorted(by_user):
        ordered = sorted(by_user[user], key=lambda lp: (lp[1][1], -lp[0]))  # equal times: reverse file order
        for i, item in enumerate(ordered):
            if i == 0 or item[1][1] - ordered[i - 1][1][1] > 1200:
                sessions.append([])
            sessions[-1].append(item)
    return sessions


def _count_filter(plays: list, key, minimum: int) -> list:
    counts: dict = {}
    for item in plays:
        counts[key(item)] = counts.get(key(item), 0) + 1
    return [item for item in plays if counts[key(item)] >= minimum]


def _reference(numbered: list, order: str) -> list[tuple]:
    """The recipe's pipeline written out on Python lists: (user, track ids, times) per session."""
    user = lambda lp: lp[1][0]  # noqa: E731
    track = lambda lp: track_id_for(lp[1][2], lp[1][3])  # noqa: E731
    plays = numbered
    if order == "paper":
        plays = _count_filter(plays, user, FILTERS["min_user_plays"])
        plays = _count_filter(plays, track, FILTERS["min_track_plays"])
        sessions = _sessionize(plays)
    else:
        sessions = _sessionize(plays)
        flat = [(i, lp) for i, s in enumerate(sessions) for lp in s]
        flat = _count_filter(flat, lambda x: user(x[1]), FILTERS["min_user_plays"])
        flat = _count_filter(flat, lambda x: track(x[1]), FILTERS["min_track_plays"])
        sessions = [[lp for i, lp in flat if i == k] for k in range(len(sessions))]
        sessions = [s for s in sessions if s]
    deduped = []
    for s in sessions:
        seen, kept = set(), []
        for lp in s:
            if track(lp) not in seen:
                seen.add(track(lp))
                kept.append(lp)
        deduped.append(kept)
    sessions = [
        s[: FILTERS["max_session_length"]] for s in deduped if len(s) >= FILTERS["min_session_length"]
    ]
    per_user: dict = {}
    for s in sessions:
        per_user[user(s[0])] = per_user.get(user(s[0]), 0) + 1
    sessions = [s for s in sessions if per_user[user(s[0])] >= FILTERS["min_user_sessions"]]
    return sorted((user(s[0]), tuple(track(lp) for lp in s), tuple(lp[1][1] for lp in s)) for s in sessions)


@pytest.mark.parametrize("recipe", ["paper", "official"])
@pytest.mark.parametrize("seed", [0, 1])
def test_build_equals_the_reference(tmp_path, recipe, seed):
    numbered = _write(_stream(seed), tmp_path / PLAYS_NAME)
    out = tmp_path / "out"
    overrides = [f"filters.{k}={str(v).lower()}" for k, v in FILTERS.items()] + [
        "instances.paper_sampled_negatives=2"
    ]
    args = ["build", "--raw", str(tmp_path / PLAYS_NAME), "--recipe", recipe, "--out", str(out), "--quiet"]
    result = run_cli(*args, *[a for o in overrides for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    sessions = pl.concat([pl.read_parquet(p) for p in (out / "data" / "sessions").glob("*.parquet")])
    built = sorted(
        (r["user_id"], tuple(r["track_ids"]), tuple(int(t.timestamp()) for t in r["timestamps"]))
        for r in sessions.iter_rows(named=True)
    )
    expected = _reference(numbered, recipe)
    assert built == expected
    assert len({s[0] for s in expected}) < 8  # the user filters removed someone


def test_the_two_orders_differ_on_this_stream(tmp_path):
    numbered = _write(_stream(0), tmp_path / PLAYS_NAME)
    assert _reference(numbered, "paper") != _reference(numbered, "official")


def test_paper_order_on_the_sample_with_its_thresholds(sample_build, tmp_path):
    import json

    sample = json.loads((sample_build / "build_report.json").read_text())["recipe"]["filters"]
    out = tmp_path / "paper"
    raw = sample_build / ".build" / "sample-raw" / "lastfm-dataset-1K.tar.gz"
    overrides = [f"filters.{k}={str(v).lower()}" for k, v in sample.items()]
    args = ["build", "--raw", str(raw), "--recipe", "paper", "--out", str(out), "--quiet"]
    result = run_cli(*args, *[a for o in overrides for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "build_report.json").read_text())
    stages = report["stages"]
    assert list(stages["filter_before_sessionize"]["removed"]) == ["min_user_plays", "min_track_plays"]
    assert stages["filter_before_sessionize"]["removed"]["min_track_plays"] > 0
    assert "min_track_plays" not in stages["filter"]["removed"]
    for name, stage in stages.items():
        assert stage["rows_in"] == stage["rows_out"] + sum(stage["removed"].values()), name
    # Sessionizing saw the filtered plays, not the complete stream.
    assert stages["sessionize"]["rows_in"] == stages["filter_before_sessionize"]["rows_out"]
    assert stages["sessionize"]["rows_in"] < stages["identify"]["rows_out"]
