"""Submissions as data: ``mmbench submit`` writes one, ``mmbench leaderboard validate`` checks all.

A submission is the folder ``LEADERBOARD/submissions/<slug>/`` with ``metadata.yaml`` (see
:mod:`mmbench.leaderboard.metadata`), one ``seed<N>.jsonl.gz`` predictions file per run (or, for
a large one, its URL, size and SHA-256 in the metadata's ``remote_predictions``) and
``results.json``, written by ``mmbench submit`` from the predictions, never by hand.

Nothing in a folder is taken on trust. :func:`check_leaderboard` reads what needs no data
(schemas, file names, digests, duplicates) and, given the builds, recomputes every entry's
results from its predictions; the site shows only what it recomputed (:mod:`.site`).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from mmbench.compare import prediction_runs
from mmbench.digests import sha256_bytes
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.download import fetch
from mmbench.leaderboard.metadata import Metadata, read_metadata
from mmbench.leaderboard.results import (
    METADATA,
    RESULTS,
    check_results,
    compute_results,
    decompressed_sha256,
    dumps_results,
    first_difference,
    lookup,
    results_digest,
)
from mmbench.leaderboard.rules import RULES, Rules, read_rules
from mmbench.progress import progress_bar

SUBMISSIONS = "submissions"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
# Two runs (of one entry or of two) whose targets' ranks agree on more than this share of the
# instances are the same run: a relabelled copy, or a copy with a few ranks swapped.
NEAR_DUPLICATE = 0.99


def slug_for(metadata: Metadata) -> str:
    """A default slug: the model name in lowercase letters, digits and dashes, then the task
    (and the split, when it is not test)."""
    name = re.sub(r"[^a-z0-9]+", "-", metadata.model.lower()).strip("-") or "model"
    tail = metadata.task if metadata.split == "test" else f"{metadata.task}-{metadata.split}"
    return f"{name[:50]}-{tail}".strip("-")


def run_file(seed: int) -> str:
    """The name of a run's predictions in a submission folder."""
    return f"seed{seed}.jsonl.gz"


def _open_jsonl(path: Path) -> IO[bytes] | gzip.GzipFile:
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


