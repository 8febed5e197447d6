"""`mmbench reproduce` on the sample: the plan with its estimates, a run of the cheap baselines
to the results table and leaderboard entries, a resume that reruns only what is missing, and
bad arguments."""

import json
import shutil

import pytest

from conftest import run_cli
from mmbench.reproduce import Sizes, Step, work_done

MODELS = "pop,user-repeat,history-lookup,unseen-first"


@pytest.fixture(scope="module")
def reproduced(sample_build, tmp_path_factory):
    """A reproduce folder whose build step is the session's sample build (its checkpoint is the
    build report), run with the memory-based baseline and the probes."""
    out = tmp_path_factory.mktemp("reproduce") / "out"
    shutil.copytree(sample_build, out / "dataset", ignore=shutil.ignore_patterns(".build"))
    result = run_cli("reproduce", "--sample", "--out", str(out), "--models", MODELS)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_the_plan_estimates_the_build_first_and_says_what_it_skips(tmp_path):
    result = run_cli("reproduce", "--sample", "--out", str(tmp_path / "out"), "--plan", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [line for line in lines if "  to run" in line and not line.startswith("to run")]
    names = [line.split("  ")[0] for line in steps]
    assert names[0] == "build" and "train sasrec-seed0" in names and "predict sknn paper-sampled" in names
    assert (
        "compare sasrec-mm vs sasrec next-track" in names
        and "compare pop vs history-lookup paper-sampled" in names
    )
    trains = [name for name in names if name.startswith("train ")]
    assert trains[:5] == [
        "train history-lookup",
        "train unseen-first",
        "train pop",
        "train user-repeat",
        "train sknn",
    ]
    assert "~" in steps[0] and " G " in steps[0]  # the build's estimate, from the input's size
    assert all(line.endswith("(estimated once the build is done)") for line in steps[1:])
    assert any(line.startswith("e4srec") and "skipped: needs a GPU" in line for line in lines)
    assert any(line.startswith("zeroshot") and "skipped: needs --endpoint" in line for line in lines)
    assert not (tmp_path / "out" / "dataset").exists()  # a plan writes nothing
    # The zero-shot ranker reranks the reference's shortlist: the reference is trained first.
    result = run_cli("reproduce", "--sample", "--out", str(tmp_path / "out"), "--plan", "--models", "zeroshot",
                     "--endpoint", "http://127.0.0.1:9/v1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    trains = [line.split("  ")[0] for line in result.stdout.splitlines() if line.startswith("train ")]
    assert trains == ["train sasrec-seed0", "train zeroshot"]


@pytest.mark.slow
def test_reproduce_writes_the_results_costs_and_entries(reproduced):
    out, stdout = reproduced
    results = (out / "results.md").read_text()
    for task in ("next-track", "paper-sampled"):
        section = results.split(f"## {task}")[1].split("## ")[0]
        for model in MODELS.split(","):
            report = json.loads((out / "reports" / task / f"{model}-seed0.json").read_text())
            assert f"| `{model}` | 1 | {report['metrics']['ndcg@10']['value']:.4f} [" in section
        assert "| `pop` vs `history-lookup` |" in section and "| `pop` vs `unseen-first` |" in section
        assert "vs `pop`" not in section  # the probes are compared with models, not the reverse
    costs = json.loads((out / "costs.json").read_text())
    assert "build" not in costs  # the build was already there
    assert costs["train pop"]["kind"] == "train-memory" and costs["train pop"]["peak_gib"] > 0.1
    entries = sorted(p.name for p in (out / "leaderboard" / "submissions").iterdir())
    expected = {f"sample-{m}-{t}" for m in MODELS.split(",") for t in ("next-track", "paper-sampled")}
    # user-repeat's paper-sampled ranking is the history-lookup probe's file: the leaderboard
    # refuses it as a copy, and the results say so instead of the run failing
    assert entries == sorted(expected - {"sample-user-repeat-paper-sampled"})
    refused = results.split("## Leaderboard entries not written")[1].split("## ")[0].strip().splitlines()
    assert len(refused) == 1 and refused[0].startswith("- `sample-user-repeat-paper-sampled`: ")
    assert refused[0].endswith(
        "run 1 gives the target the same rank as sample-history-lookup-paper-sampled/seed0.jsonl.gz "
        "on 100.0% of the instances: a copy of an existing entry"
    )
    assert "entry sample-user-repeat-paper-sampled not written" in stdout
    check = run_cli(
        "leaderboard", "validate", str(out / "leaderboard"), "--recompute", "--dataset", str(out / "dataset")
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
def test_a_second_run_reruns_only_the_missing_steps(reproduced):
    out, _ = reproduced
    before = (out / "reports" / "next-track" / "pop-seed0.json").read_bytes()
    (out / "reports" / "next-track" / "pop-seed0.json").unlink()
    (out / "compare" / "paper-sampled" / "pop-vs-unseen-first.json").unlink()
    result = run_cli("reproduce", "--sample", "--out", str(out), "--models", MODELS)
    assert result.returncode == 0, result.stderr
    ran = [line.split("] ")[1].split(" (~")[0] for line in result.stdout.splitlines() if line.startswith("[")]
    assert ran == ["evaluate pop next-track", "compare pop vs unseen-first paper-sampled"]
    assert (out / "reports" / "next-track" / "pop-seed0.json").read_bytes() == before
    plan = result.stdout.split("\n[")[0]
    assert "train pop" in plan and plan.count("to run") == 3  # two steps, and the total
    # After the build every step has an estimate (a model not run yet: sasrec).
    more = run_cli("reproduce", "--sample", "--out", str(out), "--models", f"{MODELS},sasrec", "--plan")
    assert more.returncode == 0, more.stderr
    train = next(line for line in more.stdout.splitlines() if line.startswith("train sasrec-seed0"))
    assert "~" in train and " G " in train and train.endswith("to run")
    other = run_cli("reproduce", "--sample", "--out", str(out), "--models", MODELS, "--seeds", "2")
    assert other.returncode == 2 and "was made with --seeds 1, not 2" in other.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "pop,nosuch"], "--models: unknown baseline(s) nosuch"),
        (["--set-model", "sasrec:epochs"], "--set-model 'sasrec:epochs': expected MODEL:KEY=VALUE"),
        (["--seeds", "0"], "--seeds: expected at least 1, got 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    result = run_cli("reproduce", "--sample", "--out", str(tmp_path / "out"), "--plan", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_training_that_stopped_early_records_the_epochs_it_ran(tmp_path):
    # Ten epochs allowed, three run: the rate per epoch that later estimates use is the time over
    # three epochs, not over ten.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"training": {"epochs": [{"epoch": e} for e in (1, 2, 3)]}}))
    step = Step("train sasrec-seed0", "train-neural", [], config, epochs=10)
    sizes = Sizes(plays=1000, tracks=500, validation=40)
    assert work_done(step, sizes) == 3 * (1000 + 40 * 500 / 100)
    assert step.work(sizes) == 10 * (1000 + 40 * 500 / 100)  # the estimate before it ran: the bound
    memory = Step("train pop", "train-memory", [], config)
    assert work_done(memory, sizes) == 1000
