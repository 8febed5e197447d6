"""Beyond-accuracy measures: hand-computed cases, an independent brute-force implementation,
and the evaluator's numbers on the sample recomputed from the predictions file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import mmbench
from conftest import pop_predictions
from mmbench.beyond_accuracy import (
    intra_list_diversity_at_k,
    novelty_at_k,
    popularity_percentile,
    popularity_percentile_at_k,
    self_information,
)
from mmbench.evaluator import Evaluator


def test_hand_computed_values():
    counts = np.array([0, 1, 3])
    # p = (n + 1) / (4 + 3) = 1/7, 2/7, 4/7
    assert self_information(counts) == pytest.approx([math.log2(7), math.log2(3.5), math.log2(1.75)])
    # sorted [1, 1, 5, 9]: 5 has 2 below and no tie -> 2/3; each 1 has 0 below, one tie -> 0.5/3
    assert popularity_percentile(np.array([5, 1, 1, 9])) == pytest.approx([2 / 3, 0.5 / 3, 0.5 / 3, 1.0])
    top = np.array([[0, 2, -1], [-1, -1, -1], [1, -1, -1]])
    # The empty ranking is left out: ((log2 7 + log2 1.75) / 2 + log2 3.5) / 2.
    expected = ((math.log2(7) + math.log2(1.75)) / 2 + math.log2(3.5)) / 2
    assert novelty_at_k(top, counts, k=3) == pytest.approx(expected)
    assert novelty_at_k(top, counts, k=1) == pytest.approx((math.log2(7) + math.log2(3.5)) / 2)
    # percentiles of [0, 1, 3]: 0, 0.5, 1 -> ((0 + 1) / 2 + 0.5) / 2
    assert popularity_percentile_at_k(top, counts, k=3) == pytest.approx(0.5)
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [np.nan, np.nan]])
    # Pairs of (0, 1, 2): distances 1, 1 - 1/sqrt 2, 1 - 1/sqrt 2; track 3 has no embedding, and
    # the second ranking has only one embedded track, so it is left out.
    lists = np.array([[0, 1, 2, 3], [3, 2, -1, -1]])
    assert intra_list_diversity_at_k(lists, emb, k=4) == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 3)
    assert intra_list_diversity_at_k(np.array([[3, 2, -1, -1]]), emb, k=4) == 0.0


def test_diversity_against_brute_force():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(50, 8))
    emb[rng.random(50) < 0.2] = np.nan
    top = rng.permuted(np.tile(np.arange(50), (40, 1)), axis=1)[:, :12].astype(np.int32)
    top[rng.random((40, 12)) < 0.1] = -1
    per_list = []
    for row in top:
        vectors = [emb[c] for c in row[:10] if c >= 0 and not np.isnan(emb[c]).any()]
        pairs = [
            1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
            for i, a in enumerate(vectors)
            for j, b in enumerate(vectors)
            if i < j
        ]
        if pairs:
            per_list.append(np.mean(pairs))
    assert intra_list_diversity_at_k(top, emb, k=10, chunk=7) == pytest.approx(np.mean(per_list))


def test_evaluator_report_recomputed_from_the_file(sample_build, tmp_path):
    path = pop_predictions(sample_build, tmp_path / "pop.jsonl")
    evaluator = Evaluator("next-track", "test", str(sample_build))
    report = evaluator.eval_file(path, n_bootstrap=0)
    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_pandas().set_index("track_id")
    rankings = [json.loads(line)["predictions"][:10] for line in path.read_text().splitlines()]
    plays = tracks["n_plays_train"]
    total, size = plays.sum(), len(plays)
    novelty = np.mean([np.mean([-math.log2((plays[t] + 1) / (total + size)) for t in r]) for r in rankings])
    assert report.beyond_accuracy["novelty@10"] == pytest.approx(novelty)
    ranks = plays.rank(method="average")  # 1-based mid-ranks
    percentile = np.mean([np.mean([(ranks[t] - 1) / (size - 1) for t in r]) for r in rankings])
    assert report.beyond_accuracy["popularity_percentile@10"] == pytest.approx(percentile)
    audio = mmbench.load("audio-mfcc", "catalog", source=sample_build).to_pandas().set_index("track_id")
    per_list = []
    for r in rankings:
        vectors = [np.asarray(audio.loc[t, "embedding"]) for t in r if t in audio.index]
        d = [
            1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            for i, a in enumerate(vectors)
            for b in vectors[i + 1 :]
        ]
        if d:
            per_list.append(np.mean(d))
    assert report.beyond_accuracy["diversity@10/audio-mfcc"] == pytest.approx(np.mean(per_list), rel=1e-5)
    # The compiled scanner (file) and the Python reader (objects) record the same top 10.
    objects = {
        json.loads(line)["instance_id"]: json.loads(line)["predictions"]
        for line in path.read_text().splitlines()
    }
    assert evaluator.eval(objects, n_bootstrap=0).beyond_accuracy == report.beyond_accuracy
