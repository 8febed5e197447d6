"""The non-neural baselines through the CLI: valid predictions, ordering, determinism, errors."""

import json

import numpy as np
import pytest

from conftest import build_fixture, run_cli
from mmbench.baselines.data import Benchmark, instance_inputs, popularity_order
from mmbench.baselines.runner import rank
from mmbench.evaluator import Evaluator


@pytest.fixture(scope="module")
def trained(sample_build, tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    out = {}
    for name in ("pop", "user-repeat", "sknn", "history-lookup", "unseen-first"):
        result = run_cli("baseline", "train", name, "--dataset", str(sample_build), "--out", str(root / name))
        assert result.returncode == 0, result.stderr
        preds = root / f"{name}.jsonl"
        result = run_cli("baseline", "predict", str(root / name), "--out", str(preds))
        assert result.returncode == 0, result.stderr
        out[name] = preds
    return out


def test_list():
    result = run_cli("baseline", "list")
    names = ("pop", "user-repeat", "sknn", "history-lookup", "unseen-first")
    assert result.returncode == 0 and all(n in result.stdout for n in names)


def test_predictions_are_valid_and_repeat_listening_pays(trained, sample_build):
    evaluator = Evaluator("next-track", "test", sample_build)
    scores = {
        name: evaluator.eval_file(path, n_bootstrap=0, segments=False).metrics["ndcg@10"]["value"]
        for name, path in trained.items()
    }
    # Most sample targets were heard before (planted repeat listening): user-repeat beats pop.
    assert scores["user-repeat"] > scores["pop"] and scores["sknn"] > 0
    # pop's NDCG@10 computed here from its definition: the same popularity order for every
    # instance, the session prefix left out (the build's rule), the target's gain 1 / log2(1 + rank).
    data = Benchmark(sample_build)
    order = popularity_order(data)
    instances = data.instances("next-track", "test")
    targets = dict(zip(instances["instance_id"], instances["target_track_id"], strict=True))
    gains = []
    for row in instance_inputs(data, "next-track", "test"):
        prefix = set(row["prefix"])
        top = [t for t in order[: 10 + len(prefix)] if t not in prefix][:10]
        target = targets[row["instance_id"]]
        gains.append(1 / np.log2(2 + top.index(target)) if target in top else 0.0)
    expected = float(np.mean(gains))
    assert scores["pop"] == pytest.approx(expected, abs=1e-12)


def test_predictions_go_into_a_new_folder(trained, tmp_path):
    out = tmp_path / "new" / "deeper" / "pop.jsonl"
    result = run_cli("baseline", "predict", str(trained["pop"].with_suffix("")), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == trained["pop"].read_bytes()


def test_same_inputs_same_bytes(trained, tmp_path):
    again = tmp_path / "sknn.jsonl"
    result = run_cli("baseline", "predict", str(trained["sknn"].with_suffix("")), "--out", str(again))
    assert result.returncode == 0, result.stderr
    assert again.read_bytes() == trained["sknn"].read_bytes()


def test_paper_sampled_ranks_candidates(trained, sample_build, tmp_path):
    out = tmp_path / "p.jsonl"
    result = run_cli(
        "baseline",
        "predict",
        str(trained["user-repeat"].with_suffix("")),
        "--task",
        "paper-sampled",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert (
        run_cli("evaluate", str(out), "--dataset", str(sample_build), "--task", "paper-sampled").returncode
        == 0
    )


@pytest.mark.parametrize(("task", "split"), [("next-track", "test"), ("paper-sampled", "validation")])
def test_instance_inputs_are_each_users_earlier_sessions_then_the_prefix(sample_build, task, split):
    """The rows against a join written here: every session of the user that starts before the
    instance's session, in time order, then the session's plays before the target."""
    import polars as pl

    data = Benchmark(sample_build)
    sessions = data.sessions("train", "validation", "test")
    own = data.instances(task, split).join(sessions, on="session_id")
    history = (
        own.select("instance_id", "user_id", pl.col("start_time").alias("start"))
        .join(sessions, on="user_id")
        .filter(pl.col("start_time") < pl.col("start"))
        .sort("instance_id", "start_time")
        .group_by("instance_id", maintain_order=True)
        .agg(pl.col("track_ids").explode(), pl.col("completion_ratios").explode())
    )
    expected = {r["instance_id"]: r for r in history.to_dicts()}
    rows = instance_inputs(data, task, split)
    assert len(rows) == own.height and [r["instance_id"] for r in rows] == sorted(own["instance_id"])
    by_id = {r["instance_id"]: r for r in own.to_dicts()}
    assert sum(len(r["history"]) for r in rows) > 10 * len(rows)
    for row in rows:
        earlier = expected.get(row["instance_id"], {"track_ids": [], "completion_ratios": []})
        session = by_id[row["instance_id"]]
        assert row["history"] == earlier["track_ids"]
        assert row["history_completion"] == earlier["completion_ratios"]
        assert row["prefix"] == session["track_ids"][: session["position"]]
        assert row["prefix_completion"] == session["completion_ratios"][: session["position"]]
        assert row["start"] == session["start_time"] and row["candidates"] == session["candidates"]
    assert rows[-1] == rows[len(rows) - 1] and rows[1:3] == [rows[1], rows[2]]


def test_rank_backs_off_to_popularity():
    order = ["a", "b", "c", "d"]
    pop_rank = {t: i for i, t in enumerate(order)}
    assert rank({"c": 2.0, "d": 2.0, "zz": 5.0}, pop_rank, order, None, k=3) == ["c", "d", "a"]
    assert rank({"d": 1.0}, pop_rank, order, ["b", "d", "c"], k=2) == ["d", "b"]
    # The prefix left out: neither scored nor taken from the back-off.
    assert rank({"c": 2.0, "d": 1.0}, pop_rank, order, None, k=3, excluded=frozenset("ca")) == ["d", "b"]


def _sessions(sample_build):
    import polars as pl

    return pl.concat(
        pl.read_parquet(sample_build / "data" / "sessions" / f"{s}-00000-of-00001.parquet")
        for s in ("train", "validation", "test")
    )


def _next_track_instances(sample_build):
    import polars as pl

    instances = pl.read_parquet(sample_build / "data" / "instances" / "test-00000-of-00001.parquet")
    return instances.filter(pl.col("task") == "next-track")


def test_no_baseline_ranks_the_prefix_where_the_target_cannot_repeat_it(trained, sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    assert report["protocol"]["target_can_repeat_prefix"] is False
    assert report["protocol"]["next_track_targets_in_prefix"] == {"validation": 0, "test": 0}
    assert "10th distinct track" in report["protocol"]["next_track_target"]
    info = run_cli("info", str(sample_build))
    assert "can it repeat a prefix track? no" in " ".join(info.stdout.split())  # rich wraps lines
    sessions = _sessions(sample_build)
    tracks = dict(zip(sessions["session_id"], sessions["track_ids"], strict=True))
    prefix = {
        row["instance_id"]: set(tracks[row["session_id"]][: row["position"]])
        for row in _next_track_instances(sample_build).iter_rows(named=True)
    }
    evaluator = Evaluator("next-track", "test", sample_build)
    for name, path in trained.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(not prefix[r["instance_id"]] & set(r["predictions"]) for r in rows), name
        assert evaluator.eval_file(path, n_bootstrap=0, segments=False).warnings == []
    # A ranking that puts the prefix first is warned about: how many rankings, how many slots.
    first = {
        r["instance_id"]: r["predictions"] for r in map(json.loads, trained["pop"].read_text().splitlines())
    }
    ranked = {i: (sorted(p) + [t for t in first[i] if t not in p])[:100] for i, p in prefix.items()}
    warnings = evaluator.eval(ranked, n_bootstrap=0, segments=False).warnings
    n = len(prefix)
    assert (
        len(warnings) == 1 and f"{n:,} of {n:,} rankings" in warnings[0] and f"({9 * n:,} of" in warnings[0]
    )


def test_probes_do_what_they_say(trained, sample_build, tmp_path):
    import polars as pl

    sessions = _sessions(sample_build).explode("track_ids", "timestamps")
    first_play = dict(
        sessions.group_by("track_ids").agg(pl.col("timestamps").min()).iter_rows()
    )  # track -> its first play, any user
    from datetime import UTC, datetime

    cutoff = json.loads((sample_build / "build_report.json").read_text())["stages"]["split"]["test_cutoff"]
    period = datetime.fromtimestamp(cutoff, UTC)
    instances = {r["instance_id"]: r for r in _next_track_instances(sample_build).iter_rows(named=True)}
    unseen_targets = 0
    for line in trained["unseen-first"].read_text().splitlines():
        row = json.loads(line)
        unseen = [first_play[t] >= period for t in row["predictions"]]
        # The tracks nobody played before the test period come first, then popularity.
        assert unseen == sorted(unseen, reverse=True) and unseen[0]
        unseen_targets += first_play[instances[row["instance_id"]]["target_track_id"]] >= period
    assert unseen_targets > 0  # the catalogue gives some targets away
    # history-lookup on paper-sampled: every heard target is the only heard candidate: rank 1.
    out = tmp_path / "h.jsonl"
    result = run_cli(
        "baseline", "predict", str(trained["history-lookup"].with_suffix("")), "--task", "paper-sampled", "--out", str(out)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = Evaluator("paper-sampled", "test", sample_build).eval_file(out, n_bootstrap=0)
    heard = report.segments["target_heard_before"]["true"]
    assert heard["n"] > 0 and heard["recall@1"]["value"] == 1.0


def test_a_build_whose_target_can_repeat_the_prefix_says_so(fixture_raw, tmp_path):
    out = tmp_path / "keeps-repeats"
    build = build_fixture(fixture_raw, out)  # every filter off: repeats within a session stay
    assert build.returncode == 0, build.stderr
    report = json.loads((out / "build_report.json").read_text())
    assert report["protocol"]["target_can_repeat_prefix"] is True
    assert "can it repeat a prefix track? yes" in " ".join(run_cli("info", str(out)).stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "transformer9000", "--out", "x"], "unknown baseline 'transformer9000'"),
        (
            ["train", "sknn", "--set", "neighbours=5", "--out", "x"],
            "unknown sknn hyperparameter key 'neighbours'",
        ),
        (["train", "sknn", "--set", "k=many", "--out", "x"], "k expects a int"),
    ],
)
def test_bad_input(args, message, sample_build, tmp_path):
    result = run_cli("baseline", *args[:-1], str(tmp_path / args[-1]), "--dataset", str(sample_build))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, (
        result.stderr
    )


def test_checkpoint_from_another_dataset(trained, fixture_raw, tmp_path):
    other = tmp_path / "other"
    build = build_fixture(fixture_raw, other)
    assert build.returncode == 0, build.stderr
    result = run_cli(
        "baseline",
        "predict",
        str(trained["pop"].with_suffix("")),
        "--dataset",
        str(other),
        "--out",
        str(tmp_path / "p.jsonl"),
    )
    assert result.returncode == 2 and "other track ids" in result.stderr
    config = json.loads((trained["pop"].with_suffix("") / "config.json").read_text())
    assert config["model"] == "pop" and len(config["catalogue_digest"]) == 64


def test_a_build_selecting_before_the_test_cutoff_keeps_the_cutoffs_and_says_so(fixture_raw, tmp_path):
    whole, before = tmp_path / "whole", tmp_path / "before"
    assert build_fixture(fixture_raw, whole).returncode == 0
    build = build_fixture(fixture_raw, before, "split.select_before_test_cutoff=true")
    assert build.returncode == 0, build.stderr
    reports = [json.loads((f / "build_report.json").read_text()) for f in (whole, before)]
    # The second pass selects at the first pass's cutoffs and the split keeps them.
    cutoffs = reports[1]["stages"]["filter"]["cutoffs"]
    assert (
        cutoffs["test"]
        == reports[1]["stages"]["split"]["test_cutoff"]
        == reports[0]["stages"]["split"]["test_cutoff"]
    )
    assert cutoffs["validation"] == reports[1]["stages"]["split"]["validation_cutoff"]
    card = (before / "README.md").read_text()
    assert "Selection before the test cutoff" in card and "Selection uses the whole period" not in card
    assert "Selection uses the whole period" in (whole / "README.md").read_text()
