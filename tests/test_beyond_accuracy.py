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
    standardise,
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
    # Standardised over the three tracks with a vector: dimension 0 (1, 0, 1) has mean 2/3 and
    # std sqrt(2)/3, dimension 1 (0, 2, 1) mean 1 and std sqrt(2/3), so z = (1/sqrt 2, -sqrt 1.5),
    # (-sqrt 2, sqrt 1.5), (1/sqrt 2, 0) with norms sqrt 2, sqrt 3.5, 1/sqrt 2. Cosines: (-1 - 1.5)
    # / sqrt 7, 0.5 / 1, -1 / sqrt 1.75. Track 3 has no embedding, and the second ranking has only
    # one embedded track, so it is left out.
    lists = np.array([[0, 1, 2, 3], [3, 2, -1, -1]])
    expected = ((1 + 2.5 / math.sqrt(7)) + 0.5 + (1 + 2 / math.sqrt(7))) / 3
    assert intra_list_diversity_at_k(lists, emb, k=4) == pytest.approx(expected)
    assert intra_list_diversity_at_k(np.array([[3, 2, -1, -1]]), emb, k=4) == 0.0
    # The raw cosines would give (1 + 2 (1 - 1/sqrt 2)) / 3 = 0.529; standardised, 1.400.
    assert expected == pytest.approx(1.40028, abs=1e-5)


def test_diversity_is_standardised_over_the_catalogue():
    # Centred vectors of unequal spreads; standardised, the mean distance is near 1.
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(30, 6)) * np.array([1.0, 2.0, 0.5, 3.0, 1.0, 1.0])
    emb[[4, 17]] = np.nan
    top = rng.permuted(np.tile(np.arange(30), (20, 1)), axis=1)[:, :10]
    value = intra_list_diversity_at_k(top, emb)
    assert 0.5 < value < 1.5
    # Neither a constant offset added to every vector nor a dimension's unit changes the value.
    assert intra_list_diversity_at_k(top, emb + 1000.0) == pytest.approx(value, rel=1e-9)
    shifted = emb + np.array([50.0, -3.0, 7.0, 0.0, 900.0, 2.0])
    assert intra_list_diversity_at_k(top, shifted * np.array([1, 10, 0.1, 1, 1, 3])) == pytest.approx(value)
    # The mean and std are over the tracks with a vector only, not over the ones recommended: a
    # track outside every ranking still moves the centre.
    moved = emb.copy()
    moved[29] += 50.0
    unused = top[~np.isin(top, 29).any(axis=1)]
    assert len(unused) > 0
    assert intra_list_diversity_at_k(unused, moved) != pytest.approx(intra_list_diversity_at_k(unused, emb))
    # A dimension with zero spread is only centred (0 everywhere), whatever its constant.
    constant = np.hstack([emb, np.full((30, 1), 0.3, dtype=np.float32)])
    constant[[4, 17]] = np.nan
    assert intra_list_diversity_at_k(top, constant) == pytest.approx(value, rel=1e-12)
    assert np.all(standardise(constant)[~np.isnan(constant).any(axis=1), -1] == 0.0)
    # A float32 catalogue matrix (as the evaluator passes it) gives the float64 value.
    assert intra_list_diversity_at_k(top, emb.astype(np.float32)) == pytest.approx(value, rel=1e-5)


def test_diversity_against_brute_force():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(50, 8))
    emb[rng.random(50) < 0.2] = np.nan
    top = rng.permuted(np.tile(np.arange(50), (40, 1)), axis=1)[:, :12].astype(np.int32)
    top[rng.random((40, 12)) < 0.1] = -1
    emb += 4.0  # an offset that standardising removes
    has = ~np.isnan(emb).any(axis=1)
    z = (emb - emb[has].mean(axis=0)) / emb[has].std(axis=0)
    per_list = []
    for row in top:
        vectors = [z[c] for c in row[:10] if c >= 0 and has[c]]
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
    assert audio.index.isin(tracks.index).all()
    raw = np.stack(audio["embedding"].to_numpy()).astype(np.float64)
    spread = raw.std(axis=0)
    z = (raw - raw.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    position = {t: i for i, t in enumerate(audio.index)}
    per_list = []
    for r in rankings:
        vectors = [z[position[t]] for t in r if t in position]
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
