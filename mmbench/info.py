"""``mmbench info``: a built dataset's statistics and integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mmbench import layout
from mmbench.digests import sha256_file
from mmbench.errors import MmbenchError
from mmbench.schema import SPLITS, labelled_configs, stored_schema


def _report(folder: Path) -> dict:
    path = folder / "build_report.json"
    if not folder.is_dir():
        raise MmbenchError(f"{folder}: no such folder")
    if not path.is_file():
        raise MmbenchError(f"{folder}: no build_report.json; not a dataset built by mmbench build")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MmbenchError(f"{path}: not valid JSON ({exc})") from None


def _read(folder: Path, config: str, split: str, columns: list[str]) -> pl.DataFrame:
    files = layout.split_files(folder, config, split)
    return pl.concat([pl.read_parquet(f, columns=columns) for f in files]) if files else pl.DataFrame()


def check_dataset(folder: Path) -> list[str]:
    """Every integrity problem of the dataset folder, as readable lines (empty when sound).

    Checks the output checksums of the build report, the schema of every core config, that
    no session is in two splits, that every session starts on its side of the cutoffs, that
    instances point at sessions of their own split, that every track and user id used in
    sessions and instances is in the catalogues, and the dataset fingerprint.
    """
    report = _report(folder)
    problems = _file_problems(folder, report)
    if problems:
        return problems
    tracks = set(_read(folder, "tracks", "catalog", ["track_id"])["track_id"])
    problems, session_split = _session_problems(folder, report, tracks)
    return (
        problems + _instance_problems(folder, tracks, session_split) + _fingerprint_problems(folder, report)
    )


def _fingerprint_problems(folder: Path, report: dict) -> list[str]:
    """The fingerprint recomputed from the instances and tracks against the build report's."""
    from mmbench.fingerprint import dataset_fingerprint

    recorded = report.get("fingerprint")
    if recorded is None:
        return [
            "build_report.json: no fingerprint; built by an older mmbench: rebuild it with `mmbench build`"
        ]
    actual = dataset_fingerprint(folder)
    if actual != recorded:
        return [f"dataset fingerprint {actual} differs from build_report.json's {recorded}"]
    return []


def _file_problems(folder: Path, report: dict) -> list[str]:
    """Files missing, unlisted or changed against the report, and schemas off the contract."""
    problems = []
    found = {str(p.relative_to(folder)) for p in layout.parquet_files(folder)}
    for rel, digest in report["outputs"].items():
        if rel not in found:
            problems.append(f"{rel}: listed in build_report.json but missing")
        elif sha256_file(folder / rel) != digest:
            problems.append(f"{rel}: checksum differs from build_report.json")
    problems += [f"{rel}: not listed in build_report.json" for rel in sorted(found - set(report["outputs"]))]
    published = report.get("published")
    if published is None:
        problems.append("build_report.json: no digests of the card and the other published files; rebuild it")
    for rel, digest in (published or {}).items():
        if not (folder / rel).is_file():
            problems.append(f"{rel}: listed in build_report.json but missing")
        elif sha256_file(folder / rel) != digest:
            problems.append(f"{rel}: changed since the build (its SHA-256 differs from build_report.json)")
    for config, splits in SPLITS.items():
        for split in splits:
            for path in layout.split_files(folder, config, split):
                try:
                    schema = pq.read_schema(path).remove_metadata()
                except (pa.ArrowInvalid, OSError) as exc:
                    problems.append(f"{path.relative_to(folder)}: not a readable parquet file ({exc})")
                    continue
                if not schema.equals(stored_schema(config, labelled_configs(report.get("content", {})))):
                    problems.append(
                        f"{path.relative_to(folder)}: schema differs from the contract: {schema.to_string(show_field_metadata=False)!r}"
                    )
    return problems


