"""Submissions as data: ``mmbench submit`` writes one, ``mmbench leaderboard validate`` checks all.

A submission is the folder ``LEADERBOARD/submissions/<slug>/`` with ``metadata.yaml`` (see
:mod:`mmbench.leaderboard.metadata`), one ``.jsonl.gz`` predictions file per run (or, for a large
one, its URL and SHA-256 in the metadata's ``remote_predictions``) and ``results.json``, written
by ``mmbench submit`` from the predictions, never by hand.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl

from mmbench.compare import prediction_runs
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.metadata import Metadata, read_metadata
from mmbench.leaderboard.results import (
    METADATA,
    RESULTS,
    compute_results,
    decompressed_sha256,
    dumps_results,
    first_difference,
    lookup,
    results_digest,
    sha256_bytes,
)
from mmbench.progress import progress_bar

SUBMISSIONS = "submissions"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


def slug_for(metadata: Metadata) -> str:
    """A default slug: the model name in lowercase letters, digits and dashes, then the task
    (and the split, when it is not test)."""
    name = re.sub(r"[^a-z0-9]+", "-", metadata.model.lower()).strip("-") or "model"
    tail = metadata.task if metadata.split == "test" else f"{metadata.task}-{metadata.split}"
    return f"{name[:50]}-{tail}".strip("-")


def stored_name(path: Path) -> str:
    """The name a run's predictions get in the submission: its stem, then ``.jsonl.gz``."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).lstrip(".-") + ".jsonl.gz"


def _open_jsonl(path: Path) -> IO[bytes]:
    """A predictions file's JSON Lines as a binary stream (parquet converted)."""
    if path.name.endswith(".parquet"):
        frame = pl.read_parquet(path, columns=["instance_id", "predictions"])
        return io.BytesIO(frame.write_ndjson().encode("utf-8"))
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def store_predictions(source: Path, dest: Path) -> None:
    """Copy a checked predictions file to ``dest`` as gzip-compressed JSON Lines with no name or
    time in the gzip header, so the same predictions always give the same bytes."""
    tmp = dest.with_name(dest.name + ".tmp")
    with (
        _open_jsonl(source) as fin,
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as out,
    ):
        shutil.copyfileobj(fin, out, 1 << 22)
    tmp.replace(dest)


