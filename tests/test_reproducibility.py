"""Byte-identical outputs from identical inputs, and a killed build that resumes to the same bytes."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NO_FILTERS, build_fixture, run_cli

# Each test builds datasets from scratch, several times over.
pytestmark = pytest.mark.slow


def _digests(folder: Path) -> dict[str, str]:
    files = [p for p in folder.rglob("*") if p.is_file() and ".build" not in p.parts]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_two_builds_of_the_same_input_are_byte_identical(fixture_raw, tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = build_fixture(fixture_raw, out, 'enrich.text_encoder="minilm"')  # the embeddings too
        assert result.returncode == 0, result.stderr
        outs.append(_digests(out))
    parquet = [k for k in outs[0] if k.endswith(".parquet")]
    assert len(parquet) == 8  # 4 core configs in 7 split files, and the text config
    assert outs[0] == outs[1]


def test_progress_bars_do_not_change_the_outputs(fixture_raw, tmp_path):
    """The report once counted the input's bytes with the progress bar, which --quiet disables."""
    outs = []
    for name, extra in (("quiet", ("--quiet",)), ("bars", ())):
        args = ["build", "--raw", str(fixture_raw["folder"]), "--out", str(tmp_path / name), *extra]
        overrides = [*NO_FILTERS, "instances.paper_sampled_negatives=2"]
        result = run_cli(
            *args, "--durations", str(fixture_raw["durations"]), *[a for o in overrides for a in ("--set", o)]
        )
        assert result.returncode == 0, result.stderr
        outs.append(_digests(tmp_path / name))
    assert outs[0] == outs[1]


def test_killed_build_resumes_to_the_same_bytes(sample_build, tmp_path):
    out = tmp_path / "killed"
    # The generated raw sample and the embeddings come from the session's build (their own
    # caches are tested elsewhere), so that this test times the stages, not the audio.
    shutil.copytree(sample_build / ".build" / "sample-raw", out / ".build" / "sample-raw")
    cache = tmp_path / "embedding-cache"
    shutil.copytree(sample_build / ".build" / "embedding-cache", cache)
    exe = Path(sys.executable).with_name("mmbench")
    proc = subprocess.Popen(
        [str(exe), "build", "--sample", "--quiet", "--out", str(out), "--embedding-cache", str(cache)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    marker = out / ".build" / "ingest.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the build ended before the ingest stage finished"
    assert not (out / "build_report.json").exists(), "the build finished before it could be interrupted"
    result = run_cli("build", "--sample", "--out", str(out), "--embedding-cache", str(cache))
    assert result.returncode == 0, result.stderr
    assert "ingest: unchanged" in result.stderr  # resumed, not restarted
    assert _digests(out) == _digests(sample_build)
