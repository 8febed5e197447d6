"""The dataset fingerprint (DESIGN.md section 9): against a plain-Python reading of its
specification and the reference implementation docs/protocol.md publishes, invariant to row
order, sensitive to what evaluation depends on (labels and play counts included), and checked
by `mmbench info`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

import mmbench
from conftest import run_cli
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator
from mmbench.fingerprint import compute_fingerprint, dataset_fingerprint
from mmbench.schema import DATASET_VERSION

ROOT = Path(__file__).resolve().parents[1]


CONTRACT = ("instance_id", "task", "user_id", "session_id", "position", "target_track_id", "candidates")


def reference_fingerprint(instances: dict[str, list[dict]], tracks: list[dict]) -> str:
    """The specification of mmbench/fingerprint.py (version 2), written out with plain Python."""

    def enc(text: str) -> bytes:
        data = text.encode("utf-8")
        return str(len(data)).encode() + b":" + data

    def value(v: object) -> bytes:
        if v is None:
            return b"-"
        return enc("true" if v is True else "false" if v is False else str(v))

    rows = sorted(
        ((split, r["task"], r["instance_id"], r) for split, rs in instances.items() for r in rs),
        key=lambda x: (x[0].encode(), x[1].encode(), x[2].encode()),
    )
    out = b"mmbench-fingerprint-v2\n"
    for split, task, instance_id, r in rows:
        out += enc(instance_id) + enc(task) + enc(split) + enc(r["target_track_id"])
        cands = r["candidates"]
        out += b"-" if cands is None else str(len(cands)).encode() + b"#" + b"".join(enc(c) for c in cands)
        for name in sorted((k for k in r if k not in CONTRACT), key=str.encode):
            out += enc(name) + value(r[name])
        out += b"\n"
    for t in sorted(tracks, key=lambda t: t["track_id"].encode()):
        n = t["n_plays_train"]
        out += enc(t["track_id"]) + (b"-" if n is None else str(n).encode()) + b"\n"
    return hashlib.sha256(out).hexdigest()


def test_matches_the_specification_on_the_sample(sample_build):
    # Read through `datasets`, as a researcher would.
    instances = {
        split: mmbench.load("instances", split, source=sample_build).to_list()
        for split in ("validation", "test")
    }
    labels = [k for k in instances["test"][0] if k not in CONTRACT]
    assert {"target_heard_before", "target_popularity", "target_cold", "target_has_mgphot"} <= set(labels)
    tracks = mmbench.load("tracks", "catalog", source=sample_build)
    expected = reference_fingerprint(
        instances, tracks.select_columns(["track_id", "n_plays_train"]).to_list()
    )
    assert dataset_fingerprint(sample_build) == expected
    report = json.loads((sample_build / "build_report.json").read_text())
    assert report["fingerprint"] == expected
    assert expected in (sample_build / "README.md").read_text()


def test_the_published_reference_implementation_agrees(sample_build):
    """docs/protocol.md's reference implementation, run as a reader would run it, gives the
    fingerprint that `mmbench info` prints and build_report.json records."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("\n## The dataset fingerprint\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)
    assert len(blocks) == 1
    code = blocks[0]
    assert len(code.splitlines()) <= 40 and not re.search(r"^\s*(import|from) mmbench", code, flags=re.M)
    result = subprocess.run([sys.executable, "-c", code, str(sample_build)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    info = run_cli("info", str(sample_build))
    assert info.returncode == 0, info.stderr
    assert re.search(r"dataset fingerprint: ([0-9a-f]{64})", info.stdout)[1] == digest
    assert json.loads((sample_build / "build_report.json").read_text())["fingerprint"] == digest


def _change_first_row(path: Path, column: str, value: pl.Expr) -> None:
    """Rewrite a parquet file with ``value`` in ``column`` of its first row."""
    table = pq.read_table(path)
    first = pl.int_range(pl.len()) == 0
    frame = pl.from_arrow(table).with_columns(pl.when(first).then(value).otherwise(column).alias(column))
    pq.write_table(frame.to_arrow().cast(table.schema), path)


def test_the_play_counts_and_the_labels_count(sample_build, tmp_path):
    """What version 1 left out: one track's n_plays_train, or one instance's label, changes it."""
    base = dataset_fingerprint(sample_build)
    changes = {
        ("tracks", "catalog", "n_plays_train"): pl.col("n_plays_train") + 1,
        ("instances", "test", "target_heard_before"): pl.col("target_heard_before").not_(),
        ("instances", "test", "target_cold"): pl.col("target_cold").not_(),
        ("instances", "validation", "target_popularity"): pl.when(pl.col("target_popularity") == "head")
        .then(pl.lit("tail"))
        .otherwise(pl.lit("head")),
    }
    for (config, split, column), value in changes.items():
        copy = tmp_path / column
        shutil.copytree(sample_build, copy)
        _change_first_row(sorted((copy / "data" / config).glob(f"{split}-*.parquet"))[0], column, value)
        assert dataset_fingerprint(copy) != base, column


def test_row_order_does_not_matter_and_every_field_does():
    frame = pl.DataFrame(
        {
            "instance_id": ["a:1", "b:2", "c:3"],
            "task": ["next-track", "next-track", "paper-sampled"],
            "user_id": ["u1", "u2", "u3"],
            "position": [3, 1, 0],
            "target_track_id": ["t1", "t2", "t3"],
            "candidates": [None, None, ["t1", "t3"]],
            "target_popularity": ["head", None, "tail"],
            "target_cold": [False, True, None],
        },
        schema_overrides={"candidates": pl.List(pl.String), "position": pl.Int32},
    )
    tracks = pl.DataFrame({"track_id": ["t1", "t2", "t3"], "n_plays_train": [5, 0, 12]})
    base = compute_fingerprint({"test": frame}, tracks)
    assert compute_fingerprint({"test": frame.reverse()}, tracks.reverse()) == base
    assert base == reference_fingerprint({"test": frame.to_dicts()}, tracks.to_dicts())
    # The contract's columns other than the covered fields are not labels and do not count.
    assert compute_fingerprint({"test": frame.drop("user_id", "position")}, tracks) == base

    def replaced(column: str, values: list) -> pl.DataFrame:
        return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))

    changed = [
        replaced("target_track_id", ["t1", "t3", "t3"]),
        replaced("candidates", [None, None, ["t3", "t1"]]),
        replaced("task", ["next-track", "paper-sampled", "paper-sampled"]),
        replaced("target_popularity", ["head", None, "torso"]),
        replaced("target_popularity", ["head", "", "tail"]),  # an empty string is not a null
        replaced("target_cold", [False, True, False]),
        frame.drop("target_cold"),
        frame.with_columns(pl.lit(False).alias("target_cold_new")),  # a new label counts
        frame.with_columns(pl.Series("target_rank", [1, None, 30])),  # integers in decimal
    ]
    for other in changed:
        assert compute_fingerprint({"test": other}, tracks) != base
        assert compute_fingerprint({"test": other}, tracks) == reference_fingerprint(
            {"test": other.to_dicts()}, tracks.to_dicts()
        )
    assert compute_fingerprint({"validation": frame}, tracks) != base  # the split counts
    more = pl.concat([tracks, pl.DataFrame({"track_id": ["t4"], "n_plays_train": [0]})])
    assert compute_fingerprint({"test": frame}, more) != base  # so does the catalogue
    plays = tracks.with_columns(pl.Series("n_plays_train", [5, 1, 12]))
    assert compute_fingerprint({"test": frame}, plays) != base  # and its play counts
    # An id holding the separators cannot collide with a split of it: lengths are written.
    tricky = replaced("instance_id", ["a:1", "b:2", "3:c"])
    assert compute_fingerprint({"test": tricky}, tracks) == reference_fingerprint(
        {"test": tricky.to_dicts()}, tracks.to_dicts()
    )
    # A label must have an exact text form: a float has none, so it is refused.
    with pytest.raises(MmbenchError, match="target_score"):
        compute_fingerprint({"test": frame.with_columns(pl.lit(0.5).alias("target_score"))}, tracks)