def _session_problems(folder: Path, report: dict, tracks: set[str]) -> tuple[list[str], dict[str, str]]:
    """Sessions outside their split's cutoffs, in two splits, or with unknown ids; and the
    split of every session."""
    problems = []
    users = set(_read(folder, "users", "catalog", ["user_id"])["user_id"])
    cut = report["stages"]["split"]
    bounds = {
        "train": (None, cut["validation_cutoff"]),
        "validation": (cut["validation_cutoff"], cut["test_cutoff"]),
        "test": (cut["test_cutoff"], None),
    }
    session_split: dict[str, str] = {}
    for split in SPLITS["sessions"]:
        s = _read(folder, "sessions", split, ["session_id", "user_id", "start_time", "track_ids"])
        start = s["start_time"].dt.epoch("s")
        low, high = bounds[split]
        if low is not None and (start < low).any():
            problems.append(
                f"sessions/{split}: {(start < low).sum()} sessions start before the {split} cutoff"
            )
        if high is not None and (start >= high).any():
            problems.append(
                f"sessions/{split}: {(start >= high).sum()} sessions start after the next split's cutoff"
            )
        twice = [i for i in s["session_id"] if i in session_split]
        if twice:
            problems.append(
                f"sessions/{split}: {len(twice)} sessions also in {session_split[twice[0]]} (e.g. {twice[0]})"
            )
        session_split.update(dict.fromkeys(s["session_id"], split))
        unknown = set(s["track_ids"].explode().unique()) - tracks
        if unknown:
            problems.append(f"sessions/{split}: {len(unknown)} track ids not in the tracks catalogue")
        if set(s["user_id"].unique()) - users:
            problems.append(f"sessions/{split}: user ids not in the users catalogue")
    return problems, session_split


def _instance_problems(folder: Path, tracks: set[str], session_split: dict[str, str]) -> list[str]:
    """Instances repeated, pointing at sessions of another split, or naming unknown tracks."""
    problems = []
    seen_instances: set[str] = set()
    for split in SPLITS["instances"]:
        inst = _read(
            folder, "instances", split, ["instance_id", "session_id", "target_track_id", "candidates"]
        )
        if inst["instance_id"].n_unique() != inst.height or seen_instances & set(inst["instance_id"]):
            problems.append(f"instances/{split}: duplicate instance ids")
        seen_instances |= set(inst["instance_id"])
        wrong = [s for s in inst["session_id"] if session_split.get(s) != split]
        if wrong:
            problems.append(
                f"instances/{split}: {len(wrong)} instances point at sessions outside the {split} split"
            )
        used = set(inst["target_track_id"]) | set(inst["candidates"].explode().drop_nulls())
        if used - tracks:
            problems.append(f"instances/{split}: {len(used - tracks)} track ids not in the tracks catalogue")
    return problems


def print_statistics(folder: Path) -> None:
    """Print the dataset's statistics from its build report as tables."""
    from rich.console import Console
    from rich.table import Table

    report = _report(folder)
    stats, split = report["statistics"], report["stages"]["split"]
    console = Console()
    table = Table(title=f"{folder} — recipe {report['recipe']['name']}")
    table.add_column("")
    for name in ("train", "validation", "test"):
        table.add_column(name, justify="right")
    for key in ("sessions", "plays", "users"):
        table.add_row(key, *(f"{split[key][s]:,}" for s in ("train", "validation", "test")))
    for task in ("next-track", "paper-sampled"):
        table.add_row(
            f"{task} instances", "", *(f"{stats['instances'][task][s]:,}" for s in ("validation", "test"))
        )
    console.print(table)
    console.print(
        f"catalogue: {stats['tracks']:,} tracks ({stats['tracks_cold']:,} cold in training, "
        f"{stats['tracks_with_duration']:,} with a duration), {stats['users']:,} users"
    )
    console.print(f"cutoffs: validation {split['validation_cutoff_utc']}, test {split['test_cutoff_utc']}")
    rules = report.get("protocol")
    if rules:
        can = "yes" if rules["target_can_repeat_prefix"] else "no"
        console.print(
            f"next-track target: {rules['next_track_target']}; can it repeat a prefix track? {can} "
            f"({rules['why']})"
        )
    console.print(f"dataset version: {report.get('dataset_version', 'none (built by an older mmbench)')}")
    console.print(
        f"dataset fingerprint: {report.get('fingerprint', 'none (built by an older mmbench)')}",
        soft_wrap=True,
    )
    accounting = Table(title="accounting (rows = plays; raw lines for ingest)")
    for col in ("stage", "rows in", "rows out", "removed"):
        accounting.add_column(col, justify="right" if col.startswith("rows") else "left")
    for name, stage in report["stages"].items():
        removed = ", ".join(f"{k} {v:,}" for k, v in stage["removed"].items() if v) or "-"
        accounting.add_row(name, f"{stage['rows_in']:,}", f"{stage['rows_out']:,}", removed)
    console.print(accounting)
