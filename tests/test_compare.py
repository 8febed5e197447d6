"""Paired comparison: Holm, the randomization test against exact enumeration, and the CLI."""

import itertools
import json

import numpy as np
import pytest
from scipy import stats

from conftest import pop_predictions, run_cli
from mmbench.compare import compare_ranks, holm, permutations_needed, sign_flip_p


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
    # The values are multiples of 0.25, so the test is exact; forced to Monte Carlo, it estimates.
    assert sign_flip_p(values, counts, observed, 10, rng) == pytest.approx(exact, rel=1e-12)
    estimate = sign_flip_p(values, counts, observed, 200_000, rng, exact_budget=0)
    assert estimate == pytest.approx(exact, abs=0.005)


def test_exact_sign_flip_is_the_binomial_test():
    # Recall with one run each: every nonzero difference is +-1, so the randomization test is
    # the two-sided sign test, and its exact p has no 1 / (1 + R) floor.
    rng = np.random.default_rng(4)
    a = rng.integers(0, 30, 400)
    b = np.where(rng.random(400) < 0.15, 1, a)
    row = next(
        r for r in compare_ranks(a, b, ks=[10], n_permutations=100)["metrics"] if r["metric"] == "recall@10"
    )
    hit_a, hit_b = (a >= 1) & (a <= 10), (b >= 1) & (b <= 10)
    wins, losses = int(np.sum(hit_b & ~hit_a)), int(np.sum(hit_a & ~hit_b))
    assert row["p_randomization"] == pytest.approx(stats.binomtest(wins, wins + losses).pvalue, rel=1e-9)
    assert row["p_randomization"] < 1e-6
    # Several runs put recall's differences on a grid of 1/6: exact against enumeration.
    a, b = rng.integers(0, 4, (3, 11)), rng.integers(0, 3, (2, 11))
    diffs = ((b >= 1) & (b <= 2)).mean(axis=0) - ((a >= 1) & (a <= 2)).mean(axis=0)
    flips = np.array(list(itertools.product((1, -1), repeat=11))) @ diffs
    exact = np.mean(np.abs(flips) >= abs(diffs.sum()) - 1e-9)
    row = next(
        r for r in compare_ranks(a, b, ks=[2], n_permutations=10)["metrics"] if r["metric"] == "recall@2"
    )
    assert row["p_randomization"] == pytest.approx(exact, rel=1e-9)
    # MRR@4 with one run each: differences 1/r - 1/s on the grid of 1/12, several of them.
    a, b = rng.integers(0, 6, 13), rng.integers(0, 3, 13)
    value = np.array([0, 1, 1 / 2, 1 / 3, 1 / 4, 0])
    diffs = value[b] - value[a]
    flips = np.array(list(itertools.product((1, -1), repeat=13))) @ diffs
    exact = np.mean(np.abs(flips) >= abs(diffs.sum()) - 1e-9)
    assert len(np.unique(np.abs(diffs[diffs != 0]).round(12))) >= 3
    row = next(r for r in compare_ranks(a, b, ks=[4], n_permutations=10)["metrics"] if r["metric"] == "mrr@4")
    assert row["p_randomization"] == pytest.approx(exact, rel=1e-9)


