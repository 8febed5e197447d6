"""The non-neural baselines through the CLI: valid predictions, ordering, determinism, errors."""

import json

import pytest

from conftest import build_fixture, run_cli
from mmbench.baselines.runner import rank
from mmbench.evaluator import Evaluator


@pytest.fixture(scope="module")
def trained(sample_build, tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    out = {}
    for name in ("pop", "user-repeat", "sknn"):
        result = run_cli("baseline", "train", name, "--dataset", str(sample_build), "--out", str(root / name))
        assert result.returncode == 0, result.stderr
        preds = root / f"{name}.jsonl"
        result = run_cli("baseline", "predict", str(root / name), "--out", str(preds))
        assert result.returncode == 0, result.stderr
        out[name] = preds
    return out


def test_list():
    result = run_cli("baseline", "list")
    assert result.returncode == 0 and all(n in result.stdout for n in ("pop", "user-repeat", "sknn"))


def test_predictions_are_valid_and_repeat_listening_pays(trained, sample_build):
    evaluator = Evaluator("next-track", "test", sample_build)
    scores = {
        name: evaluator.eval_file(path, n_bootstrap=0, segments=False).metrics["ndcg@10"]["value"]
        for name, path in trained.items()
    }
    # Most sample targets were heard before (planted repeat listening): user-repeat beats pop.
    assert (
        scores["user-repeat"]
        > scores["pop"]
        > 10
        * evaluator.report(evaluator.read_file(trained["pop"]), n_bootstrap=0, segments=False).chance[
            "ndcg@10"
        ]
    )
    assert scores["sknn"] > 0


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


def test_rank_backs_off_to_popularity():
    order = ["a", "b", "c", "d"]
    pop_rank = {t: i for i, t in enumerate(order)}
    assert rank({"c": 2.0, "d": 2.0, "zz": 5.0}, pop_rank, order, None, k=3) == ["c", "d", "a"]
    assert rank({"d": 1.0}, pop_rank, order, ["b", "d", "c"], k=2) == ["d", "b"]


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
    assert config["model"] == "pop" and len(config["dataset_fingerprint"]) == 64
