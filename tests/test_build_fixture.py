"""End to end on the hand-written fixture: exact sessions, completion ratios, split and instances."""

import json
import math

import pyarrow.parquet as pq
import pytest

from conftest import T0, build_fixture
from mmbench.builders.filters import apply_filters
from mmbench.builders.identify import identify, track_id_for
from mmbench.builders.ingest import ingest, resolve_raw
from mmbench.builders.sessionize import sessionize


def _build(raw, out, *extra):
    result = build_fixture(raw, out, *extra)
    assert result.returncode == 0, result.stderr
    # Not the real files: one warning per file whose MD5 differs from the published one.
    assert result.stderr.count("warning: ") == 2 and "differs from the published" in result.stderr
    return out


def _rows(out, config, split):
    return pq.read_table(next((out / "data" / config).glob(f"{split}-*.parquet"))).to_pylist()


@pytest.fixture
def built(fixture_raw, tmp_path):
    return _build(fixture_raw, tmp_path / "out")


def _linear_quantile(values, q):
    """Linear interpolation between closest ranks (numpy's default), written out by hand."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def test_sessions_are_cut_exactly(built):
    sessions = [s for split in ("train", "validation", "test") for s in _rows(built, "sessions", split)]
    got = {
        (s["user_id"], int(s["start_time"].timestamp()) - T0): [
            int(t.timestamp()) - T0 for t in s["timestamps"]
        ]
        for s in sessions
    }
    assert got == {
        ("user_000001", 0): [0, 100, 100, 1300],  # a gap of exactly 1200 s stays in the session
        ("user_000001", 2501): [2501, 2800, 3000],  # a gap of 1201 s starts a new one
        ("user_000001", 90000): [90000, 90200],
        ("user_000002", 50): [50, 250],
        ("user_000002", 80000): [80000, 80100],
    }
    first = next(s for s in sessions if s["session_id"] == f"user_000001:{T0}")
    # Equal timestamps keep the reverse of the file order (the file runs newest first), and the
    # two spellings of Jóga are one track.
    joga, hyper = track_id_for("Björk", "Jóga"), track_id_for("Björk", "Hyperballad")
    assert first["track_ids"] == [track_id_for('The "Quoted" Band', "Song A"), joga, hyper, joga]


def test_listen_seconds_and_completion_ratios(built):
    sessions = {
        s["session_id"]: s
        for split in ("train", "validation", "test")
        for s in _rows(built, "sessions", split)
    }
    first = sessions[f"user_000001:{T0}"]
    assert first["listen_seconds"] == [100.0, 0.0, 1200.0, None]
    assert first["completion_ratios"] == [0.5, 0.0, 1.0, None]  # 100/200, 0/300, 1200/250 clipped, last play
    second = sessions[f"user_000001:{T0 + 2501}"]
    assert second["listen_seconds"] == [299.0, 200.0, None]
    assert second["completion_ratios"][2] is None
    assert second["completion_ratios"][:2] == pytest.approx([299 / 400, 0.5], rel=1e-6)
    third = sessions[f"user_000001:{T0 + 90000}"]
    assert third["listen_seconds"] == [200.0, None]
    assert third["completion_ratios"][0] == pytest.approx(0.8) and third["completion_ratios"][1] is None


def test_split_follows_hand_computed_quantiles(built):
    report = json.loads((built / "build_report.json").read_text())
    stamps = [0, 50, 100, 100, 250, 1300, 2501, 2800, 3000, 80000, 80100, 90000, 90200]
    test_cut = _linear_quantile([T0 + s for s in stamps], 0.9)
    val_cut = _linear_quantile([T0 + s for s in stamps if T0 + s < test_cut], 0.9)
    assert report["stages"]["split"]["test_cutoff"] == pytest.approx(test_cut) == T0 + 88020
    assert report["stages"]["split"]["validation_cutoff"] == pytest.approx(val_cut) == T0 + 80000
    ids = {
        split: sorted(s["session_id"] for s in _rows(built, "sessions", split))
        for split in ("train", "validation", "test")
    }
    assert ids == {
        "train": [f"user_000001:{T0}", f"user_000001:{T0 + 2501}", f"user_000002:{T0 + 50}"],
        "validation": [f"user_000002:{T0 + 80000}"],  # starts exactly at the validation cutoff
        "test": [f"user_000001:{T0 + 90000}"],
    }


def test_instances_of_both_tasks(built):
    test = {r["task"]: r for r in _rows(built, "instances", "test")}
    nt = test["next-track"]
    assert (nt["user_id"], nt["position"], nt["target_track_id"]) == (
        "user_000001",
        1,
        track_id_for("Unknown Artist", "No Duration"),
    )
    assert nt["candidates"] is None
    ps = test["paper-sampled"]
    assert ps["position"] == 0 and ps["target_track_id"] == track_id_for("Björk", "Hyperballad")
    # Target plus the only two catalogue tracks outside the user's training history.
    assert sorted(ps["candidates"]) == sorted(
        [
            ps["target_track_id"],
            track_id_for("Unknown Artist", "No Duration"),
            track_id_for("東京事変", "群青日和"),
        ]
    )
    validation = {r["task"]: r for r in _rows(built, "instances", "validation")}
    assert validation["next-track"]["target_track_id"] == track_id_for("東京事変", "群青日和")
    history = {track_id_for('The "Quoted" Band', "Song A"), track_id_for("Björk", "Hyperballad")}
    assert not history & set(validation["paper-sampled"]["candidates"])


def test_catalogues_and_accounting(built):
    tracks = {t["track_id"]: t for t in _rows(built, "tracks", "catalog")}
    assert len(tracks) == 6
    hyper = tracks[track_id_for("Björk", "Hyperballad")]
    assert (hyper["n_plays_train"], hyper["duration_seconds"], hyper["track_mbids"]) == (2, 250.0, ["mbid-h"])
    assert tracks[track_id_for("Sigur Rós", "Hoppípolla")]["track_mbids"] == ["mbid-s1", "mbid-s2"]
    assert tracks[track_id_for("Unknown Artist", "No Duration")]["duration_seconds"] is None
    users = {u["user_id"]: u for u in _rows(built, "users", "catalog")}
    assert users["user_000001"]["country"] == "Iceland" and users["user_000001"]["age"] is None
    assert users["user_000002"]["age"] == 31 and users["user_000002"]["n_sessions_train"] == 1
    report = json.loads((built / "build_report.json").read_text())
    for name, stage in report["stages"].items():
        assert stage["rows_in"] == stage["rows_out"] + sum(stage["removed"].values()), name
    assert report["stages"]["ingest"]["removed"]["invalid_utf8"] == 1
    rejects = (built / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 4


def test_filters_in_recipe_order_with_repeats_removed(fixture_raw, tmp_path):
    result = ingest(resolve_raw(fixture_raw["folder"]), tmp_path / "r.jsonl", progress=False)
    plays, _, _ = identify(result.plays, result.pairs)
    plays, _ = sessionize(plays, 1200)
    filters = {
        "min_track_plays": 2,
        "dedupe_session_repeats": True,
        "min_session_length": 2,
        "max_session_length": 2,
    }
    kept, report = apply_filters(plays, filters, list(filters))
    # "No Duration" and 群青日和 are played once; the second Jóga and the second Hoppípolla are
    # repeats in their sessions; two sessions are then left with one track; the first keeps 2 of 3.
    assert report["removed"] == {
        "min_track_plays": 2,
        "dedupe_session_repeats": 2,
        "min_session_length": 2,
        "max_session_length": 1,
    }
    assert kept.height == 13 - 7 == report["rows_out"]
    assert kept.group_by("session").len()["len"].max() == 2