def test_holm_over_distinct_statistics():
    rng = np.random.default_rng(5)
    # No target below rank 20: @20, @50 and @100 of each metric are the same statistic, and
    # recall@1 = ndcg@1 = mrr@1 always, so the 18 metrics are 18 - 3 * 2 - 2 = 10 statistics.
    a = np.where(rng.random(800) < 0.4, 0, rng.integers(1, 21, 800))
    b = np.where(rng.random(800) < 0.1, rng.integers(1, 6, 800), a)
    result = compare_ranks(a, b, n_permutations=500)
    rows = {r["metric"]: r for r in result["metrics"]}
    assert result["holm_family"] == 10 and len(rows) == 18
    same = [("recall@1", "ndcg@1", "mrr@1")] + [
        (f"{m}@20", f"{m}@50", f"{m}@100") for m in ("recall", "ndcg", "mrr")
    ]
    for group in same:
        for key in ("p_randomization", "p_randomization_holm", "p_t_test_holm", "difference"):
            assert len({rows[name][key] for name in group}) == 1, (group, key)
    # Holm over the 10 distinct p-values, each metric given its statistic's adjusted value.
    distinct = {}
    for name, row in rows.items():
        distinct.setdefault(round(row["difference"], 12), []).append(name)
    assert len(distinct) == 10
    names = [group[0] for group in distinct.values()]
    adjusted = dict(zip(names, holm([rows[n]["p_randomization"] for n in names]), strict=True))
    for group in distinct.values():
        for name in group:
            assert rows[name]["p_randomization_holm"] == pytest.approx(adjusted[group[0]])
    # The same comparison with all 18 counted would be more conservative.
    assert max(holm([r["p_randomization"] for r in rows.values()])) >= max(adjusted.values())


def test_permutations_raised_so_the_floor_never_decides():
    # 3 metrics x 12 cut-offs on ranks 0..12: 34 distinct statistics, B wins clearly on all.
    rng = np.random.default_rng(6)
    a = rng.integers(0, 13, 2000)
    b = np.where(rng.random(2000) < 0.5, 1, a)
    alpha = 0.05
    result = compare_ranks(a, b, ks=list(range(1, 13)), n_bootstrap=0, n_permutations=100, alpha=alpha)
    m, draws = result["holm_family"], result["n_permutations"]
    assert m == 34 and result["n_permutations_requested"] == 100
    assert draws == permutations_needed(m, alpha, 100) >= 20 * m / alpha
    # 100 draws would have left the smallest Holm-adjusted p at 34 / 101, above alpha.
    assert m / (1 + draws) < alpha / 10 < alpha < m / 101
    rows = {r["metric"]: r for r in result["metrics"]}
    # NDCG's differences have no common step: Monte Carlo, every draw less extreme than the data.
    floor = [rows[f"ndcg@{k}"] for k in range(2, 13)]
    assert all(r["p_randomization"] == 1 / (1 + draws) for r in floor)
    assert all(r["p_randomization_holm"] < alpha / 10 and r["significant"] for r in floor)
    # Recall's are all 1 (MRR@3's multiples of 1/6): exact, far below any floor.
    assert rows["recall@5"]["p_randomization"] < 1e-12 and rows["mrr@3"]["p_randomization"] < 1e-12
    assert permutations_needed(10, 0.05) == 10_000 and permutations_needed(18, 0.01) == 36_000
    with pytest.raises(ValueError, match="alpha"):
        compare_ranks(a, b, alpha=0.0)


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


def test_runs_are_averaged_per_instance_hand_computed():
    # Recall@1 per instance, mean over runs: A (1,3)->0.5, (0,1)->0.5, (2,0)->0; B 0.5 each.
    a = np.array([[1, 0, 2], [3, 1, 0]])
    b = np.array([[1, 1, 1], [2, 2, 2]])
    result = {r["metric"]: r for r in compare_ranks(a, b, ks=[1, 10], n_permutations=100)["metrics"]}
    assert result["recall@1"]["a"] == pytest.approx(1 / 3)
    assert result["recall@1"]["b"] == pytest.approx(0.5)
    assert result["recall@1"]["difference"] == pytest.approx(1 / 6)
    ndcg = {r: 1 / np.log2(r + 1) if r else 0.0 for r in range(4)}
    expected = np.mean(
        [(ndcg[1] + ndcg[2]) / 2 - (ndcg[x] + ndcg[y]) / 2 for x, y in ((1, 3), (0, 1), (2, 0))]
    )
    assert result["ndcg@10"]["difference"] == pytest.approx(expected)


