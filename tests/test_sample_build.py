"""The sample benchmark as users get it from `mmbench build --sample`."""

import json

import datasets
import numpy as np
import polars as pl
import pytest
import yaml

import mmbench
from conftest import run_cli
from mmbench.errors import MmbenchError
from mmbench.info import check_dataset
from mmbench.schema import SPLITS


def test_info_passes_and_prints_statistics(sample_build):
    result = run_cli("info", str(sample_build))
    assert result.returncode == 0, result.stderr
    assert "integrity: all checks passed" in result.stdout and "next-track instances" in result.stdout


def test_info_detects_a_changed_file(sample_build, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sample_build, copy, ignore=shutil.ignore_patterns(".build"))
    target = next((copy / "data" / "tracks").glob("*.parquet"))
    frame = pl.read_parquet(target)
    frame.head(frame.height - 1).write_parquet(target)
    problems = check_dataset(copy)
    assert problems and "checksum differs" in problems[0]
    assert run_cli("info", str(copy)).returncode == 1


def test_every_config_and_split_loads_offline_with_datasets(sample_build):
    card = (sample_build / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    content = {c: ["catalog"] for c in ("audio-mfcc", "lyrics-minilm", "text-minilm", "mgphot")}
    assert {c["config_name"]: [f["split"] for f in c["data_files"]] for c in front["configs"]} == {
        **{k: list(v) for k, v in SPLITS.items()},
        **content,
    }
    for config, splits in SPLITS.items():
        loaded = datasets.load_dataset(str(sample_build), config)
        assert sorted(loaded) == sorted(splits)
        assert all(loaded[s].num_rows > 0 for s in splits)
    sessions = mmbench.load("sessions", "test", source=sample_build)
    assert isinstance(sessions, datasets.Dataset) and sessions.features["track_ids"].feature.dtype == "string"


def test_load_serves_a_rebuilt_folder_its_new_data(sample_build, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "lastfm1k-mm"  # same name as the build, so the same card metadata
    shutil.copytree(sample_build, copy)
    assert (
        mmbench.load("instances", "test", source=copy).num_rows
        == mmbench.load("instances", "test", source=sample_build).num_rows
    )
    # Rebuilt in place with fewer instances: the loader must not serve the cached old rows.
    (path,) = (copy / "data" / "instances").glob("test-*.parquet")
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 10), path)
    assert mmbench.load("instances", "test", source=copy).num_rows == 10


def test_load_errors_are_clear(sample_build, tmp_path, monkeypatch):
    with pytest.raises(MmbenchError, match="no config 'audio-x'"):
        mmbench.load("audio-x", source=sample_build)
    with pytest.raises(MmbenchError, match="has no split 'train'"):
        mmbench.load("instances", "train", source=sample_build)
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "nothing"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MmbenchError, match="no local build"):
        mmbench.load("sessions")


def test_no_leakage_and_accounting(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    cut = report["stages"]["split"]
    starts = {
        s: pl.read_parquet(sample_build / "data" / "sessions" / f"{s}-00000-of-00001.parquet")
        for s in ("train", "validation", "test")
    }
    epoch = {s: f["start_time"].dt.epoch("s") for s, f in starts.items()}
    assert epoch["train"].max() < cut["validation_cutoff"]
    assert (
        epoch["validation"].min() >= cut["validation_cutoff"]
        and epoch["validation"].max() < cut["test_cutoff"]
    )
    assert epoch["test"].min() >= cut["test_cutoff"]
    ids = [set(f["session_id"]) for f in starts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for name, stage in report["stages"].items():
        assert stage["rows_in"] == stage["rows_out"] + sum(stage["removed"].values()), name
    assert sum(report["stages"]["ingest"]["removed"].values()) == 6  # the planted malformed lines
    for f in starts.values():  # every session is truncated to 10 tracks, none shorter
        assert set(f["track_ids"].list.len()) == {10}


def test_sample_has_the_planted_structure(sample_build):
    tracks = pl.read_parquet(sample_build / "data" / "tracks" / "catalog-00000-of-00001.parquet")
    assert (tracks["n_plays_train"] == 0).sum() > 10  # tracks released after the training period
    assert (
        tracks["artist_name"].str.contains('"').any()
        and not tracks["artist_name"].str.contains(r"^[ -~]*$").all()
    )
    assert (tracks["track_mbids"].list.len() == 0).any() and (tracks["track_mbids"].list.len() > 1).any()
    sessions = pl.read_parquet(sample_build / "data" / "sessions" / "train-00000-of-00001.parquet")
    ratios = sessions["completion_ratios"].explode().drop_nulls().to_numpy()
    assert 0.1 < np.mean(ratios < 0.3) < 0.9  # skips and full listens both present
    plots = sorted(p.name for p in (sample_build / "plots").glob("*.png"))
    assert plots == ["completion_ratios.png", "plays_over_time.png", "popularity.png", "session_lengths.png"]
    card = (sample_build / "README.md").read_text()
    assert all(f"plots/{p}" in card for p in plots) and "non-commercial" in card


def test_report_and_card_count_what_selection_owes_to_later_plays(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    later = report["later_plays_in_selection"]
    assert later["tracks_without_training_play"] == report["statistics"]["tracks_cold"] > 0
    assert (
        0
        < later["tracks_kept_only_with_later_plays"]
        < later["tracks_kept"]
        == report["statistics"]["tracks"]
    )
    card = (sample_build / "README.md").read_text()
    assert f"{later['tracks_kept_only_with_later_plays']:,} of the {later['tracks_kept']:,} tracks" in card


def test_info_detects_inconsistent_content_behind_valid_checksums(sample_build, tmp_path):
    """Files whose checksums the report agrees with can still contradict each other: an
    instance pointing at a training session, a session starting before its split's cutoff."""
    import shutil

    import pyarrow.parquet as pq

    from mmbench.digests import sha256_file

    copy = tmp_path / "copy"
    shutil.copytree(sample_build, copy, ignore=shutil.ignore_patterns(".build"))
    report = json.loads((copy / "build_report.json").read_text())
    train = pl.read_parquet(next((copy / "data" / "sessions").glob("train-*.parquet")))
    target = next((copy / "data" / "instances").glob("test-*.parquet"))
    instances = pl.read_parquet(target)
    moved = instances.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit(train["session_id"][0]))
        .otherwise(pl.col("session_id"))
        .alias("session_id")
    )
    schema = pq.read_schema(target)
    pq.write_table(moved.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema), target)
    report["outputs"][str(target.relative_to(copy))] = sha256_file(target)
    report["stages"]["split"]["test_cutoff"] += 10**9  # every test session now starts too early
    (copy / "build_report.json").write_text(json.dumps(report))
    problems = check_dataset(copy)
    assert any("1 instances point at sessions outside the test split" in p for p in problems), problems
    assert any("sessions start before the test cutoff" in p for p in problems), problems
