"""Paired comparison of two systems on the same instances: differences, intervals, tests.

Every per-instance metric is a function of the target's rank, so instances that share their
ranks under every run of both systems share their differences. The paired bootstrap draws the
counts of these groups from a multinomial (for one run each, the joint histogram of the two
ranks, 101 x 101 cells); the paired randomization test flips the sign of each instance's
difference, which for a set of equal differences is a binomial draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from mmbench.errors import MmbenchError
from mmbench.metrics import KS, METRICS, metric_by_rank

if TYPE_CHECKING:
    from mmbench.evaluator import Evaluator


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm, Scand. J. Statist. 6(2), 1979), in input order."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def sign_flip_p(
    values: np.ndarray,
    counts: np.ndarray,
    observed: float,
    n_permutations: int,
    rng: np.random.Generator,
    chunk: int = 500,
) -> float:
    """Two-sided p-value of the paired randomization test for the sum of differences.

    ``values`` are the distinct nonzero differences and ``counts`` how often each occurs; under
    the null each difference's sign is a fair coin, so the count of positive signs among the
    instances sharing a value is Binomial(count, 1/2). p = (1 + #{|sum*| >= |sum|}) / (1 + R).
    """
    if values.size == 0:
        return 1.0
    extreme = 0
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        positives = rng.binomial(counts, 0.5, size=(size, values.size))
        sums = (2 * positives - counts) @ values
        extreme += int(np.count_nonzero(np.abs(sums) >= abs(observed) - 1e-9))
        done += size
    return (1 + extreme) / (1 + n_permutations)


def compare_ranks(
    ranks_a: np.ndarray,
    ranks_b: np.ndarray,
    ks: list[int] | tuple[int, ...] = KS,
    n_bootstrap: int = 1000,
    n_permutations: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Per-metric difference B - A with a paired bootstrap interval, a paired randomization test
    and a paired t-test, Holm-corrected across the reported metrics.

    ``ranks_a`` and ``ranks_b`` hold the target's rank (1..100, 0 = absent) of each instance:
    shape ``[n]`` for one run of a system, or ``[runs, n]`` for several runs of it (one per
    training seed, say), in which case an instance's metric is its mean over the runs. The tests
    stay paired over the instances; averaging the runs removes the training noise that a single
    seed's comparison carries on top of the instance sampling.
    """
    a, b = np.atleast_2d(ranks_a), np.atleast_2d(ranks_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"ranks of A {a.shape} and B {b.shape}: expected [runs, n] over the same n instances"
        )
    n = a.shape[1]
    # Instances with the same ranks under every run have the same differences: resampling the
    # instances is a multinomial draw over these groups (for one run each, the joint histogram).
    groups, counts = np.unique(np.vstack([a, b]).T.astype(np.int64), axis=0, return_counts=True)
    rng = np.random.default_rng(seed)
    boot = rng.multinomial(n, counts / n, size=n_bootstrap) if n_bootstrap else None
    rows = [
        _metric_row(metric, k, groups, counts, a.shape[0], boot, n_permutations, rng)
        for metric in METRICS
        for k in ks
    ]
    for key in ("p_randomization", "p_t_test"):
        for row, adjusted in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[f"{key}_holm"] = adjusted
    for row in rows:
        row["significant"] = row["p_randomization_holm"] < alpha
    return {
        "n_instances": int(n),
        "runs_a": int(a.shape[0]),
        "runs_b": int(b.shape[0]),
        "alpha": alpha,
        "correction": "holm",
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "seed": seed,
        "metrics": rows,
    }


def _metric_row(
    metric: str,
    k: int,
    groups: np.ndarray,
    counts: np.ndarray,
    runs_a: int,
    boot: np.ndarray | None,
    n_permutations: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One metric's comparison over the groups of instances that share their ranks: the means,
    the difference with its bootstrap interval, and the randomization and t-test p-values."""
    n = int(counts.sum())
    value = metric_by_rank(metric, k)
    per_a, per_b = value[groups[:, :runs_a]].mean(axis=1), value[groups[:, runs_a:]].mean(axis=1)
    diff = per_b - per_a
    total = float(counts @ diff)
    low, high = np.percentile(boot @ diff / n, [2.5, 97.5]) if boot is not None else (total / n, total / n)
    nonzero = diff != 0
    # Rounded so that equal differences reached by different sums of runs share a group.
    distinct, inverse = np.unique(np.round(np.abs(diff[nonzero]), 12), return_inverse=True)
    flips = np.bincount(inverse, weights=counts[nonzero]).astype(np.int64)
    p_rand = sign_flip_p(distinct, flips, total, n_permutations, rng)
    mean_d = total / n
    var_d = (counts @ (diff - mean_d) ** 2) / (n - 1) if n > 1 else 0.0
    if var_d > 0:
        p_t = float(2 * stats.t.sf(abs(mean_d / np.sqrt(var_d / n)), df=n - 1))
    else:
        p_t = 1.0 if mean_d == 0 else 0.0
    return {
        "metric": f"{metric}@{k}",
        "a": float(counts @ per_a / n),
        "b": float(counts @ per_b / n),
        "difference": mean_d,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_randomization": p_rand,
        "p_t_test": p_t,
    }


PREDICTION_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def prediction_runs(path: Path, which: str = "predictions") -> list[Path]:
    """The predictions files of one system: the file itself, or a folder's files (one run each,
    e.g. one per training seed) in name order."""
    if not path.is_dir():
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(PREDICTION_SUFFIXES))
    if not runs:
        raise MmbenchError(
            f"{which} = {path}: a folder with no predictions file; expected one file per run "
            f"named *{', *'.join(PREDICTION_SUFFIXES)}"
        )
    return runs


def segment_mask(evaluator: Evaluator, segments: list[str] | tuple[str, ...]) -> np.ndarray:
    """The instances in every group named (``SEGMENT=GROUP``, e.g. ``target_cold=cold``)."""
    keep = np.ones(evaluator.n_instances, dtype=bool)
    for segment in segments:
        name, _, group = segment.partition("=")
        groups = evaluator.segments().get(name, {})
        if group not in groups:
            known = ", ".join(f"{s}={g}" for s, gs in evaluator.segments().items() for g in gs)
            raise MmbenchError(f"--segment {segment!r}: unknown; this dataset has {known}")
        keep &= groups[group]
    if not keep.any():
        named = " --segment ".join(segments)
        where = "this group" if len(segments) == 1 else "all of these groups"
        raise MmbenchError(f"--segment {named}: no instance is in {where}")
    return keep


def compare_systems(
    evaluator: Evaluator,
    a: Path,
    b: Path,
    *,
    ks: list[int] | tuple[int, ...] = KS,
    segments: list[str] | tuple[str, ...] = (),
    allow_missing: bool = False,
    n_bootstrap: int = 1000,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`compare_ranks` of two systems, each a predictions file or a folder of runs, on
    the instances in every segment group named; the result also says what was compared."""
    files = {"a": prediction_runs(a, "A"), "b": prediction_runs(b, "B")}
    ranks = {
        side: np.stack([evaluator.read_file(f, allow_missing=allow_missing).ranks for f in paths])
        for side, paths in files.items()
    }
    keep = segment_mask(evaluator, segments)
    result = compare_ranks(
        ranks["a"][:, keep], ranks["b"][:, keep], sorted(set(ks)), n_bootstrap, n_permutations, seed
    )
    result.update({"a": str(a), "b": str(b), "task": evaluator.task, "split": evaluator.split})
    result.update({"dataset": evaluator.source, "files_a": [str(f) for f in files["a"]]})
    result["files_b"] = [str(f) for f in files["b"]]
    if segments:
        result["segment"] = " & ".join(segments)
    return result
