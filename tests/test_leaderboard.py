"""The leaderboard: `mmbench submit`, `mmbench leaderboard validate [--recompute]` and `build`,
on the sample with real baselines' predictions; the page driven in Debian's chromium."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import entry_metadata as metadata
from conftest import run_cli, write_meta
from mmbench.digests import sha256_bytes
from mmbench.errors import MmbenchError
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.metadata import read_metadata
from mmbench.leaderboard.results import RESULTS, dumps_results, results_digest
from mmbench.metrics import ndcg_at_k

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def results(board: Path, slug: str) -> dict:
    return json.loads((board / "submissions" / slug / RESULTS).read_text())


def copy_board(board: Path, tmp_path: Path) -> Path:
    target = tmp_path / "leaderboard"
    shutil.copytree(board, target)
    return target


def test_submission_folder_and_numbers(board, sample_build, predictions, tmp_path):
    folder = board / "submissions" / "pop"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.yaml", RESULTS, "seed0.jsonl.gz"]
    assert gzip.decompress((folder / "seed0.jsonl.gz").read_bytes()) == predictions["pop"].read_bytes()
    pop = results(board, "pop")
    # One run: the evaluator's own report, number for number.
    report = run_cli(
        "evaluate",
        str(predictions["pop"]),
        "--dataset",
        str(sample_build),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert report.returncode == 0, report.stderr
    evaluated = json.loads((tmp_path / "r.json").read_text())
    assert pop["mean"]["metrics"] == evaluated["metrics"] == pop["runs"][0]["metrics"]
    assert pop["mean"]["segments"] == evaluated["segments"]
    assert pop["chance"] == evaluated["chance"] and pop["dataset_fingerprint"] == evaluated["fingerprint"]
    assert pop["runs"][0]["beyond_accuracy"] == evaluated["beyond_accuracy"]
    # Two runs: an instance's NDCG@10 is its mean over the runs; recomputed here from the files.
    mixed = results(board, "mixed")
    targets = {}
    import mmbench

    for row in mmbench.load("instances", "test", source=sample_build):
        if row["task"] == "next-track":
            targets[row["instance_id"]] = row["target_track_id"]
    per_run = []
    for path in (predictions["history-lookup"], predictions["unseen-first"]):
        ranks = {}
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            t = targets[obj["instance_id"]]
            ranks[obj["instance_id"]] = obj["predictions"].index(t) + 1 if t in obj["predictions"] else 0
        per_run.append(ndcg_at_k(np.array([ranks[i] for i in sorted(targets)]), 10))
    mean = mixed["mean"]["metrics"]["ndcg@10"]
    assert mean["value"] == pytest.approx(np.mean(np.mean(per_run, axis=0)), abs=1e-12)
    assert mean["ci_low"] < mean["value"] < mean["ci_high"]
    assert [p["file"] for p in mixed["predictions"]] == ["seed0.jsonl.gz", "seed1.jsonl.gz"]
    assert mixed["results_sha256"] == results_digest(mixed)
    assert mixed["metadata_sha256"] == sha256_bytes(
        (board / "submissions" / "mixed" / "metadata.yaml").read_bytes()
    )


def test_same_submission_gives_the_same_bytes(board, sample_build, predictions, tmp_path):
    meta = board / "submissions" / "pop" / "metadata.yaml"
    result = run_cli(
        "submit", str(predictions["pop"]), "--meta", str(meta), "--dataset", str(sample_build),
        "--leaderboard", str(tmp_path / "other"), "--slug", "pop",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("seed0.jsonl.gz", RESULTS, "metadata.yaml"):
        assert (tmp_path / "other" / "submissions" / "pop" / name).read_bytes() == (
            board / "submissions" / "pop" / name
        ).read_bytes()


def test_validate_and_recompute_pass(board, sample_build):
    result = run_cli("leaderboard", "validate", str(board))
    assert result.returncode == 0, result.stderr
    assert "3 submission(s) read, 0 problem(s)" in result.stdout
    result = run_cli(
        "leaderboard", "validate", str(board), "--recompute", "--dataset", str(sample_build), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "3 recomputed from their predictions, 0 problem(s)" in result.stdout


def test_an_edited_number_is_caught(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    path = copy / "submissions" / "repeat" / RESULTS
    data = json.loads(path.read_text())
    data["mean"]["metrics"]["ndcg@10"]["value"] = 0.5
    path.write_text(dumps_results(data))
    result = run_cli("leaderboard", "validate", str(copy))
    assert result.returncode == 1
    assert "FAIL repeat: results.json: field results_sha256 does not match" in result.stderr
    # Someone careful also fixes the digest: only recomputing from the predictions catches it.
    data["results_sha256"] = results_digest(data)
    path.write_text(dumps_results(data))
    assert run_cli("leaderboard", "validate", str(copy)).returncode == 0
    result = run_cli(
        "leaderboard", "validate", str(copy), "--recompute", "--dataset", str(sample_build), "--quiet"
    )
    assert result.returncode == 1
    assert (
        "FAIL repeat: results.json field mean.metrics.ndcg@10.value: recorded 0.5, recomputed 0.0950"
        in result.stderr
    )


def test_an_edited_predictions_file_is_caught(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    path = copy / "submissions" / "pop" / "seed0.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    first["predictions"] = first["predictions"][::-1]
    lines[0] = json.dumps(first)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = run_cli(
        "leaderboard", "validate", str(copy), "--recompute", "--dataset", str(sample_build), "--quiet"
    )
    assert result.returncode == 1
    assert (
        "FAIL pop: seed0.jsonl.gz: its SHA-256 differs from results.json field predictions[0].sha256"
        in result.stderr
    )


def test_duplicates_and_fingerprints_are_rejected(board, sample_build, predictions, tmp_path):
    meta = board / "submissions" / "pop" / "metadata.yaml"
    again = run_cli(
        "submit", str(predictions["pop"]), "--meta", str(meta), "--dataset", str(sample_build),
        "--leaderboard", str(board), "--slug", "pop",
    )  # fmt: skip
    assert again.returncode == 2 and "error: slug 'pop' already exists" in again.stderr
    twin = run_cli(
        "submit", str(predictions["pop"]), "--meta", str(meta), "--dataset", str(sample_build),
        "--leaderboard", str(board), "--slug", "pop-again",
    )  # fmt: skip
    assert twin.returncode == 2
    assert "gives the target the same rank as pop/seed0.jsonl.gz on 100.0% of the instances" in twin.stderr
    assert not (board / "submissions" / "pop-again").exists()
    wrong = write_meta(tmp_path / "wrong.yaml", metadata("f" * 64))
    result = run_cli("submit", str(predictions["pop"]), "--meta", str(wrong), "--dataset", str(sample_build), "--leaderboard", str(tmp_path / "lb"))  # fmt: skip
    assert result.returncode == 2 and f"dataset_fingerprint {'f' * 64} but the dataset" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "lb" / "submissions").exists()
    # A copied folder is a duplicate; an entry whose metadata names another build fails --dataset.
    copy = copy_board(board, tmp_path)
    shutil.copytree(copy / "submissions" / "pop", copy / "submissions" / "pop-copy")
    result = run_cli("leaderboard", "validate", str(copy))
    assert result.returncode == 1
    assert "FAIL pop-copy: results.json: field slug is 'pop' but the folder is 'pop-copy'" in result.stderr
    shutil.rmtree(copy / "submissions" / "pop-copy")
    meta_path = copy / "submissions" / "repeat" / "metadata.yaml"
    meta_path.write_text(meta_path.read_text().replace(dataset_fingerprint(sample_build), "e" * 64))
    path = copy / "submissions" / "repeat" / RESULTS
    data = json.loads(path.read_text())
    data["dataset_fingerprint"] = "e" * 64
    data["metadata_sha256"] = sha256_bytes(meta_path.read_bytes())
    data["results_sha256"] = results_digest(data)
    path.write_text(dumps_results(data))
    result = run_cli("leaderboard", "validate", str(copy), "--dataset", str(sample_build))
    assert result.returncode == 1
    assert (
        f"FAIL repeat: metadata.yaml: dataset_fingerprint {'e' * 64} is not the fingerprint of the sample build given"
        in result.stderr
    )


def test_metadata_errors_name_the_field(tmp_path):
    cases = [
        (metadata("a" * 64, colour="blue"), "colour: Extra inputs are not permitted"),
        ({k: v for k, v in metadata("a" * 64).items() if k != "code"}, "code: Field required"),
        (metadata("a" * 64, runs=2), "seeds lists 1 seed(s) but runs is 2"),
        (metadata("a" * 64, training_data="train+test"), "training_data: Input should be 'train'"),
        (
            metadata("a" * 64, modalities=["ids", "smell"]),
            "modalities: 'smell' is not one of ids, audio",
        ),
        (metadata("abc"), "dataset_fingerprint: String should match pattern"),
        (metadata("a" * 64, probe=True), "probe: not set by an entry; the maintainers list"),
        (metadata("a" * 64, baseline=True), "baseline: not set by an entry; the maintainers list"),
        (
            metadata("a" * 64, code="mmbench:baselines/does_not_exist.py"),
            "no such module in the mmbench package",
        ),
        (metadata("a" * 64, runs=3, seeds=[0, 0, 0]), "repeats a seed"),
        (metadata("a" * 64, model="Name\n# Heading"), "model: String should match pattern"),
    ]
    for data, message in cases:
        path = write_meta(tmp_path / "m.yaml", data)
        with pytest.raises(MmbenchError, match="m.yaml") as info:
            read_metadata(path)
        assert message in str(info.value)
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    result = run_cli("submit", str(tmp_path), "--meta", str(tmp_path / "bad.yaml"))
    assert result.returncode == 2 and "bad.yaml: line" in result.stderr and "Traceback" not in result.stderr


def test_site_in_a_real_browser(board, sample_build, tmp_path):
    assert CHROMIUM.exists(), "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    from playwright.sync_api import sync_playwright

    site = tmp_path / "site"
    result = run_cli("leaderboard", "build", str(board), "--out", str(site), "--dataset", str(sample_build), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 entries recomputed, 0 not shown" in result.stdout
    readme = (board / "README.md").read_text()
    assert r"&lt;script&gt;alert\('x'\)&lt;/script&gt; \| repeat" in readme and "<script>" not in readme
    assert f"against the build with fingerprint `{dataset_fingerprint(sample_build)}`" in readme
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_offline(True)
        context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_() if route.request.url.startswith("file:") else route.abort()))  # fmt: skip
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto((site / "index.html").as_uri())
        board_el = page.locator("section.board").first

        def names() -> list[str]:
            return [t.split("\n")[0] for t in board_el.locator("tbody tr td:first-child").all_inner_texts()]

        def column(view: str, metric: str = "ndcg@10") -> list[float]:
            cells = board_el.locator(f"tbody tr td.view-{view}[data-metric='{metric}']")
            return [float(v) for v in cells.evaluate_all("els => els.map(e => e.dataset.value)")]

        def bars(view: str) -> list[str]:
            chart = board_el.locator(f"svg.chart-{view}")
            assert chart.is_visible()
            return chart.locator("g.bar").evaluate_all(
                "els => els.filter(e => e.style.display !== 'none').map(e => e.dataset.slug)"
            )

        # Rows come best NDCG@10 first; the injected name is text, and no script of it ran.
        assert names()[0].startswith("<script>alert('x')</script> | repeat")
        assert dialogs == [] and all(u.startswith("file:") for u in requests)
        # Nothing is cut off at 1,400 px: the page does not scroll sideways, nor does the table.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        assert page.evaluate(
            "(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth; })()"
        )
        header = board_el.locator("thead th.view-overall", has_text="NDCG@10").first
        header.click()  # descending
        assert column("overall") == sorted(column("overall"), reverse=True)
        header.click()  # ascending
        assert names()[0] == "Mixed runs"
        # The segment view re-sorts the rows by the segment's NDCG@10 and shows its three metrics
        # and its chart; the overall columns and chart are hidden.
        assert bars("overall") == ["repeat", "pop", "mixed"]
        board_el.locator("select.segment-view").select_option("heard")
        heard = column("heard")
        assert heard == sorted(heard, reverse=True)
        for metric in ("ndcg@10", "recall@10", "mrr@10"):
            assert board_el.locator(f"tbody tr td.view-heard[data-metric='{metric}']").first.is_visible()
        assert board_el.locator("tbody tr td.view-overall").first.is_hidden()
        assert board_el.locator("svg.chart-overall").is_hidden()
        order = [s for s in board_el.locator("tbody tr").evaluate_all("els => els.map(e => e.dataset.slug)")]
        assert bars("heard") == [s for s in order if s in bars("heard")]
        board_el.locator("select.segment-view").select_option("overall")
        # Filters hide a row and its bar in the chart, and the remaining bars close up.
        board_el.locator("select.filter-modality").select_option("completion")
        visible = board_el.locator("tbody tr:not([hidden])")
        assert visible.count() == 1 and "repeat" in visible.first.inner_text()
        assert bars("overall") == ["repeat"]
        transform = board_el.locator("svg.chart-overall g.bar[data-slug='repeat']").get_attribute("transform")
        assert transform == "translate(0,40)"
        board_el.locator("select.filter-modality").select_option("")
        board_el.locator("select.filter-backbone").select_option("tiny")
        assert visible.count() == 1 and "Mixed runs" in visible.first.inner_text()
        assert bars("overall") == ["mixed"]
        board_el.locator("select.filter-backbone").select_option("")
        assert bars("overall") == ["repeat", "pop", "mixed"]
        assert board_el.locator("svg.chart-overall line.chance").count() == 1
        assert board_el.locator("tbody tr", has_text="Popularity").inner_text().count("reference") == 1
        # repeat's +0.057 over pop is significant (Holm over its three metrics), and so marked.
        assert board_el.locator("tbody span.significant").count() >= 1
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
        browser.close()
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000


def test_repository_leaderboard_recomputes(sample_build):
    """The entries shipped in leaderboard/ are exactly what the evaluator gives for their
    predictions on a fresh build of the sample: every sample entry is recomputed (a stale one
    fails, never skipped); entries of other builds get every check that needs no data."""
    from mmbench.leaderboard.submissions import read_entries

    result = run_cli("leaderboard", "validate", str(REPO / "leaderboard"), "--recompute", "--dataset", str(sample_build), "--skip-missing", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    read, recomputed = re.search(r"(\d+) submission\(s\) read, (\d+) recomputed", result.stdout).groups()
    sample = [e for e in read_entries(REPO / "leaderboard").entries if e.metadata.dataset == "sample"]
    assert int(recomputed) == len(sample) >= 17 and " 0 problem(s)" in result.stdout


def test_remote_predictions_are_checked_or_skipped_only_when_asked(sample_build, predictions, tmp_path):
    """A large run may live elsewhere: the metadata gives its https URL, size and digest, the
    folder omits it; without the file the entry fails unless --skip-missing, and a download
    never reaches a private address."""
    from mmbench.leaderboard.submissions import store_predictions

    stored = tmp_path / "stored.jsonl.gz"
    store_predictions(predictions["user-repeat"], stored)
    remote = {"file": "seed0.jsonl.gz", "url": "https://127.0.0.1:9/seed0.jsonl.gz", "size": stored.stat().st_size,
              "sha256": sha256_bytes(predictions["user-repeat"].read_bytes())}  # fmt: skip
    meta = write_meta(
        tmp_path / "m.yaml", metadata(dataset_fingerprint(sample_build), remote_predictions=[remote])
    )
    board = tmp_path / "lb"
    result = run_cli("submit", str(predictions["user-repeat"]), "--meta", str(meta), "--dataset", str(sample_build), "--leaderboard", str(board), "--slug", "far")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (board / "submissions" / "far").iterdir()) == ["metadata.yaml", RESULTS]
    args = ("leaderboard", "validate", str(board), "--recompute", "--dataset", str(sample_build), "--quiet")
    missing = run_cli(*args)
    assert (
        missing.returncode == 1
        and "FAIL far: not checked against data: seed0.jsonl.gz is remote" in missing.stderr
    )
    skipped = run_cli(*args, "--skip-missing")
    assert skipped.returncode == 0 and "note: far: not checked against data" in skipped.stderr
    fetched = run_cli(*args, "--allow-download")
    assert fetched.returncode == 1
    assert (
        "https://127.0.0.1:9/seed0.jsonl.gz: 127.0.0.1 is 127.0.0.1, not a public address; refused"
        in fetched.stderr
    )
