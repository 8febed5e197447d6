"""Attacks on the leaderboard, each reproduced with the shipped commands, and what each gets now:
a forged number, file, entry, path, copy, baseline claim, download or name never reaches the
tables; it fails `validate` and is listed apart by `build`, with why."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from conftest import entry_metadata as metadata
from conftest import run_cli, write_meta
from mmbench.digests import sha256_bytes
from mmbench.errors import MmbenchError
from mmbench.fingerprint import dataset_fingerprint
from mmbench.leaderboard.download import copy_capped, fetch, opener
from mmbench.leaderboard.metadata import read_metadata
from mmbench.leaderboard.results import RESULTS, dumps_results, results_digest
from mmbench.leaderboard.site import build_site, markdown_text
from mmbench.leaderboard.submissions import check_leaderboard


def copy_board(board: Path, tmp_path: Path) -> Path:
    target = tmp_path / "leaderboard"
    shutil.copytree(board, target, symlinks=True)
    return target


def forge(folder: Path, change) -> None:
    """Edit an entry's results.json with ``change`` and fix its digest, as a careful forger would."""
    path = folder / RESULTS
    data = json.loads(path.read_text())
    change(data)
    data["results_sha256"] = results_digest(data)
    path.write_text(dumps_results(data))


def build(board: Path, tmp_path: Path, *datasets: Path) -> tuple[str, str, object]:
    page, found = build_site(board, tmp_path / "site", [str(d) for d in datasets], progress=False)
    return page.read_text(), (board / "README.md").read_text(), found


