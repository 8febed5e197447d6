"""The dataset fingerprint (DESIGN.md section 9): against a plain-Python reading of its
specification, invariant to row order, sensitive to what evaluation depends on, and checked
by `mmbench info`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import yaml

import mmbench
from conftest import run_cli
from mmbench.evaluator import Evaluator
from mmbench.fingerprint import compute_fingerprint, dataset_fingerprint
from mmbench.schema import DATASET_VERSION

ROOT = Path(__file__).resolve().parents[1]


def reference_fingerprint(instances: dict[str, list[dict]], track_ids: list[str]) -> str:
    """The specification of mmbench/fingerprint.py, written out with plain Python."""

    def enc(text: str) -> bytes:
        data = text.encode("utf-8")
        return str(len(data)).encode() + b":" + data

    rows = sorted(
        ((split, r["task"], r["instance_id"], r) for split, rs in instances.items() for r in rs),
        key=lambda x: (x[0].encode(), x[1].encode(), x[2].encode()),
    )
    out = b"mmbench-fingerprint-v1\n"
    for split, task, instance_id, r in rows:
        out += enc(instance_id) + enc(task) + enc(split) + enc(r["target_track_id"])
        cands = r["candidates"]
        out += b"-" if cands is None else str(len(cands)).encode() + b"#" + b"".join(enc(c) for c in cands)
        out += b"\n"
    for t in sorted(track_ids, key=str.encode):
        out += enc(t) + b"\n"
    return hashlib.sha256(out).hexdigest()


def test_matches_the_specification_on_the_sample(sample_build):
    # Read through `datasets`, as a researcher would.
    instances = {
        split: mmbench.load("instances", split, source=sample_build).to_list()
        for split in ("validation", "test")
    }
    tracks = mmbench.load("tracks", "catalog", source=sample_build)["track_id"]
    expected = reference_fingerprint(instances, tracks)
    assert dataset_fingerprint(sample_build) == expected
    report = json.loads((sample_build / "build_report.json").read_text())
    assert report["fingerprint"] == expected
    assert expected in (sample_build / "README.md").read_text()


def test_row_order_does_not_matter_and_every_field_does():
    frame = pl.DataFrame(
        {
            "instance_id": ["a:1", "b:2", "c:3"],
            "task": ["next-track", "next-track", "paper-sampled"],
            "target_track_id": ["t1", "t2", "t3"],
            "candidates": [None, None, ["t1", "t3"]],
        },
        schema_overrides={"candidates": pl.List(pl.String)},
    )
    tracks = ["t1", "t2", "t3"]
    base = compute_fingerprint({"test": frame}, tracks)
    assert compute_fingerprint({"test": frame.reverse()}, tracks[::-1]) == base
    rows = frame.to_dicts()
    assert base == reference_fingerprint({"test": rows}, tracks)
    changed = [
        frame.with_columns(
            pl.when(pl.col("instance_id") == "b:2")
            .then(pl.lit("t3"))
            .otherwise("target_track_id")
            .alias("target_track_id")
        ),
        frame.with_columns(pl.Series("candidates", [None, None, ["t3", "t1"]], dtype=pl.List(pl.String))),
        frame.with_columns(pl.Series("task", ["next-track", "paper-sampled", "paper-sampled"])),
    ]
    for other in changed:
        assert compute_fingerprint({"test": other}, tracks) != base
    assert compute_fingerprint({"validation": frame}, tracks) != base  # the split counts
    assert compute_fingerprint({"test": frame}, [*tracks, "t4"]) != base  # so does the catalogue
    # An id holding the separators cannot collide with a split of it: lengths are written.
    tricky = frame.with_columns(pl.Series("instance_id", ["a:1", "b:2", "3:c"]))
    assert compute_fingerprint({"test": tricky}, tracks) == reference_fingerprint(
        {"test": tricky.to_dicts()}, tracks
    )


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
    assert len(pins) == len(lines) - 1 and all(v for v in pins.values())
    for package in ("polars", "pyarrow", "numpy", "datasets", "mmbench"):
        assert pins[package] == report["versions"][package]


def test_the_citation_names_this_release():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["version"] == mmbench.__version__
