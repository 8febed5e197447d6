"""Paired comparison of two systems on the same instances: differences, intervals, tests.

Every per-instance metric is a function of the target's rank, so instances that share their
ranks under every run of both systems share their differences. The paired bootstrap draws the
counts of these groups from a multinomial (for one run each, the joint histogram of the two
ranks, 101 x 101 cells); the paired randomization test flips the sign of each instance's
difference, which for a set of equal differences is a binomial draw.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft
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


EXACT_BUDGET = 2_000_000  # the most (distinct values x support points) of an exact p-value


def sign_flip_p(
    values: np.ndarray,
    counts: np.ndarray,
    observed: float,
    n_permutations: int,
    rng: np.random.Generator,
    chunk: int = 500,
    *,
    exact_budget: int = EXACT_BUDGET,
) -> float:
    """Two-sided p-value of the paired randomization test for the sum of differences.

    ``values`` are the distinct nonzero differences and ``counts`` how often each occurs; under
    the null each difference's sign is a fair coin, so the count of positive signs among the
    instances sharing a value is Binomial(count, 1/2).

    Exact when it is cheap. If the values are integer multiples w_j of one step (see
    :func:`_lattice`), the null sum is sum_j w_j (2 X_j - c_j) with X_j ~ Bin(c_j, 1/2), whose
    distribution lives on W + 1 points, W = sum_j w_j c_j. With one value it is a binomial tail
    (the sign test), exact at any number of instances; with several it costs about (number of
    values) x (W + 1) cosines and logarithms (:func:`_exact_sign_flip_p`), against (number of
    values) x R binomial draws for Monte Carlo, and is used when that is at most
    ``exact_budget`` (0 turns the exact test off). Exact p-values have no floor and no Monte
    Carlo error (float rounding only: the binomial tail to relative precision, the transform
    to ~1e-13 absolute). This covers recall, whose differences are all 1 for one run of each
    system and multiples of 1 / lcm(runs) otherwise, and MRR at small K on few instances. It does not cover NDCG, whose differences 1/log2(r + 1) -
    1/log2(s + 1) are irrational with no common step, nor MRR at larger K: 1/r - 1/s over ranks
    up to K needs the step 1 / lcm(1..K) (2,520 at K = 10, ~7e40 at K = 100), so W grows
    past any budget; enumerating the sign patterns instead costs the product of (c_j + 1) over
    hundreds of distinct values. For those the test is Monte Carlo: R = ``n_permutations``
    draws and p = (1 + #{|sum*| >= |sum|}) / (1 + R), never below the floor 1 / (1 + R), at a
    cost of R x (number of values) binomial draws; :func:`compare_ranks` chooses R so that
    the floor cannot decide significance.
    """
    if values.size == 0:
        return 1.0
    lattice = _lattice(values)
    if lattice is not None:
        weights, step = lattice
        if exact_budget > 0 and (
            values.size == 1 or values.size * (int(counts @ weights) + 1) <= exact_budget
        ):
            return _exact_sign_flip_p(weights, counts, int(round(abs(observed) / step)))
    extreme = 0
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        positives = rng.binomial(counts, 0.5, size=(size, values.size))
        sums = (2 * positives - counts) @ values
        extreme += int(np.count_nonzero(np.abs(sums) >= abs(observed) - 1e-9))
        done += size
    return (1 + extreme) / (1 + n_permutations)


def _lattice(
    values: np.ndarray, max_divisor: int = 12, max_denominator: int = 1000
) -> tuple[np.ndarray, float] | None:
    """Integer weights w and a step h with values = w h (to 1e-9 relative), or None.

    The step is the smallest value divided by the first q in 1..``max_divisor`` that works (one
    value, or values all multiples of one irrational number), else 1 / L with L the least
    common multiple of the denominators of the values as fractions with denominators up to
    ``max_denominator`` (MRR's 1/r - 1/s for small K, recall averaged over runs). A set of
    irrational values passes the second test only if every one lies within 1e-9 of such a
    fraction, which hardly happens to two at once; and then the step is still exact to 1e-9.
    A grid with more than 1e9 steps up to the largest value counts as none.
    """
    smallest = float(values.min())
    for q in range(1, max_divisor + 1):
        step = smallest / q
        units = values / step
        weights = np.round(units)
        if weights.max() > 1e9:  # a relative tolerance on such a grid would admit any values
            break
        if np.all(np.abs(units - weights) <= 1e-9 * weights):
            return weights.astype(np.int64), step
    denominators = set()
    for v in values.tolist():
        fraction = Fraction(v).limit_denominator(max_denominator)
        if abs(v - fraction) > 1e-9 * v:
            return None
        denominators.add(fraction.denominator)
    common = math.lcm(*denominators)
    if common * float(values.max()) > 1e9:  # a grid far too fine for any exact computation
        return None
    step = 1.0 / common
    units = values / step
    weights = np.round(units)
    if not np.all(np.abs(units - weights) <= 1e-9 * weights):
        return None
    return weights.astype(np.int64), step


def _exact_sign_flip_p(weights: np.ndarray, counts: np.ndarray, observed: int) -> float:
    """P(|sum_j w_j (2 X_j - c_j)| >= observed) for independent X_j ~ Bin(c_j, 1/2), all in
    units of the lattice step.

    One value: twice the binomial tail, P(|2 X - c| >= o) = 2 P(X <= (c - o) / 2) for o > 0.
    Several: the distribution of T = sum_j w_j X_j on 0..W from its discrete Fourier transform
    on n >= W + 1 points (a fast FFT length; T's W + 1 values do not alias), the product over j
    of ((1 + z^(w_j)) / 2)^(c_j) at the n-th roots of unity z, written as a phase times prod_j
    cos(pi f w_j / n)^(c_j) so that no large power of a complex number loses precision; one
    inverse real FFT gives T's probabilities."""
    if observed == 0:
        return 1.0
    if weights.size == 1:
        c, units = int(counts[0]), -(-observed // int(weights[0]))  # |2 X - c| >= units
        return float(min(1.0, 2.0 * stats.binom.cdf((c - units) // 2, c, 0.5)))
    total = int(counts @ weights)  # W
    size = scipy.fft.next_fast_len(total + 1, real=True)
    f = np.arange(size // 2 + 1, dtype=np.int64)
    log_modulus = np.zeros(f.size)
    negative = np.zeros(f.size, dtype=np.int64)
    with np.errstate(divide="ignore"):
        for w, c in zip(weights.tolist(), counts.tolist(), strict=True):
            cosine = np.cos(np.pi * ((f * w) % (2 * size)) / size)
            log_modulus += c * np.log(np.abs(cosine))
            negative += c * (cosine < 0)
    phase = -np.pi * ((f * total) % (2 * size)) / size
    spectrum = np.where(negative % 2, -1.0, 1.0) * np.exp(log_modulus + 1j * phase)
    pmf = np.clip(scipy.fft.irfft(spectrum, n=size)[: total + 1], 0.0, None)
    sums = 2 * np.arange(total + 1) - total
    return float(min(1.0, pmf[np.abs(sums) >= observed].sum()))


def permutations_needed(n_statistics: int, alpha: float, n_permutations: int = 10_000) -> int:
    """The randomization draws R for a Holm family of ``n_statistics``: at least
    ``n_permutations`` and at least 20 m / alpha, so that the smallest Holm-adjusted Monte Carlo
    p-value, m / (1 + R), is below alpha / 20 and the floor never decides significance."""
    return max(int(n_permutations), math.ceil(20 * n_statistics / alpha))


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
    and a paired t-test, Holm-corrected across the distinct statistics of the reported metrics.

    ``ranks_a`` and ``ranks_b`` hold the target's rank (1..100, 0 = absent) of each instance:
    shape ``[n]`` for one run of a system, or ``[runs, n]`` for several runs of it (one per
    training seed, say), in which case an instance's metric is its mean over the runs. The tests
    stay paired over the instances; averaging the runs removes the training noise that a single
    seed's comparison carries on top of the instance sampling.

    Metrics with the same per-instance differences are one statistic, tested once: recall@1,
    NDCG@1 and MRR@1 always (each is 1 iff the rank is 1), and e.g. recall@50 and recall@100
    when no target falls between the two cut-offs. Holm runs over the m distinct statistics
    (``holm_family`` in the result), and every metric gets its statistic's p-values.

    ``n_permutations`` is a minimum: the Monte Carlo randomization test uses R =
    :func:`permutations_needed` draws (``n_permutations`` in the result; the request is
    ``n_permutations_requested``), so that its floor after Holm, m / (1 + R), stays below
    alpha / 20. Statistics whose differences lie on a small grid (recall) get the exact
    p-value instead (:func:`sign_flip_p`).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha = {alpha}: expected a level in (0, 1)")
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
    rows, diffs = [], []
    for metric in METRICS:
        for k in ks:
            row, diff = _metric_row(metric, k, groups, counts, a.shape[0], boot)
            rows.append(row)
            diffs.append(diff)
    # One statistic per distinct vector of differences (rounded so that equal differences
    # reached by different sums of runs match; + 0.0 turns -0.0 into 0.0).
    statistic: dict[bytes, int] = {}
    members = [statistic.setdefault((np.round(d, 12) + 0.0).tobytes(), len(statistic)) for d in diffs]
    first = {s: i for i, s in reversed(list(enumerate(members)))}
    m = len(statistic)
    draws = permutations_needed(m, alpha, n_permutations)
    p_rand = [_randomization_p(diffs[first[s]], counts, draws, rng) for s in range(m)]
    p_rand_holm = holm(p_rand)
    p_t = [rows[first[s]]["p_t_test"] for s in range(m)]
    p_t_holm = holm(p_t)
    for row, s in zip(rows, members, strict=True):
        row["p_randomization"] = p_rand[s]
        row["p_randomization_holm"] = p_rand_holm[s]
        row["p_t_test_holm"] = p_t_holm[s]
        row["significant"] = row["p_randomization_holm"] < alpha
    return {
        "n_instances": int(n),
        "runs_a": int(a.shape[0]),
        "runs_b": int(b.shape[0]),
        "alpha": alpha,
        "correction": "holm",
        "holm_family": m,
        "n_bootstrap": n_bootstrap,
        "n_permutations": draws,
        "n_permutations_requested": n_permutations,
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
) -> tuple[dict[str, Any], np.ndarray]:
    """One metric's comparison over the groups of instances that share their ranks: the means,
    the difference with its bootstrap interval and the t-test p-value; and the difference of
    each group, from which :func:`compare_ranks` draws the randomization test."""
    n = int(counts.sum())
    value = metric_by_rank(metric, k)
    per_a, per_b = value[groups[:, :runs_a]].mean(axis=1), value[groups[:, runs_a:]].mean(axis=1)
    diff = per_b - per_a
    total = float(counts @ diff)
    low, high = np.percentile(boot @ diff / n, [2.5, 97.5]) if boot is not None else (total / n, total / n)
    mean_d = total / n
    var_d = (counts @ (diff - mean_d) ** 2) / (n - 1) if n > 1 else 0.0
    if var_d > 0:
        p_t = float(2 * stats.t.sf(abs(mean_d / np.sqrt(var_d / n)), df=n - 1))
    else:
        p_t = 1.0 if mean_d == 0 else 0.0
    row = {
        "metric": f"{metric}@{k}",
        "a": float(counts @ per_a / n),
        "b": float(counts @ per_b / n),
        "difference": mean_d,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_randomization": 1.0,  # set by compare_ranks, once per distinct statistic
        "p_t_test": p_t,
    }
    return row, diff


def _randomization_p(
    diff: np.ndarray, counts: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> float:
    """The randomization test of one statistic from the differences of the instance groups."""
    # Rounded so that equal differences reached by different sums of runs share a group, and
    # a difference that is zero up to rounding (the mean of equal runs) counts as zero.
    rounded = np.round(np.abs(diff), 12)
    nonzero = rounded != 0
    distinct, inverse = np.unique(rounded[nonzero], return_inverse=True)
    flips = np.bincount(inverse, weights=counts[nonzero]).astype(np.int64)
    return sign_flip_p(distinct, flips, float(counts @ diff), n_permutations, rng)


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
    """The instances in every group named (``COLUMN=VALUE`` of a label column of the instances,
    e.g. ``target_cold=true`` or ``target_popularity=tail``)."""
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
