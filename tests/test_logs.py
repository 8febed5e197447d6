"""Output redirected to a file gets plain lines: no carriage-return redraws of progress bars, no
bars of the libraries underneath."""

import io
import sys

from conftest import NO_FILTERS, run_cli
from mmbench.progress import progress_bar


def test_a_bar_off_a_terminal_writes_whole_lines(monkeypatch):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    for _ in progress_bar(range(1000), desc="work", mininterval=0):
        pass
    text = captured.getvalue()
    assert "\r" not in text and text.count("\n") >= 2
    assert text.splitlines()[-1].startswith("work: 100%")


def test_build_and_baseline_logs_have_no_carriage_returns(fixture_raw, tmp_path):
    out = tmp_path / "out"
    overrides = [a for o in [*NO_FILTERS, "instances.paper_sampled_negatives=2"] for a in ("--set", o)]
    args = ["--raw", str(fixture_raw["folder"]), "--durations", str(fixture_raw["durations"])]
    built = run_cli("build", *args, "--out", str(out), *overrides)
    assert built.returncode == 0, built.stderr
    trained = run_cli("baseline", "train", "pop", "--dataset", str(out), "--out", str(tmp_path / "pop"))
    predicted = run_cli("baseline", "predict", str(tmp_path / "pop"), "--out", str(tmp_path / "p.jsonl"))
    for result in (built, trained, predicted):
        assert result.returncode == 0, result.stderr
        assert "\r" not in result.stderr and "Generating" not in result.stderr, result.stderr
    assert "ingest plays: 100%" in built.stderr