def submit(
    predictions: Path,
    metadata_path: Path,
    leaderboard: Path,
    dataset: str | None = None,
    slug: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Check a predictions file or run folder and its metadata, score it, and write the
    submission folder; return (the folder, its results)."""
    metadata, metadata_bytes = read_metadata(metadata_path)
    runs = prediction_runs(predictions)
    if len(runs) != metadata.runs:
        raise MmbenchError(
            f"{predictions}: {len(runs)} predictions file(s) but {metadata_path} declares runs: {metadata.runs}"
        )
    slug = slug or slug_for(metadata)
    if not SLUG.match(slug):
        raise MmbenchError(
            f"slug {slug!r}: use 1-80 lowercase letters, digits and dashes, starting with one of the first two"
        )
    root = leaderboard / SUBMISSIONS
    target = root / slug
    if target.exists():
        raise MmbenchError(f"slug {slug!r} already exists in {root}; choose another with --slug")
    evaluator = Evaluator(metadata.task, metadata.split, dataset)
    fingerprint = evaluator.fingerprint  # computed once; every report records it too
    if fingerprint != metadata.dataset_fingerprint:
        raise MmbenchError(
            f"{metadata_path}: dataset_fingerprint {metadata.dataset_fingerprint} but the dataset "
            f"{evaluator.source} has {fingerprint} (`mmbench info` prints it)"
        )
    names = [stored_name(p) for p in runs]
    if len(set(names)) != len(names):
        raise MmbenchError(
            f"{predictions}: two runs would be stored under the same name ({', '.join(names)})"
        )
    remote = {r.file: r for r in metadata.remote_predictions}
    unknown = sorted(set(remote) - set(names))
    if unknown:
        raise MmbenchError(
            f"{metadata_path}: remote_predictions names {unknown[0]}, which is not one of the runs ({', '.join(names)})"
        )
    for path in runs:
        evaluator.read_file(path)  # every problem named by file, line and instance before anything is written
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.", dir=root))
    try:
        stored = {}
        for path, name in zip(runs, names, strict=True):
            where = (staging / ".remote" if name in remote else staging) / name
            where.parent.mkdir(exist_ok=True)
            store_predictions(path, where)
            if name in remote and decompressed_sha256(where) != remote[name].sha256:
                raise MmbenchError(
                    f"{metadata_path}: remote_predictions {name}: sha256 differs from the file {path}"
                )
            stored[name] = where
        results = compute_results(evaluator, slug, metadata.model_dump(mode="json"), metadata_bytes, stored)
        twin = _recorded_predictions(root).get(tuple(sorted(p["sha256"] for p in results["predictions"])))
        if twin is not None:
            raise MmbenchError(
                f"{predictions}: the same predictions as the submission {twin}/ (a duplicate entry)"
            )
        shutil.rmtree(staging / ".remote", ignore_errors=True)
        (staging / METADATA).write_bytes(metadata_bytes)
        (staging / RESULTS).write_text(dumps_results(results), encoding="utf-8")
        staging.chmod(0o755)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, results


def _recorded_predictions(root: Path) -> dict[tuple[str, ...], str]:
    """The predictions digests of each submission under ``root`` (sorted), to its slug."""
    out = {}
    for path in sorted(root.glob(f"*/{RESULTS}")) if root.is_dir() else []:
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))["predictions"]
            out[tuple(sorted(p["sha256"] for p in listed))] = path.parent.name
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
    return out


@dataclass
class Entry:
    """One submission folder as read from disk."""

    folder: Path
    metadata: Metadata
    metadata_bytes: bytes
    results: dict[str, Any]

    @property
    def slug(self) -> str:
        return self.folder.name


@dataclass
class Validation:
    """What ``mmbench leaderboard validate`` found: problems fail it, notes do not."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recomputed: int = 0


def read_entries(leaderboard: Path) -> Validation:
    """Read every submission folder and check what needs no dataset: the folder name, the
    metadata, the results file, its digests and its agreement with the metadata."""
    root = leaderboard / SUBMISSIONS
    if not root.is_dir():
        raise MmbenchError(f"{leaderboard}: no {SUBMISSIONS}/ folder; is this the leaderboard folder?")
    out = Validation()
    seen: dict[tuple[str, ...], str] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            entry = _read_entry(folder)
        except MmbenchError as exc:
            out.problems.append(f"{folder.name}: {exc}")
            continue
        predictions = tuple(sorted(p["sha256"] for p in entry.results["predictions"]))
        if predictions in seen:
            out.problems.append(
                f"{folder.name}: the same predictions as {seen[predictions]}/ (a duplicate entry)"
            )
            continue
        seen[predictions] = folder.name
        out.entries.append(entry)
    return out


def _read_entry(folder: Path) -> Entry:
    """A submission folder's metadata and results, checked against each other; raises with the
    field that is wrong."""
    if not SLUG.match(folder.name):
        raise MmbenchError("folder name is not a valid slug (lowercase letters, digits and dashes)")
    metadata, metadata_bytes = read_metadata(folder / METADATA)
    try:
        results = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MmbenchError(f"no {RESULTS}; write the submission with `mmbench submit`") from None
    except json.JSONDecodeError as exc:
        raise MmbenchError(f"{RESULTS}: not valid JSON ({exc})") from None
    if not isinstance(results, dict):
        raise MmbenchError(f"{RESULTS}: expected a JSON object")
    if results.get("results_sha256") != results_digest(results):
        raise MmbenchError(
            f"{RESULTS}: field results_sha256 does not match the file's content (edited after `mmbench submit`?)"
        )
    if results.get("metadata_sha256") != sha256_bytes(metadata_bytes):
        raise MmbenchError(
            f"{RESULTS}: field metadata_sha256 does not match {METADATA} (edited after `mmbench submit`?)"
        )
    if results.get("slug") != folder.name:
        raise MmbenchError(
            f"{RESULTS}: field slug is {results.get('slug')!r} but the folder is {folder.name!r}"
        )
    for key in ("model", "dataset", "dataset_fingerprint", "task", "split"):
        if results.get(key) != getattr(metadata, key):
            raise MmbenchError(
                f"{RESULTS}: field {key} is {results.get(key)!r} but {METADATA} says {getattr(metadata, key)!r}"
            )
    listed = [p.get("file") for p in results.get("predictions", [])]
    if len(listed) != metadata.runs:
        raise MmbenchError(
            f"{RESULTS}: field predictions lists {len(listed)} file(s) but {METADATA} declares runs: {metadata.runs}"
        )
    remote = {r.file for r in metadata.remote_predictions}
    for name in listed:
        if name not in remote and not (folder / name).is_file():
            raise MmbenchError(f"{name}: listed in {RESULTS} but missing")
    extra = sorted({p.name for p in folder.iterdir()} - {METADATA, RESULTS, *listed})
    if extra:
        raise MmbenchError(f"{extra[0]}: a file that {RESULTS} does not list")
    return Entry(folder, metadata, metadata_bytes, results)


def dataset_kind(source: str) -> str:
    """``sample`` for a local build of the synthetic sample, else ``lastfm1k-mm``."""
    report = Path(source) / "build_report.json"
    if report.is_file():
        recipe = json.loads(report.read_text(encoding="utf-8")).get("recipe", {})
        if recipe.get("name") == "sample":
            return "sample"
    return "lastfm1k-mm"


def validate(
    leaderboard: Path,
    dataset: str | None = None,
    recompute: bool = False,
    allow_download: bool = False,
    progress: bool = True,
) -> Validation:
    """Check every submission; with a dataset, check the fingerprints of its entries, and with
    ``recompute``, recompute their results from their predictions and compare field by field."""
    from mmbench.loading import resolve_source

    out = read_entries(leaderboard)
    if dataset is None and not recompute:
        return out
    source = resolve_source(dataset)
    fingerprint, kind = dataset_fingerprint(source), dataset_kind(source)
    evaluators: dict[tuple[str, str], Evaluator] = {}
    for entry in progress_bar(out.entries, desc="recompute", disable=not (progress and recompute)):
        meta = entry.metadata
        if meta.dataset != kind:
            out.notes.append(
                f"{entry.slug}: skipped, an entry of {meta.dataset} and the dataset given is {kind}"
            )
            continue
        if meta.dataset_fingerprint != fingerprint:
            out.problems.append(
                f"{entry.slug}: {METADATA}: dataset_fingerprint {meta.dataset_fingerprint} but {source} has "
                f"{fingerprint}; regenerate the entry for this build"
            )
            continue
        if not recompute:
            continue
        key = (meta.task, meta.split)
        if key not in evaluators:
            evaluators[key] = Evaluator(meta.task, meta.split, source)
        problem = _recompute(entry, evaluators[key], allow_download)
        if problem is None:
            out.recomputed += 1
        elif problem.startswith("skipped"):
            out.notes.append(f"{entry.slug}: {problem}")
        else:
            out.problems.append(f"{entry.slug}: {problem}")
    return out


def _recompute(entry: Entry, evaluator: Evaluator, allow_download: bool) -> str | None:
    """Recompute one entry's results; None when they equal the recorded ones, else what differs."""
    remote = {r.file: r for r in entry.metadata.remote_predictions}
    recorded = entry.results
    with tempfile.TemporaryDirectory(prefix="mmbench-recompute-") as tmp:
        files = {}
        for i, listed in enumerate(recorded["predictions"]):
            name = listed["file"]
            path = entry.folder / name
            if name in remote:
                if not allow_download:
                    return f"skipped, {name} is remote (pass --allow-download to fetch it)"
                path = Path(tmp) / name
                try:
                    urllib.request.urlretrieve(remote[name].url, path)
                except (OSError, ValueError) as exc:
                    return f"{name}: cannot download {remote[name].url} ({exc})"
            try:
                digest = decompressed_sha256(path)
            except (OSError, EOFError) as exc:
                return f"{name}: not a readable .jsonl.gz file ({exc})"
            if digest != listed["sha256"]:
                return f"{name}: its SHA-256 differs from {RESULTS} field predictions[{i}].sha256 (changed after `mmbench submit`)"
            files[name] = path
        try:
            fresh = compute_results(
                evaluator, entry.slug, entry.metadata.model_dump(mode="json"), entry.metadata_bytes, files
            )
        except MmbenchError as exc:
            return str(exc)
    ignored = ("mmbench_version", "results_sha256")
    diff = first_difference(
        {k: v for k, v in recorded.items() if k not in ignored},
        {k: v for k, v in fresh.items() if k not in ignored},
    )
    if diff is None:
        return None
    return f"{RESULTS} field {diff}: recorded {lookup(recorded, diff)!r}, recomputed {lookup(fresh, diff)!r}"