def test_a_raised_number_with_its_digest_fixed_is_never_shown(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    forge(copy / "submissions" / "repeat", lambda d: d["mean"]["metrics"]["ndcg@10"].update(value=0.4242))
    assert run_cli("leaderboard", "validate", str(copy)).returncode == 0  # nothing without data can tell
    page, readme, found = build(copy, tmp_path, sample_build)
    tables, apart = page.split("Entries not shown")
    assert "0.4242" not in tables and "0.4242" not in readme.split("Entries not shown")[0]
    assert "recorded 0.4242" in apart
    assert "recorded 0.4242, recomputed 0.095" in found.excluded["repeat"]
    assert "Entries not shown" in page and "repeat" in readme.split("Entries not shown")[1]
    assert {s.entry.slug for s in found.scored} == {"pop", "mixed"}


def test_a_swapped_predictions_file_is_never_shown(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    entries = copy / "submissions"
    shutil.copyfile(entries / "repeat" / "seed0.jsonl.gz", entries / "pop" / "seed0.jsonl.gz")
    _, _, found = build(copy, tmp_path, sample_build)
    assert (
        "seed0.jsonl.gz: its SHA-256 differs from results.json field predictions[0].sha256"
        in found.excluded["pop"]
    )
    # With the reference gone, no entry gets a comparison it did not earn.
    assert "no reference" in (copy / "README.md").read_text()


def test_a_forged_real_data_entry_never_tops_its_table(
    board, sample_build, standin_build, predictions, tmp_path
):
    """The stand-in build plays the real data (another fingerprint, dataset lastfm1k-mm): an
    honest entry on it is recomputed when its build is given; a forged one (instance ids that do
    not exist, NDCG@10 0.61) fails, and without its build neither is shown."""
    from conftest import pop_predictions

    copy = copy_board(board, tmp_path)
    fingerprint = dataset_fingerprint(standin_build)
    honest = pop_predictions(standin_build, tmp_path / "real-pop.jsonl")
    meta = write_meta(tmp_path / "real.yaml", metadata(fingerprint, dataset="lastfm1k-mm", model="Real pop"))
    result = run_cli("submit", str(honest), "--meta", str(meta), "--dataset", str(standin_build), "--leaderboard", str(copy), "--slug", "real-pop")  # fmt: skip
    assert result.returncode == 0, result.stderr
    forged = copy / "submissions" / "real-forged"
    shutil.copytree(copy / "submissions" / "real-pop", forged)
    lines = [json.dumps({"instance_id": "no-such-instance", "predictions": ["x"]})]
    (forged / "seed0.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    def lie(data: dict) -> None:
        data["slug"] = "real-forged"
        data["predictions"][0]["sha256"] = sha256_bytes(
            gzip.decompress((forged / "seed0.jsonl.gz").read_bytes())
        )
        data["mean"]["metrics"]["ndcg@10"]["value"] = 0.61

    forge(forged, lie)
    sample_only = run_cli("leaderboard", "validate", str(copy), "--recompute", "--dataset", str(sample_build), "--quiet")  # fmt: skip
    assert sample_only.returncode == 1
    assert (
        "FAIL real-pop: not checked against data: its build (lastfm1k-mm, fingerprint" in sample_only.stderr
    )
    skipping = run_cli("leaderboard", "validate", str(copy), "--recompute", "--dataset", str(sample_build), "--skip-missing", "--quiet")  # fmt: skip
    assert skipping.returncode == 0 and "note: real-forged: not checked against data" in skipping.stderr
    assert "3 recomputed" in skipping.stdout
    both = run_cli("leaderboard", "validate", str(copy), "--recompute", "--dataset", str(sample_build), "--dataset", str(standin_build), "--quiet")  # fmt: skip
    assert both.returncode == 1 and "4 recomputed" in both.stdout
    assert (
        "FAIL real-forged: " in both.stderr
        and "unknown instance for task 'next-track', split 'test'" in both.stderr
    )
    page, _, found = build(copy, tmp_path, sample_build)
    assert "0.61" not in page and {"real-pop", "real-forged"} <= set(found.excluded)
    page, _, found = build(copy, tmp_path, sample_build, standin_build)
    assert "Real pop" in page and "real-forged" in found.excluded and "0.6100" not in page


def test_files_outside_the_entry_folder_are_refused(board, tmp_path):
    copy = copy_board(board, tmp_path)
    entries = copy / "submissions"
    for name in ("../pop/seed0.jsonl.gz", "/etc/passwd", "seed0.jsonl"):
        forge(entries / "repeat", lambda d, name=name: d["predictions"][0].update(file=name))
        found = check_leaderboard(copy)
        assert (
            "results.json: field predictions.0.file: String should match pattern" in found.excluded["repeat"]
        )
    shutil.rmtree(entries / "repeat")
    shutil.copytree(board / "submissions" / "repeat", entries / "repeat")
    (entries / "repeat" / "seed0.jsonl.gz").unlink()
    (entries / "repeat" / "seed0.jsonl.gz").symlink_to(entries / "pop" / "seed0.jsonl.gz")
    assert "seed0.jsonl.gz: a symbolic link" in check_leaderboard(copy).excluded["repeat"]
    outside = tmp_path / "outside"
    shutil.copytree(board / "submissions" / "mixed", outside)
    shutil.rmtree(entries / "mixed")
    (entries / "mixed").symlink_to(outside)
    assert "not a plain folder (a symbolic link" in check_leaderboard(copy).excluded["mixed"]


def test_near_duplicate_copies_are_refused_and_the_earlier_date_stands(
    board, sample_build, predictions, tmp_path
):
    copy = copy_board(board, tmp_path)
    lines = predictions["user-repeat"].read_text().splitlines()
    row = json.loads(lines[0])
    row["predictions"][0], row["predictions"][1] = row["predictions"][1], row["predictions"][0]
    lines[0] = json.dumps(row)
    tweaked = tmp_path / "tweaked.jsonl"
    tweaked.write_text("\n".join(lines) + "\n")
    fingerprint = dataset_fingerprint(sample_build)
    meta = write_meta(tmp_path / "copy.yaml", metadata(fingerprint, model="Totally new", date="2026-12-02"))
    refused = run_cli("submit", str(tweaked), "--meta", str(meta), "--dataset", str(sample_build), "--leaderboard", str(copy), "--slug", "aaa-copy")  # fmt: skip
    assert refused.returncode == 2 and "the same rank as repeat/seed0.jsonl.gz on " in refused.stderr
    # Written elsewhere and moved in by hand: the recomputation refuses the later-dated copy.
    elsewhere = tmp_path / "elsewhere"
    result = run_cli("submit", str(tweaked), "--meta", str(meta), "--dataset", str(sample_build), "--leaderboard", str(elsewhere), "--slug", "aaa-copy")  # fmt: skip
    assert result.returncode == 0, result.stderr
    shutil.move(elsewhere / "submissions" / "aaa-copy", copy / "submissions" / "aaa-copy")
    found = check_leaderboard(copy, [str(sample_build)], recompute=True, progress=False)
    assert "near-duplicate entries; the earlier date, 2026-12-01, stands)" in found.excluded["aaa-copy"]
    assert "repeat" not in found.excluded
    # On the same date, neither can be told first: both are refused.
    same_day = write_meta(tmp_path / "same.yaml", metadata(fingerprint, model="Totally new"))
    shutil.rmtree(copy / "submissions" / "aaa-copy")
    result = run_cli("submit", str(tweaked), "--meta", str(same_day), "--dataset", str(sample_build), "--leaderboard", str(tmp_path / "e2"), "--slug", "aaa-copy")  # fmt: skip
    shutil.move(tmp_path / "e2" / "submissions" / "aaa-copy", copy / "submissions" / "aaa-copy")
    found = check_leaderboard(copy, [str(sample_build)], recompute=True, progress=False)
    assert {"aaa-copy", "repeat"} <= set(found.excluded)
    assert "on the same date neither does" in found.excluded["repeat"]


def test_relabelled_runs_are_refused(board, sample_build, predictions, tmp_path):
    fingerprint = dataset_fingerprint(sample_build)
    with pytest.raises(MmbenchError, match="repeats a seed"):
        read_metadata(write_meta(tmp_path / "m.yaml", metadata(fingerprint, runs=3, seeds=[0, 0, 0])))
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(3):
        shutil.copyfile(predictions["pop"], runs / f"seed{seed}.jsonl")
    meta = write_meta(tmp_path / "three.yaml", metadata(fingerprint, runs=3, seeds=[0, 1, 2]))
    result = run_cli("submit", str(runs), "--meta", str(meta), "--dataset", str(sample_build), "--leaderboard", str(tmp_path / "lb"))  # fmt: skip
    assert result.returncode == 2
    assert (
        "runs seed0.jsonl and seed1.jsonl give the target the same rank on 100.0% of the instances"
        in result.stderr
    )
    # A folder put together by hand: the same file under two seeds is refused without data.
    copy = copy_board(board, tmp_path)
    mixed = copy / "submissions" / "mixed"
    shutil.copyfile(mixed / "seed0.jsonl.gz", mixed / "seed1.jsonl.gz")
    forge(mixed, lambda d: d["predictions"][1].update(sha256=d["predictions"][0]["sha256"]))
    assert "two of its runs are the same file" in check_leaderboard(copy).excluded["mixed"]


def test_adding_an_entry_moves_no_other_p_value(board, sample_build, predictions, tmp_path):
    copy = copy_board(board, tmp_path)
    _, before, _ = build(copy, tmp_path, sample_build)
    reversed_pop = tmp_path / "reversed-pop.jsonl"  # a new model: pop's top 100, backwards
    rows = [json.loads(line) for line in predictions["pop"].read_text().splitlines()]
    reversed_pop.write_text(
        "".join(json.dumps({**r, "predictions": r["predictions"][::-1]}) + "\n" for r in rows)
    )
    meta = write_meta(tmp_path / "n.yaml", metadata(dataset_fingerprint(sample_build), model="Newcomer"))
    result = run_cli("submit", str(reversed_pop), "--meta", str(meta), "--dataset", str(sample_build), "--leaderboard", str(copy), "--slug", "newcomer")  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, after, _ = build(copy, tmp_path, sample_build)

    def verdicts(readme: str) -> dict[str, str]:
        rows = re.findall(r"^\| (.+?) \| \d\.\d{4} \[.*\| ([^|]*) \|$", readme, flags=re.M)
        return {name: versus for name, versus in rows if versus.strip()}

    assert "Newcomer" in verdicts(after) and "Newcomer" not in verdicts(before)
    assert {k: v for k, v in verdicts(after).items() if k != "Newcomer"} == verdicts(before)
    assert "Mixed runs" in verdicts(before)


def test_a_self_declared_baseline_is_not_a_baseline(board, sample_build, tmp_path):
    fingerprint = dataset_fingerprint(sample_build)
    for claim, message in (
        ({"baseline": True}, "baseline: not set by an entry"),
        (
            {"code": "mmbench:baselines/does_not_exist.py"},
            "mmbench:baselines/does_not_exist.py: no such module",
        ),
    ):
        with pytest.raises(MmbenchError, match=re.escape(message)):
            read_metadata(write_meta(tmp_path / "m.yaml", metadata(fingerprint, **claim)))
    # Listed by the maintainers as pop, an entry must be pop's code; the file names the reference.
    copy = copy_board(board, tmp_path)
    (copy / "baselines.yaml").write_text(
        "reference:\n  next-track: pop\nbaselines:\n  pop: pop\n  mixed: sknn\n"
    )
    assert (
        "but baselines.yaml lists this entry as sknn (mmbench:baselines/sknn.py)"
        in check_leaderboard(copy).excluded["mixed"]
    )
    (copy / "baselines.yaml").write_text("reference:\n  next-track: history-lookup\n")
    assert (
        "history-lookup is not one of mmbench's baselines (probes excluded)"
        in check_leaderboard(copy).problems[0]
    )


class _Server(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.org/seed0.jsonl.gz")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x" * 5000)

    def log_message(self, *args) -> None:
        pass


def test_downloads_refuse_files_private_addresses_redirects_and_bombs(tmp_path):
    for url, message in (
        ("file:///dev/zero", "only https:// URLs are fetched"),
        ("http://example.org/x.jsonl.gz", "only https:// URLs are fetched"),
        ("https://127.0.0.1/x.jsonl.gz", "127.0.0.1 is 127.0.0.1, not a public address"),
        ("https://10.0.0.8/x.jsonl.gz", "10.0.0.8 is 10.0.0.8, not a public address"),
        ("https://[::1]/x.jsonl.gz", "::1 is ::1, not a public address"),
    ):
        with pytest.raises(MmbenchError, match=re.escape(message)):
            fetch(url, 100, tmp_path / "x.jsonl.gz")
    with pytest.raises(MmbenchError, match=r"remote_predictions.0.url: String should match pattern"):
        remote = {"file": "seed0.jsonl.gz", "url": "file:///dev/zero", "size": 10, "sha256": "a" * 64}
        read_metadata(write_meta(tmp_path / "m.yaml", metadata("a" * 64, remote_predictions=[remote])))
    server = http.server.HTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        # A redirect to anything but https (to a public address) is refused by the opener itself.
        with pytest.raises(MmbenchError, match="only https:// URLs are fetched"):
            opener().open(f"{base}/redirect", timeout=5)
        # A stream longer than the declared size stops at the size, and nothing is left behind.
        with (
            opener().open(f"{base}/big", timeout=5) as response,
            pytest.raises(MmbenchError, match="more than the declared 1,000 bytes; stopped reading"),
        ):
            copy_capped(response, tmp_path / "big.jsonl.gz", 1000, "big")
        assert not any(tmp_path.glob("big.jsonl.gz*"))
    finally:
        server.shutdown()


def test_a_predictions_bomb_is_refused_with_bounded_memory(sample_build, tmp_path):
    """A small .gz that inflates to one endless line, or to lines padded past the file cap."""
    from mmbench.evaluator import Evaluator

    evaluator = Evaluator("next-track", "test", sample_build)
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        for _ in range(64):
            f.write(b" " * (1 << 20))  # 64 MiB of one line
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(MmbenchError, match=r"line 1 is longer than 1,048,576 bytes"):
        evaluator.read_file(bomb)
    padded = tmp_path / "padded.jsonl.gz"
    with gzip.open(padded, "wb", compresslevel=1) as f:
        for i in range(80):  # valid lines, each just under the line cap
            row = {"instance_id": evaluator.instance_ids[i], "predictions": [evaluator.track_ids[0]]}
            f.write(b" " * 1_000_000 + json.dumps(row).encode() + b"\n")
    with pytest.raises(MmbenchError, match=r"more than 39,059,456 bytes of JSON Lines \(65,536 per instance"):
        evaluator.read_file(padded)


def test_submitted_text_cannot_reshape_the_readme(board, sample_build, tmp_path):
    fingerprint = dataset_fingerprint(sample_build)
    with pytest.raises(MmbenchError, match="model: String should match pattern"):
        read_metadata(write_meta(tmp_path / "m.yaml", metadata(fingerprint, model="x\n# Heading\n![i](https://e.example/i.png)")))  # fmt: skip
    assert markdown_text("![i](https://e.example/i.png) [l](https://e.example) *b* | c") == (
        r"\!\[i\]\(https://e.example/i.png\) \[l\]\(https://e.example\) \*b\* \| c"
    )
    assert markdown_text("a\rb\u2028c") == "a b c"
    # Duplicate keys: a reviewer reads the first model:, a loader would keep the last.
    (tmp_path / "dup.yaml").write_text(
        Path(write_meta(tmp_path / "ok.yaml", metadata(fingerprint))).read_text() + "model: Other\n"
    )
    with pytest.raises(MmbenchError, match=r"dup.yaml: line \d+: not valid YAML \(key 'model' appears twice"):
        read_metadata(tmp_path / "dup.yaml")


def test_a_results_value_of_the_wrong_type_is_a_clear_error(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    forge(copy / "submissions" / "repeat", lambda d: d["mean"]["metrics"]["ndcg@10"].update(value="0.9"))
    forge(copy / "submissions" / "mixed", lambda d: d["runs"].clear())
    result = run_cli("leaderboard", "validate", str(copy))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "FAIL repeat: results.json: field mean.metrics.ndcg@10.value: Input should be a valid"
        in result.stderr
    )
    assert "FAIL mixed: results.json: field runs: List should have at least 1 item" in result.stderr
    result = run_cli("leaderboard", "build", str(copy), "--out", str(tmp_path / "site"), "--dataset", str(sample_build), "--quiet")  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "1 entries recomputed, 2 not shown" in result.stdout


def test_the_recompute_date_is_reproducible(board, sample_build, tmp_path):
    copy = copy_board(board, tmp_path)
    os.environ["SOURCE_DATE_EPOCH"] = "1767225600"  # 2026-01-01
    try:
        first, _, _ = build(copy, tmp_path, sample_build)
        second, _, _ = build(copy, tmp_path, sample_build)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert first == second and "Recomputed from the predictions on 2026-01-01 by mmbench" in first
