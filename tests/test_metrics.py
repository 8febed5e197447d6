"""Metrics against hand-computed values and against a straightforward list-based reference."""

import math

import numpy as np
import pytest

from mmbench.metrics import KS, chance_level, coverage_at_k, metric_by_rank, mrr_at_k, ndcg_at_k, recall_at_k


@pytest.mark.parametrize("k", KS)
def test_hand_computed_edges_for_every_k(k):
    # rank 1, rank K, rank K + 1, absent (0)
    ranks = np.array([1, k, k + 1, 0])
    assert recall_at_k(ranks, k).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ndcg_at_k(ranks, k).tolist() == pytest.approx([1.0, 1 / math.log2(k + 1), 0.0, 0.0], abs=1e-15)
    assert mrr_at_k(ranks, k).tolist() == pytest.approx([1.0, 1 / k, 0.0, 0.0], abs=1e-15)


def test_hand_computed_values():
    # Target at rank 3: NDCG = 1/log2(4) = 0.5, MRR = 1/3, hit for K >= 3.
    assert ndcg_at_k(np.array([3]), 5)[0] == 0.5
    assert mrr_at_k(np.array([3]), 5)[0] == pytest.approx(1 / 3)
    assert recall_at_k(np.array([3]), 2)[0] == 0.0
    # Rank 2: 1/log2(3) = 0.6309297535714575
    assert ndcg_at_k(np.array([2]), 10)[0] == pytest.approx(0.6309297535714575, abs=1e-15)
    # A single-item list: the only possible hit is rank 1.
    assert [recall_at_k(np.array([r]), 1)[0] for r in (0, 1)] == [0.0, 1.0]
    # Mean over instances: ranks 1, 2, absent -> NDCG@10 = (1 + 0.6309...) / 3
    assert ndcg_at_k(np.array([1, 2, 0]), 10).mean() == pytest.approx((1 + 1 / math.log2(3)) / 3)


def _reference(ranking: list[str], target: str, k: int) -> dict[str, float]:
    """Written from the definitions over the list itself, independent of the rank shortcut."""
    dcg, rr, hit = 0.0, 0.0, 0.0
    for position, item in enumerate(ranking[:k], start=1):
        if item == target:
            dcg += 1.0 / math.log2(position + 1)
            rr = 1.0 / position
            hit = 1.0
    idcg = 1.0  # one relevant item, at position 1 ideally
    return {"recall": hit, "ndcg": dcg / idcg, "mrr": rr}


def test_against_the_reference_on_random_rankings():
    rng = np.random.default_rng(7)
    catalogue = [f"t{i}" for i in range(300)]
    rankings, targets = [], []
    for _ in range(2000):
        length = int(rng.integers(1, 101))
        rankings.append([catalogue[j] for j in rng.choice(300, size=length, replace=False)])
        targets.append(catalogue[int(rng.integers(0, 300))])
    ranks = np.array([r.index(t) + 1 if t in r else 0 for r, t in zip(rankings, targets, strict=True)])
    for k in KS:
        expected = {
            m: np.mean([_reference(r, t, k)[m] for r, t in zip(rankings, targets, strict=True)])
            for m in ("recall", "ndcg", "mrr")
        }
        assert abs(recall_at_k(ranks, k).mean() - expected["recall"]) < 1e-9
        assert abs(ndcg_at_k(ranks, k).mean() - expected["ndcg"]) < 1e-9
        assert abs(mrr_at_k(ranks, k).mean() - expected["mrr"]) < 1e-9
        for metric, function in (("recall", recall_at_k), ("ndcg", ndcg_at_k), ("mrr", mrr_at_k)):
            assert np.array_equal(metric_by_rank(metric, k)[ranks], function(ranks, k))


@pytest.mark.parametrize("n", [1, 7, 200])
def test_chance_level_is_the_average_over_every_target_position(n):
    for k in KS:
        for metric, function in (("recall", recall_at_k), ("ndcg", ndcg_at_k), ("mrr", mrr_at_k)):
            brute = function(np.arange(1, n + 1), k).mean()
            assert chance_level(metric, k, n) == pytest.approx(brute, abs=1e-12)
    assert chance_level("recall", 10, 200) == 0.05


def test_coverage():
    first = np.array([1, 3, 101, 50, 101])
    assert [coverage_at_k(first, k) for k in (1, 5, 50, 100)] == [0.2, 0.4, 0.6, 0.6]


def test_popularity_thresholds_cut_at_hand_computed_thirds():
    from mmbench.segments import popularity_thresholds

    # 30 training plays. Sorted: 10 | 6 5 | 4 3 1 1 0 0 0. The first track alone holds 10/30 = 1/3
    # (head); 6 + 5 take the cumulative share from 1/3 to 21/30 >= 2/3 (torso); the rest is tail.
    plays = np.array([0, 4, 10, 1, 5, 0, 3, 6, 1, 0])
    head, torso = popularity_thresholds(plays)
    assert (head, torso) == (10, 5)
    groups = np.select([plays >= head, plays >= torso], ["head", "torso"], "tail")
    assert sorted(plays[groups == "head"]) == [10] and sorted(plays[groups == "torso"]) == [5, 6]
    # Equal counts stay together; nothing played: everything is tail (a track needs a play).
    assert popularity_thresholds(np.array([5, 5, 5, 5, 5, 5])) == (5, 5)
    assert popularity_thresholds(np.zeros(4, dtype=int)) == (1, 1)
    # One track with 9 of 12 plays passes both 1/3 and 2/3: head, an empty torso, the rest tail.
    assert popularity_thresholds(np.array([9, 1, 1, 1])) == (9, 9)
