"""A submission's ``results.json``: every number recomputed from its predictions files.

The scores come from the official evaluator with fixed settings (:data:`EVALUATION`), so the
same predictions give the same file byte for byte, and ``mmbench leaderboard validate
--recompute`` can compare a submission's numbers with a fresh computation field by field.

With several runs (one per training seed), an instance's metric is its mean over the runs and
the interval is the percentile bootstrap over instances of that mean (the runs stay paired by
instance), as ``mmbench compare`` does for a folder of runs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from mmbench.digests import sha256_bytes
from mmbench.errors import MmbenchError
from mmbench.evaluator import Evaluator, summarize_counts
from mmbench.leaderboard.metadata import RUN_FILE, SHA256
from mmbench.metrics import KS, METRICS, metric_by_rank

SCHEMA_VERSION = 1
EVALUATION: dict[str, Any] = {"ks": list(KS), "n_bootstrap": 1000, "seed": 0, "level": 0.95}
RESULTS = "results.json"
FLOAT_TOLERANCE = 1e-6
METADATA = "metadata.yaml"


class _Strict(BaseModel):  # strict: a number never comes from a string; int is taken for float
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Interval(_Strict):
    value: float
    ci_low: float
    ci_high: float


class PredictionsFile(_Strict):
    file: str = Field(pattern=RUN_FILE)
    sha256: str = Field(pattern=SHA256)


class Run(_Strict):
    file: str = Field(pattern=RUN_FILE)
    metrics: dict[str, Interval]
    coverage: dict[str, float]
    beyond_accuracy: dict[str, float]


class Mean(_Strict):
    metrics: dict[str, Interval]
    segments: dict[str, dict[str, dict[str, Interval | StrictInt]]]
    beyond_accuracy: dict[str, float]


class ResultsFile(_Strict):
    """The schema of ``results.json``: read before any of it is used, so that a value of the
    wrong type is an error naming the field, never a traceback further on."""

    schema_version: StrictInt = Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)
    slug: str
    model: str
    dataset: str
    dataset_fingerprint: str = Field(pattern=SHA256)
    task: str
    split: str
    n_instances: StrictInt = Field(ge=1)
    evaluation: dict[str, object]
    mmbench_version: str
    metadata_sha256: str = Field(pattern=SHA256)
    predictions: list[PredictionsFile] = Field(min_length=1)
    chance: dict[str, float]
    runs: list[Run] = Field(min_length=1)
    mean: Mean
    results_sha256: str = Field(pattern=SHA256)


def check_results(data: object, where: str) -> dict[str, Any]:
    """``data`` (a parsed results.json) if it follows :class:`ResultsFile`, else an error naming
    the first field that does not."""
    try:
        ResultsFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "the file"
        raise MmbenchError(f"{where}: field {field}: {error['msg']}") from None
    return data  # type: ignore[return-value]


def summarize_runs(
    ranks: np.ndarray,
    ks: list[int],
    n_bootstrap: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:
    """Mean over instances of each metric averaged over the runs, with its percentile bootstrap
    interval over instances.

    ``ranks`` is ``[runs, n]`` (the target's rank, 0 = absent). Instances with the same ranks in
    every run have the same value, so resampling instances is a multinomial draw over those
    groups; for one run the groups are the 101 ranks, which makes the result equal to the
    evaluator's own report for that run.
    """
    if ranks.shape[0] == 1:
        groups = np.arange(101)[:, None]
        counts = np.bincount(ranks[0], minlength=101)
    else:
        groups, counts = np.unique(ranks.T, axis=0, return_counts=True)
    names = [f"{m}@{k}" for m in METRICS for k in ks]
    table = np.stack([metric_by_rank(m, k)[groups].mean(axis=1) for m in METRICS for k in ks], axis=1)
    return summarize_counts(counts, table, names, n_bootstrap, rng)


def decompressed_sha256(path: Path) -> str:
    """SHA-256 of a ``.jsonl.gz`` file's decompressed bytes (what the submission records)."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def compute_results(
    evaluator: Evaluator,
    slug: str,
    metadata: dict[str, Any],
    metadata_bytes: bytes,
    files: dict[str, Path],
) -> tuple[dict[str, Any], np.ndarray]:
    """The results of a submission and its runs' ranks (``[runs, instances]``, the target's
    rank, 0 = absent): ``files`` maps each run's stored name (``seed<N>.jsonl.gz``) to where it
    is, in run order; ``metadata`` is the validated metadata as plain data."""
    ks, n_bootstrap, seed = EVALUATION["ks"], EVALUATION["n_bootstrap"], EVALUATION["seed"]
    runs: list[dict[str, Any]] = []
    all_ranks = []
    for name, path in files.items():
        ranks = evaluator.read_file(path)
        report = evaluator.report(ranks, name, ks=ks, n_bootstrap=n_bootstrap, seed=seed, segments=False)
        runs.append(
            {
                "file": name,
                "metrics": report.metrics,
                "coverage": report.coverage,
                "beyond_accuracy": report.beyond_accuracy,
            }
        )
        all_ranks.append(ranks.ranks)
    stacked = np.stack(all_ranks)
    rng = np.random.default_rng(seed)
    mean = summarize_runs(stacked, ks, n_bootstrap, rng)
    segments = {
        segment: {
            group: {
                "n": int(mask.sum()),
                **(summarize_runs(stacked[:, mask], ks, n_bootstrap, rng) if mask.any() else {}),
            }
            for group, mask in masks.items()
        }
        for segment, masks in evaluator.segments().items()
    }
    results = {
        "schema_version": SCHEMA_VERSION,
        "slug": slug,
        "model": metadata["model"],
        "dataset": metadata["dataset"],
        "dataset_fingerprint": metadata["dataset_fingerprint"],
        "task": evaluator.task,
        "split": evaluator.split,
        "n_instances": evaluator.n_instances,
        "evaluation": EVALUATION,
        "mmbench_version": version("mmbench"),
        "metadata_sha256": sha256_bytes(metadata_bytes),
        "predictions": [{"file": name, "sha256": decompressed_sha256(path)} for name, path in files.items()],
        "chance": report.chance,
        "runs": runs,
        "mean": {
            "metrics": mean,
            "segments": segments,
            "beyond_accuracy": {
                name: float(np.mean([run["beyond_accuracy"][name] for run in runs]))
                for name in runs[0]["beyond_accuracy"]
            },
        },
    }
    results["results_sha256"] = results_digest(results)
    return results, stacked


