"""Paired comparison of two systems on the same instances: differences, intervals, tests.

Every per-instance metric is a function of the target's rank, so a pair of systems is fully
described by the joint histogram of their ranks (101 x 101 cells). The paired bootstrap draws
that histogram from a multinomial; the paired randomization test flips the sign of each
instance's difference, which for a set of equal differences is a binomial draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from mmbench.metrics import KS, METRICS, metric_by_rank
from mmbench.schema import MAX_PREDICTIONS

CELLS = MAX_PREDICTIONS + 1


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
    and a paired t-test, Holm-corrected across the reported metrics."""
    n = ranks_a.size
    joint = np.bincount(ranks_a.astype(np.int64) * CELLS + ranks_b, minlength=CELLS * CELLS)
    rng = np.random.default_rng(seed)
    boot = rng.multinomial(n, joint / n, size=n_bootstrap) if n_bootstrap else None
    rows = []
    for metric in METRICS:
        for k in ks:
            value = metric_by_rank(metric, k)
            diff = (value[:, None] - value[None, :]).ravel() * -1  # cell (a, b) -> f(b) - f(a)
            total = float(joint @ diff)
            mean_a = float(joint.reshape(CELLS, CELLS).sum(axis=1) @ value / n)
            mean_b = float(joint.reshape(CELLS, CELLS).sum(axis=0) @ value / n)
            low, high = (
                np.percentile(boot @ diff / n, [2.5, 97.5]) if boot is not None else (total / n, total / n)
            )
            nonzero = (joint > 0) & (diff != 0)
            distinct, inverse = np.unique(np.abs(diff[nonzero]), return_inverse=True)
            counts = np.bincount(inverse, weights=joint[nonzero]).astype(np.int64)
            p_rand = sign_flip_p(distinct, counts, total, n_permutations, rng)
            mean_d = total / n
            var_d = (joint @ (diff - mean_d) ** 2) / (n - 1) if n > 1 else 0.0
            if var_d > 0:
                p_t = float(2 * stats.t.sf(abs(mean_d / np.sqrt(var_d / n)), df=n - 1))
            else:
                p_t = 1.0 if mean_d == 0 else 0.0
            rows.append(
                {
                    "metric": f"{metric}@{k}",
                    "a": mean_a,
                    "b": mean_b,
                    "difference": mean_d,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "p_randomization": p_rand,
                    "p_t_test": p_t,
                }
            )
    for key in ("p_randomization", "p_t_test"):
        for row, adjusted in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[f"{key}_holm"] = adjusted
    for row in rows:
        row["significant"] = row["p_randomization_holm"] < alpha
    return {
        "n_instances": int(n),
        "alpha": alpha,
        "correction": "holm",
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "seed": seed,
        "metrics": rows,
    }