def test_runs_sign_flip_matches_exact_enumeration():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, (3, 9))
    b = rng.integers(0, 4, (2, 9))
    value = {r: 1 / np.log2(r + 1) if 0 < r <= 10 else 0.0 for r in range(101)}
    diffs = np.array(
        [np.mean([value[r] for r in b[:, i]]) - np.mean([value[r] for r in a[:, i]]) for i in range(9)]
    )
    flips = np.array(list(itertools.product((1, -1), repeat=9))) @ diffs
    exact = np.mean(np.abs(flips) >= abs(diffs.sum()) - 1e-9)
    row = next(
        r for r in compare_ranks(a, b, ks=[10], n_permutations=200_000)["metrics"] if r["metric"] == "ndcg@10"
    )
    assert row["difference"] == pytest.approx(diffs.mean())
    assert row["p_randomization"] == pytest.approx(exact, abs=0.005)


def test_repeated_runs_give_the_single_run_result():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 101, 500), rng.integers(0, 101, 500)
    single = compare_ranks(a, b, n_permutations=500)
    repeated = compare_ranks(np.stack([a, a, a]), np.stack([b, b]), n_permutations=500)
    for got, expected in zip(repeated["metrics"], single["metrics"], strict=True):
        assert got == pytest.approx(expected, abs=1e-12)
    assert (repeated["runs_a"], repeated["runs_b"], single["runs_a"]) == (3, 2, 1)
    with pytest.raises(ValueError, match="same n instances"):
        compare_ranks(a, b[:-1])


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
    assert unknown.returncode == 2 and "target_cold=true" in unknown.stderr
    # The names on the command line are the instances' label columns and their values.
    heard = run_cli(
        "compare", str(rand), str(pop), "--dataset", str(sample_build), "--segment", "target_heard_before=true",
        "--json", str(tmp_path / "h.json"), "--permutations", "200",
    )  # fmt: skip
    assert heard.returncode == 0, heard.stderr
    assert json.loads((tmp_path / "h.json").read_text())["n_instances"] == int(
        evaluator.segments()["target_heard_before"]["true"].sum()
    )
    # Several groups: their intersection (a cold target is always tail, never head).
    both = run_cli(
        "compare", str(rand), str(pop), "--dataset", str(sample_build), "--segment", "target_popularity=tail",
        "--segment", "target_cold=false", "--json", str(tmp_path / "tw.json"), "--permutations", "200",
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    segments = evaluator.segments()
    tail_warm = segments["target_popularity"]["tail"] & segments["target_cold"]["false"]
    data_tw = json.loads((tmp_path / "tw.json").read_text())
    assert data_tw["n_instances"] == int(tail_warm.sum()) > 0
    assert data_tw["segment"] == "target_popularity=tail & target_cold=false"
    assert segments["target_cold"]["true"].any()
    never = run_cli(
        "compare", str(rand), str(pop), "--dataset", str(sample_build),
        "--segment", "target_cold=true", "--segment", "target_popularity=head",
    )  # fmt: skip
    assert never.returncode == 2 and "no instance is in all of these groups" in never.stderr
    # A folder of runs: two copies of pop score as pop, the mean of random and pop in between.
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "seed0.jsonl").write_bytes(pop.read_bytes())
    (runs / "seed1.jsonl").write_bytes(rand.read_bytes())
    (runs / "notes.txt").write_text("not a run")
    mixed = run_cli("compare", str(rand), str(runs), "--dataset", str(sample_build), "--k", "10",
                    "--json", str(tmp_path / "m.json"), "--permutations", "200")  # fmt: skip
    assert mixed.returncode == 0, mixed.stderr
    assert "mean of 2 runs" in " ".join(mixed.stdout.split())  # the title may wrap anywhere between words
    data_m = json.loads((tmp_path / "m.json").read_text())
    assert data_m["runs_b"] == 2
    assert [p.rsplit("/", 1)[1] for p in data_m["files_b"]] == ["seed0.jsonl", "seed1.jsonl"]
    mixed_ndcg = next(r for r in data_m["metrics"] if r["metric"] == "ndcg@10")
    assert mixed_ndcg["b"] == pytest.approx((ndcg10["a"] + ndcg10["b"]) / 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_cli("compare", str(rand), str(empty), "--dataset", str(sample_build))
    assert none.returncode == 2 and "no predictions file" in none.stderr and "Traceback" not in none.stderr
