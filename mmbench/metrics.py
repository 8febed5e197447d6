"""Ranking metrics for one relevant item per instance, as functions of the target's rank.

Every per-instance metric here depends only on ``rank``, the 1-based position of the target in
the submitted ranking, with 0 meaning "not in the ranking". Each function takes an integer array
of ranks and returns a float64 array of per-instance values; the benchmark's score is their
mean. Because the value is a function of the rank alone, ``metric_by_rank`` tabulates it once
per possible rank, which lets confidence intervals resample a rank histogram instead of
instances.

Reference: Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques",
ACM TOIS 20(4), 2002 (DCG); Voorhees, "The TREC-8 question answering track report", 1999 (MRR).
"""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10, 20, 50, 100)
METRICS = ("recall", "ndcg", "mrr")
HEADLINE = ("ndcg@10", "recall@10")


def _hit(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    return (ranks >= 1) & (ranks <= k)


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = HitRate@K = 1 if 1 <= rank <= K else 0 (one relevant item per instance)."""
    return _hit(ranks, k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K = 1 / log2(rank + 1) if 1 <= rank <= K else 0.

    Binary relevance with one relevant item, so the ideal DCG is 1/log2(2) = 1 and NDCG equals
    the DCG of the target (Järvelin & Kekäläinen 2002, log2 discount).
    """
    ranks = np.asarray(ranks)
    hit = _hit(ranks, k)
    out = np.zeros(ranks.shape, dtype=np.float64)
    out[hit] = 1.0 / np.log2(ranks[hit].astype(np.float64) + 1.0)
    return out


def mrr_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """MRR@K = 1 / rank if 1 <= rank <= K else 0 (reciprocal rank cut at K)."""
    ranks = np.asarray(ranks)
    hit = _hit(ranks, k)
    out = np.zeros(ranks.shape, dtype=np.float64)
    out[hit] = 1.0 / ranks[hit].astype(np.float64)
    return out


METRIC_FUNCTIONS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k}


def coverage_at_k(first_position: np.ndarray, k: int) -> float:
    """Catalogue coverage@K = |distinct tracks in any top-K list| / |catalogue|.

    ``first_position[i]`` is the best (smallest, 1-based) position at which catalogue track
    ``i`` appears in any submitted ranking, or a value above 100 when it never appears.
    """
    first_position = np.asarray(first_position)
    return float(np.count_nonzero(first_position <= k) / first_position.size) if first_position.size else 0.0


def metric_by_rank(metric: str, k: int, max_rank: int = 100) -> np.ndarray:
    """The metric's value for rank 0 (absent), 1, ..., ``max_rank``: index with the rank."""
    return METRIC_FUNCTIONS[metric](np.arange(max_rank + 1), k)


def chance_level(metric: str, k: int, n_items: int) -> float:
    """Expected value of the metric for a uniformly random ranking of ``n_items`` items.

    The target is equally likely at each of the ``n_items`` positions, so the expectation is
    (1 / n_items) * sum over ranks r <= min(K, n_items) of the metric's value at rank r.
    """
    top = min(k, n_items)
    return float(METRIC_FUNCTIONS[metric](np.arange(1, top + 1), k).sum() / n_items)