def results_digest(results: dict[str, Any]) -> str:
    """SHA-256 of the results' canonical JSON (sorted keys, no spaces), without this field."""
    body = {k: v for k, v in results.items() if k != "results_sha256"}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def dumps_results(results: dict[str, Any]) -> str:
    """``results.json``'s text."""
    return json.dumps(results, indent=1, ensure_ascii=False) + "\n"


def first_difference(recorded: Any, recomputed: Any, path: str = "") -> str | None:
    """The first field (``runs[0].metrics.ndcg@10.value``) where two results differ, or None.

    Floats agree within :data:`FLOAT_TOLERANCE` (relative): the rank metrics are recomputed
    exactly, but the diversity measures read embeddings that another machine's CPU may compute
    a few units in the last place apart."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        for key in sorted(set(recorded) | set(recomputed)):
            where = f"{path}.{key}" if path else key
            if key not in recorded or key not in recomputed:
                return where
            found = first_difference(recorded[key], recomputed[key], where)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(recomputed, list):
        if len(recorded) != len(recomputed):
            return f"{path} (length)"
        for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(recorded, float) and isinstance(recomputed, float):
        return None if math.isclose(recorded, recomputed, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12) else path
    return None if recorded == recomputed and type(recorded) is type(recomputed) else path


def lookup(results: dict[str, Any], path: str) -> Any:
    """The value at a field path of :func:`first_difference` (None where it is missing)."""
    value: Any = results
    for part in path.replace("[", ".[").split("."):
        if not part or part == "(length)" or part.endswith(" (length)"):
            continue
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return value