def dataset_kind(source: str) -> str:
    """``sample`` for a local build of the synthetic sample, else ``lastfm1k-mm``."""
    report = Path(source) / "build_report.json"
    if report.is_file():
        recipe = json.loads(report.read_text(encoding="utf-8")).get("recipe", {})
        if recipe.get("name") == "sample":
            return "sample"
    return "lastfm1k-mm"


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of instances on which two runs give the target the same rank (0 = absent)."""
    return float(np.mean(a == b)) if a.size else 1.0


def repeated_runs(ranks: np.ndarray, names: list[str]) -> str | None:
    """What is wrong when two runs of one entry are the same run (near-identical ranks)."""
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            share = agreement(ranks[i], ranks[j])
            if share > NEAR_DUPLICATE:
                return (
                    f"runs {names[i]} and {names[j]} give the target the same rank on {share:.1%} of the "
                    "instances: the same run twice (a deterministic model is one run)"
                )
    return None


def closest_run(ranks: np.ndarray, other: np.ndarray) -> tuple[float, int, int]:
    """The highest agreement between a run of ``ranks`` and one of ``other``, and the two runs."""
    best = (-1.0, 0, 0)
    for i in range(ranks.shape[0]):
        for j in range(other.shape[0]):
            share = agreement(ranks[i], other[j])
            if share > best[0]:
                best = (share, i, j)
    return best


def submit(
    predictions: Path,
    metadata_path: Path,
    leaderboard: Path,
    dataset: str | None = None,
    slug: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Check a predictions file or run folder and its metadata, score it, and write the
    submission folder; return (the folder, its results).

    Runs are taken in file-name order and paired with the metadata's ``seeds`` in order; a run
    named ``seed<N>`` must be seed N. Each is stored as ``seed<N>.jsonl.gz``.
    """
    metadata, metadata_bytes = read_metadata(metadata_path)
    runs = prediction_runs(predictions)
    if len(runs) != metadata.runs:
        raise MmbenchError(
            f"{predictions}: {len(runs)} predictions file(s) but {metadata_path} declares runs: {metadata.runs}"
        )
    names = [run_file(s) for s in metadata.seeds]
    for path, seed in zip(runs, metadata.seeds, strict=True):
        named = re.match(r"^seed(\d+)\.", path.name)
        if named and int(named.group(1)) != seed:
            raise MmbenchError(
                f"{path}: named seed {named.group(1)} but paired with seed {seed} of {metadata_path} "
                f"(runs in file-name order: {', '.join(p.name for p in runs)}; seeds {metadata.seeds})"
            )
    slug = slug or slug_for(metadata)
    if not SLUG.match(slug):
        raise MmbenchError(
            f"slug {slug!r}: use 1-80 lowercase letters, digits and dashes, starting with one of the first two"
        )
    root = leaderboard / SUBMISSIONS
    target = root / slug
    if target.exists() or target.is_symlink():
        raise MmbenchError(f"slug {slug!r} already exists in {root}; choose another with --slug")
    rules = read_rules(leaderboard)
    if rules.is_baseline(slug) and metadata.code != rules.code_of(slug):
        raise MmbenchError(
            f"{metadata_path}: code is {metadata.code} but {leaderboard / RULES} lists {slug} as "
            f"{rules.baselines[slug]} ({rules.code_of(slug)})"
        )
    evaluator = Evaluator(metadata.task, metadata.split, dataset)
    fingerprint = evaluator.fingerprint  # computed once; every report records it too
    if fingerprint != metadata.dataset_fingerprint:
        raise MmbenchError(
            f"{metadata_path}: dataset_fingerprint {metadata.dataset_fingerprint} but the dataset "
            f"{evaluator.source} has {fingerprint} (`mmbench info` prints it)"
        )
    kind = dataset_kind(evaluator.source)
    if metadata.dataset != kind:
        raise MmbenchError(f"{metadata_path}: dataset is {metadata.dataset} but {evaluator.source} is {kind}")
    remote = {r.file: r for r in metadata.remote_predictions}
    # Every problem named by file, line and instance before anything is written.
    ranks = np.stack([evaluator.read_file(path).ranks for path in runs])
    problem = repeated_runs(ranks, [p.name for p in runs])
    if problem:
        raise MmbenchError(f"{predictions}: {problem}")
    twin = _near_duplicate_entry(ranks, metadata, root, evaluator)
    if twin:
        raise MmbenchError(f"{predictions}: {twin}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.", dir=root))
    try:
        stored = {}
        for path, name in zip(runs, names, strict=True):
            where = (staging / ".remote" if name in remote else staging) / name
            where.parent.mkdir(exist_ok=True)
            store_predictions(path, where)
            if name in remote:
                if decompressed_sha256(where) != remote[name].sha256:
                    raise MmbenchError(
                        f"{metadata_path}: remote_predictions {name}: sha256 differs from the file {path}"
                    )
                if where.stat().st_size != remote[name].size:
                    raise MmbenchError(
                        f"{metadata_path}: remote_predictions {name}: size {remote[name].size} but the "
                        f"file mmbench submit writes is {where.stat().st_size} bytes; host that file"
                    )
            stored[name] = where
        results, _ = compute_results(
            evaluator, slug, metadata.model_dump(mode="json"), metadata_bytes, stored
        )
        shutil.rmtree(staging / ".remote", ignore_errors=True)
        (staging / METADATA).write_bytes(metadata_bytes)
        (staging / RESULTS).write_text(dumps_results(results), encoding="utf-8")
        staging.chmod(0o755)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, results


COPY = "a copy of an existing entry"  # the end of a refusal for near-identical rankings


def _near_duplicate_entry(
    ranks: np.ndarray, metadata: Metadata, root: Path, evaluator: Evaluator
) -> str | None:
    """What is wrong when a new entry's runs repeat a run of an entry already in ``root`` (same
    build, task and split); only entries whose files are all here are compared."""
    found = read_entries(root.parent) if root.is_dir() else Validation()
    for entry in found.entries:
        meta = entry.metadata
        if (meta.dataset_fingerprint, meta.task, meta.split) != (
            metadata.dataset_fingerprint,
            metadata.task,
            metadata.split,
        ) or meta.remote_predictions:
            continue
        other = np.stack([evaluator.read_file(entry.folder / name).ranks for name in entry.files])
        share, i, j = closest_run(ranks, other)
        if share > NEAR_DUPLICATE:
            return (
                f"run {i + 1} gives the target the same rank as {entry.slug}/{entry.files[j]} on "
                f"{share:.1%} of the instances: {COPY}"
            )
    return None


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

    @property
    def files(self) -> list[str]:
        """The run files' names, in run order (seeds in the metadata's order)."""
        return [run_file(s) for s in self.metadata.seeds]


