"""Paired comparison: Holm, the randomization test against exact enumeration, and the CLI."""

import itertools
import json

import numpy as np
import pytest

from conftest import pop_predictions, run_cli
from mmbench.compare import compare_ranks, holm, sign_flip_p


def test_holm_hand_computed():
    # p sorted: 0.01*3 = 0.03, 0.02*2 = 0.04, 0.04*1 -> max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_sign_flip_matches_exact_enumeration():
    diffs = [1.0, 1.0, 0.5, -0.25, 1.0, 0.5]
    observed = sum(diffs)
    flips = [
        sum(s * d for s, d in zip(signs, diffs, strict=True))
        for signs in itertools.product((1, -1), repeat=len(diffs))
    ]
    exact = np.mean([abs(f) >= abs(observed) - 1e-9 for f in flips])
    values, counts = np.unique(np.abs(diffs), return_counts=True)
    rng = np.random.default_rng(0)
    estimate = sign_flip_p(values, counts, observed, 200_000, rng)
    assert estimate == pytest.approx(exact, abs=0.005)


def test_identical_systems_and_a_clear_winner():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 101, 3000)
    same = compare_ranks(a, a.copy(), n_permutations=2000)
    assert all(
        r["difference"] == 0 and r["p_randomization"] == 1.0 and not r["significant"] for r in same["metrics"]
    )
    better = np.where(rng.random(3000) < 0.3, 1, a)
    result = {r["metric"]: r for r in compare_ranks(a, better, n_permutations=2000)["metrics"]}
    assert result["recall@1"]["significant"] and result["recall@1"]["difference"] > 0
    assert result["recall@1"]["ci_low"] > 0
    diff = (better == 1).mean() - (a == 1).mean()
    assert result["recall@1"]["difference"] == pytest.approx(diff)


def test_cli_compare(sample_build, tmp_path):
    from mmbench.evaluator import Evaluator

    pop = tmp_path / "pop.jsonl"
    pop_predictions(sample_build, pop)
    evaluator = Evaluator("next-track", "test", sample_build)
    rng = np.random.default_rng(0)
    random_rows = [
        {
            "instance_id": i,
            "predictions": [
                evaluator.track_ids[j] for j in rng.choice(len(evaluator.track_ids), 100, replace=False)
            ],
        }
        for i in evaluator.instance_ids
    ]
    rand = tmp_path / "random.jsonl"
    rand.write_text("".join(json.dumps(r) + "\n" for r in random_rows))
    result = run_cli(
        "compare",
        str(rand),
        str(pop),
        "--dataset",
        str(sample_build),
        "--json",
        str(tmp_path / "c.json"),
        "--permutations",
        "2000",
    )
    assert result.returncode == 0, result.stderr
    assert "B is significantly better than A" in result.stdout
    data = json.loads((tmp_path / "c.json").read_text())
    ndcg10 = next(r for r in data["metrics"] if r["metric"] == "ndcg@10")
    assert ndcg10["significant"] and ndcg10["difference"] > 0 and ndcg10["p_randomization_holm"] < 0.05
    # The same comparison on one segment group: only its instances, exactly the evaluator's means.
    segment = run_cli(
        "compare", str(rand), str(pop), "--dataset", str(sample_build), "--segment", "target_popularity=head",
        "--json", str(tmp_path / "s.json"), "--permutations", "200",
    )  # fmt: skip
    assert segment.returncode == 0, segment.stderr
    head = json.loads((tmp_path / "s.json").read_text())
    mask = evaluator.segments()["target_popularity"]["head"]
    assert head["n_instances"] == int(mask.sum()) and head["segment"] == "target_popularity=head"
    report = evaluator.report(evaluator.read_file(pop), n_bootstrap=0)
    head_ndcg = next(r for r in head["metrics"] if r["metric"] == "ndcg@10")["b"]
    assert head_ndcg == pytest.approx(report.segments["target_popularity"]["head"]["ndcg@10"]["value"])
    unknown = run_cli("compare", str(rand), str(pop), "--dataset", str(sample_build), "--segment", "cold")
    assert unknown.returncode == 2 and "target_cold=cold" in unknown.stderr
