"""The exports in the outside tools that read them, each in its own environment (make test-tools):
RecBole trains on `mmbench export --format recbole` and its own test NDCG@10 is the benchmark's
for the same rankings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
# RecBole 1.2.1 uses NumPy 1 aliases and assigns columns in a way pandas 3 refuses (tested: 3.0.6
# fails in Dataset._remap, 2.2.3 works); torch pinned as everywhere else (CPU wheels).
RECBOLE = ["recbole==1.2.1", "numpy<2", "pandas<2.3", "torch==2.13.0"]


@pytest.fixture(scope="session")
def recbole_python(tmp_path_factory) -> Path:
    """A Python with RecBole, in a temporary venv built from the package index."""
    venv = tmp_path_factory.mktemp("recbole") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *RECBOLE],
        capture_output=True, text=True,
    )  # fmt: skip
    if pip.returncode != 0:
        reason = [line for line in pip.stderr.splitlines() if line.strip() and "WARNING" not in line]
        pytest.skip(f"cannot install {' '.join(RECBOLE)}: {reason[-1] if reason else pip.returncode}")
    return python


@pytest.mark.tools
def test_recbole_sasrec_scores_the_benchmark_protocol(sample_build, recbole_python, tmp_path):
    export = tmp_path / "lastfm1k-mm"
    result = run_cli("export", str(sample_build), "--format", "recbole", "--out", str(export))
    assert result.returncode == 0, result.stderr
    test_rows = (export / "lastfm1k-mm.test.inter").read_text().splitlines()[1:]
    instances = json.loads((sample_build / "build_report.json").read_text())["statistics"]
    assert len(test_rows) == instances["instances"]["next-track"]["test"]
    run = subprocess.run(
        [str(recbole_python), str(REPO / "benchmarks" / "recbole_sasrec.py"), str(export), str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    recbole = json.loads((tmp_path / "out" / "recbole.json").read_text())
    report = tmp_path / "report.json"
    result = run_cli("evaluate", str(tmp_path / "out" / "predictions.jsonl"), "--dataset", str(sample_build), "--json", str(report))  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(report.read_text())["metrics"]
    print(f"RecBole SASRec, 1 epoch: RecBole {recbole} | mmbench evaluate " + ", ".join(f"{m} {metrics[m]['value']:.6f}" for m in ("ndcg@10", "recall@10", "mrr@10")))  # fmt: skip
    for metric in ("ndcg@10", "recall@10", "mrr@10"):
        assert recbole[metric] == pytest.approx(metrics[metric]["value"], abs=1e-6)
    assert metrics["ndcg@10"]["value"] > 3 * json.loads(report.read_text())["chance"]["ndcg@10"]