@dataclass
class Scored:
    """An entry whose results were recomputed from its predictions against a build."""

    entry: Entry
    results: dict[str, Any]  # the fresh computation, never the folder's results.json
    ranks: np.ndarray  # [runs, instances]: the target's rank, 0 = absent
    source: str  # the build


@dataclass
class Validation:
    """What the checks found: problems fail ``validate``, notes do not; ``scored`` are the
    entries recomputed without a problem."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list)
    rules: Rules = field(default_factory=Rules)
    excluded: dict[str, str] = field(default_factory=dict)  # slug -> why it is not scored

    @property
    def recomputed(self) -> int:
        return len(self.scored)

    @property
    def read(self) -> int:
        """The submission folders read, with or without a problem."""
        return len({e.slug for e in self.entries} | set(self.excluded))

    def refuse(self, slug: str, why: str, problem: bool = True) -> None:
        (self.problems if problem else self.notes).append(f"{slug}: {why}")
        self.excluded.setdefault(slug, why)


def read_entries(leaderboard: Path) -> Validation:
    """Read every submission folder and check what needs no dataset: the folder name and kind,
    the metadata, the results file against its schema, its digests and the metadata, the file
    names, the baselines file, and exact duplicates."""
    root = leaderboard / SUBMISSIONS
    if not root.is_dir() or root.is_symlink():
        raise MmbenchError(f"{leaderboard}: no {SUBMISSIONS}/ folder; is this the leaderboard folder?")
    out = Validation()
    try:
        out.rules = read_rules(leaderboard)
    except MmbenchError as exc:
        out.problems.append(str(exc))
    seen: dict[str, str] = {}
    for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        try:
            entry = _read_entry(folder, out.rules)
        except MmbenchError as exc:
            out.refuse(folder.name, str(exc))
            continue
        digests = [p["sha256"] for p in entry.results["predictions"]]
        if len(set(digests)) != len(digests):
            out.refuse(entry.slug, "two of its runs are the same file (byte for byte)")
            continue
        copied = next((seen[d] for d in digests if d in seen), None)
        if copied:
            out.refuse(entry.slug, f"a run with the same predictions as {copied}/ (a duplicate entry)")
            continue
        seen.update(dict.fromkeys(digests, entry.slug))
        out.entries.append(entry)
    slugs = {e.slug for e in out.entries} | set(out.excluded)
    for slug in sorted(set(out.rules.baselines) - slugs):
        out.problems.append(f"{RULES}: lists {slug}, which is not a submission folder")
    return out


def _plain_file(path: Path, what: str) -> None:
    if path.is_symlink():
        raise MmbenchError(f"{path.name}: a symbolic link; an entry's files are plain files in its folder")
    if not path.is_file():
        raise MmbenchError(f"{path.name}: missing ({what})")


def _read_entry(folder: Path, rules: Rules) -> Entry:
    """A submission folder's metadata and results, checked against each other; raises with the
    field that is wrong."""
    if folder.is_symlink() or not folder.is_dir():
        raise MmbenchError("not a plain folder (a symbolic link or a file); an entry is a folder of files")
    if not SLUG.match(folder.name):
        raise MmbenchError("folder name is not a valid slug (lowercase letters, digits and dashes)")
    _plain_file(folder / METADATA, "the metadata")
    metadata, metadata_bytes = read_metadata(folder / METADATA)
    _plain_file(folder / RESULTS, "write the submission with `mmbench submit`")
    try:
        results = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MmbenchError(f"{RESULTS}: not valid JSON ({exc})") from None
    check_results(results, RESULTS)
    if results["results_sha256"] != results_digest(results):
        raise MmbenchError(
            f"{RESULTS}: field results_sha256 does not match the file's content (edited after `mmbench submit`?)"
        )
    if results["metadata_sha256"] != sha256_bytes(metadata_bytes):
        raise MmbenchError(
            f"{RESULTS}: field metadata_sha256 does not match {METADATA} (edited after `mmbench submit`?)"
        )
    if results["slug"] != folder.name:
        raise MmbenchError(f"{RESULTS}: field slug is {results['slug']!r} but the folder is {folder.name!r}")
    for key in ("model", "dataset", "dataset_fingerprint", "task", "split"):
        if results[key] != getattr(metadata, key):
            raise MmbenchError(
                f"{RESULTS}: field {key} is {results[key]!r} but {METADATA} says {getattr(metadata, key)!r}"
            )
    expected = [run_file(s) for s in metadata.seeds]
    listed = [p["file"] for p in results["predictions"]]
    if listed != expected or [r["file"] for r in results["runs"]] != expected:
        raise MmbenchError(
            f"{RESULTS}: field predictions lists {listed} but {METADATA}'s seeds {metadata.seeds} "
            f"give {expected}"
        )
    remote = {r.file for r in metadata.remote_predictions}
    for name in expected:
        if name in remote:
            if (folder / name).exists() or (folder / name).is_symlink():
                raise MmbenchError(f"{name}: both in the folder and in remote_predictions")
        else:
            _plain_file(folder / name, f"listed in {RESULTS}")
    extra = sorted({p.name for p in folder.iterdir()} - {METADATA, RESULTS, *expected})
    if extra:
        raise MmbenchError(f"{extra[0]}: a file that {RESULTS} does not list")
    if rules.is_baseline(folder.name) and metadata.code != rules.code_of(folder.name):
        raise MmbenchError(
            f"{METADATA}: code is {metadata.code} but {RULES} lists this entry as "
            f"{rules.baselines[folder.name]} ({rules.code_of(folder.name)})"
        )
    return Entry(folder, metadata, metadata_bytes, results)


def check_leaderboard(
    leaderboard: Path,
    datasets: list[str] | tuple[str, ...] = (),
    recompute: bool = False,
    allow_download: bool = False,
    skip_missing: bool = False,
    progress: bool = True,
) -> Validation:
    """Check every submission. With builds (``datasets``), match each entry to the build of
    its fingerprint; with ``recompute``, recompute its results from its predictions, compare
    them field by field, and refuse runs that repeat one another or another entry's.

    An entry whose build is not given is a problem, unless ``skip_missing`` (then a note) and
    no build of its dataset is given at all: a sample entry whose fingerprint is not the given
    sample build's is stale, never skipped. Remote predictions without ``allow_download`` are
    the same: a problem, or a note with ``skip_missing``.
    """
    from mmbench.loading import resolve_source

    out = read_entries(leaderboard)
    if not datasets and not recompute:
        return out
    builds: dict[str, tuple[str, str]] = {}  # fingerprint -> (source, kind)
    sources: list[str | None] = list(datasets) or [None]  # none given: the local build, else the Hub's
    for dataset in sources:
        source = resolve_source(dataset)
        builds[dataset_fingerprint(source)] = (source, dataset_kind(source))
    kinds = {kind for _, kind in builds.values()}
    evaluators: dict[tuple[str, str, str], Evaluator] = {}
    for entry in progress_bar(out.entries, desc="recompute", disable=not (progress and recompute)):
        meta = entry.metadata
        if meta.dataset_fingerprint not in builds:
            given = ", ".join(f"{source} ({kind})" for source, kind in builds.values())
            if meta.dataset in kinds:
                out.refuse(
                    entry.slug,
                    f"{METADATA}: dataset_fingerprint {meta.dataset_fingerprint} is not the fingerprint of "
                    f"the {meta.dataset} build given ({given}); regenerate the entry for this build",
                )
            else:
                out.refuse(
                    entry.slug,
                    f"not checked against data: its build ({meta.dataset}, fingerprint "
                    f"{meta.dataset_fingerprint[:12]}...) was not given (--dataset)"
                    + (
                        ""
                        if skip_missing
                        else "; pass that build, or --skip-missing to check only what needs no data"
                    ),
                    problem=not skip_missing,
                )
            continue
        source, kind = builds[meta.dataset_fingerprint]
        if meta.dataset != kind:
            out.refuse(
                entry.slug,
                f"{METADATA}: dataset is {meta.dataset} but the build of its fingerprint, {source}, is {kind}",
            )
            continue
        if not recompute:
            continue
        key = (meta.dataset_fingerprint, meta.task, meta.split)
        if key not in evaluators:
            evaluators[key] = Evaluator(meta.task, meta.split, source)
        scored, why, skipped = _recompute(entry, evaluators[key], source, allow_download)
        if scored is None:
            out.refuse(entry.slug, why, problem=not (skipped and skip_missing))
        else:
            out.scored.append(scored)
    if recompute:
        _refuse_repeated_runs(out)
    return out


def _refuse_repeated_runs(out: Validation) -> None:
    """Drop scored entries whose runs repeat each other, or another entry's of the same table
    (the later-dated one is refused; on the same date, both, as neither can be told first)."""
    for scored in list(out.scored):
        problem = repeated_runs(scored.ranks, scored.entry.files)
        if problem:
            out.refuse(scored.entry.slug, problem)
    out.scored = [s for s in out.scored if s.entry.slug not in out.excluded]
    refused: dict[str, str] = {}
    for i, a in enumerate(out.scored):
        for b in out.scored[i + 1 :]:
            ma, mb = a.entry.metadata, b.entry.metadata
            if (ma.dataset_fingerprint, ma.task, ma.split) != (mb.dataset_fingerprint, mb.task, mb.split):
                continue
            share, ia, ib = closest_run(a.ranks, b.ranks)
            if share <= NEAR_DUPLICATE:
                continue
            for later, earlier, run, other_run in ((a, b, ia, ib), (b, a, ib, ia)):
                if later.entry.metadata.date >= earlier.entry.metadata.date:
                    refused.setdefault(
                        later.entry.slug,
                        f"its {later.entry.files[run]} gives the target the same rank as "
                        f"{earlier.entry.slug}/{earlier.entry.files[other_run]} on {share:.1%} of the instances "
                        f"(near-duplicate entries; the earlier date, {earlier.entry.metadata.date}, stands"
                        + (
                            ", and on the same date neither does)"
                            if later.entry.metadata.date == earlier.entry.metadata.date
                            else ")"
                        ),
                    )
    for slug, why in refused.items():
        out.refuse(slug, why)
    out.scored = [s for s in out.scored if s.entry.slug not in refused]


def _recompute(
    entry: Entry, evaluator: Evaluator, source: str, allow_download: bool
) -> tuple[Scored | None, str, bool]:
    """Recompute one entry: (the scored entry, "", False) when its results equal the recorded
    ones, else (None, what differs, whether it was only skipped for a download)."""
    remote = {r.file: r for r in entry.metadata.remote_predictions}
    recorded = entry.results
    with tempfile.TemporaryDirectory(prefix="mmbench-recompute-") as tmp:
        files = {}
        for i, listed in enumerate(recorded["predictions"]):
            name = listed["file"]
            path = entry.folder / name
            if name in remote:
                if not allow_download:
                    return (
                        None,
                        f"not checked against data: {name} is remote (pass --allow-download to fetch it)",
                        True,
                    )
                path = Path(tmp) / name
                try:
                    fetch(remote[name].url, remote[name].size, path)
                except MmbenchError as exc:
                    return None, str(exc), False
            try:
                digest = decompressed_sha256(path)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                return None, f"{name}: not a readable .jsonl.gz file ({exc})", False
            if digest != listed["sha256"]:
                return (
                    None,
                    (
                        f"{name}: its SHA-256 differs from {RESULTS} field predictions[{i}].sha256 "
                        "(changed after `mmbench submit`)"
                    ),
                    False,
                )
            files[name] = path
        try:
            fresh, ranks = compute_results(
                evaluator, entry.slug, entry.metadata.model_dump(mode="json"), entry.metadata_bytes, files
            )
        except MmbenchError as exc:
            return None, str(exc), False
    ignored = ("mmbench_version", "results_sha256")
    diff = first_difference(
        {k: v for k, v in recorded.items() if k not in ignored},
        {k: v for k, v in fresh.items() if k not in ignored},
    )
    if diff is not None:
        return (
            None,
            (
                f"{RESULTS} field {diff}: recorded {lookup(recorded, diff)!r}, recomputed {lookup(fresh, diff)!r}"
            ),
            False,
        )
    return Scored(entry, fresh, ranks, source), "", False