def test_info_checks_it_and_the_evaluator_records_it(sample_build, tmp_path):
    assert Evaluator("next-track", "test", str(sample_build)).fingerprint == dataset_fingerprint(sample_build)
    copy = tmp_path / "copy"
    shutil.copytree(sample_build, copy)
    path = copy / "build_report.json"
    report = json.loads(path.read_text())
    report["fingerprint"] = "0" * 64
    path.write_text(json.dumps(report))
    result = run_cli("info", str(copy))
    assert result.returncode == 1
    assert f"differs from build_report.json's {'0' * 64}" in result.stderr
    ok = run_cli("info", str(sample_build))
    assert ok.returncode == 0 and f"dataset fingerprint: {dataset_fingerprint(sample_build)}" in ok.stdout


def test_the_changelog_ties_the_dataset_version_to_the_samples_fingerprint(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    assert report["dataset_version"] == DATASET_VERSION
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## {DATASET_VERSION}\n" in changelog, "CHANGELOG.md has no entry for this dataset version"
    entry = changelog.split(f"\n## {DATASET_VERSION}\n", 1)[1].split("\n## ", 1)[0]
    assert f"sample: {report['fingerprint']}" in entry, (
        "the sample's fingerprint changed: a new dataset version"
    )
    ok = run_cli("info", str(sample_build))
    assert f"dataset version: {DATASET_VERSION}" in ok.stdout


def test_the_build_pins_the_packages_it_was_built_with(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    lines = (sample_build / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = dict(line.split("==") for line in lines if not line.startswith("#"))
    assert len(pins) == len(lines) - 2 and all(v for v in pins.values())
    for package in ("polars", "pyarrow", "numpy", "datasets"):
        assert pins[package] == report["versions"][package]
    assert "mmbench" not in pins and "pytest" not in pins  # the editable package and the test tools


def test_the_citation_names_this_release():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["version"] == mmbench.__version__
