"""Shared fixtures: a small raw set in the real LastFM-1K formats with every quirk, written here."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mmbench.builders.ingest import PLAYS_NAME, PROFILE_NAME
from mmbench.builders.publish import constraints_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One MGPHot answer cache for every sample build of the session: the LLM rates each track once.
# Made by the session's first process (pytest-xdist's workers inherit it) and removed at its end.
if "MMBENCH_MGPHOT_CACHE" not in os.environ:
    os.environ["MMBENCH_MGPHOT_CACHE"] = tempfile.mkdtemp(prefix="mmbench-mgphot-")
    atexit.register(shutil.rmtree, os.environ["MMBENCH_MGPHOT_CACHE"], True)

T0 = int(datetime(2008, 1, 1, tzinfo=UTC).timestamp())


def stamp(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# (user, seconds after T0, artist, track, track mbid). Listed in time order; the file reverses it.
PLAYS = [
    # user_000001, session 1: equal timestamps, a gap of exactly 1200 s (same session).
    ("user_000001", 0, 'The "Quoted" Band', "Song A", "mbid-a"),
    ("user_000001", 100, "Björk", "Jóga", ""),
    ("user_000001", 100, "Björk", "Hyperballad", "mbid-h"),
    ("user_000001", 1300, "björk", "JÓGA", ""),  # same song as line above, another spelling
    # session 2: the gap is 1201 s.
    ("user_000001", 2501, "Sigur Rós", "Hoppípolla", "mbid-s1"),
    ("user_000001", 2800, "Sigur Rós", "Hoppípolla", "mbid-s2"),  # a repeat, another MBID
    ("user_000001", 3000, 'The "Quoted" Band', "Song A", "mbid-a"),
    # session 3, much later.
    ("user_000001", 90000, "Björk", "Hyperballad", "mbid-h"),
    ("user_000001", 90200, "Unknown  Artist ", "No  Duration", ""),
    # user_000002: one session, then another.
    ("user_000002", 50, 'The "Quoted" Band', "Song A", ""),
    ("user_000002", 250, "Björk", "Hyperballad", "mbid-h"),
    ("user_000002", 80000, "Sigur Rós", "Hoppípolla", "mbid-s1"),
    ("user_000002", 80100, "東京事変", "群青日和", ""),
]
DURATIONS = {
    ('The "Quoted" Band', "Song A"): 200.0,
    ("Björk", "Jóga"): 300.0,
    ("Björk", "Hyperballad"): 250.0,
    ("Sigur Rós", "Hoppípolla"): 400.0,
    ("東京事変", "群青日和"): 150.0,
}
# Malformed lines, inserted in the file after the line given (1-based), with their reason.
MALFORMED = [
    ("user_000001\t2008-01-01T00:00:00Z\t\tFive Fields\tOnly", "wrong_field_count"),
    ("user_000001\t2008-01-01 00:00:00\t\tArtist\t\tBad Time", "bad_timestamp"),
    ("\t2008-01-01T00:00:00Z\t\tArtist\t\tNo User", "empty_user_id"),
]


def plays_lines() -> tuple[list[bytes], dict[int, str]]:
    """The plays file's lines (newest first per user) and the expected rejects by line number."""
    lines: list[bytes] = []
    for user in ("user_000001", "user_000002"):
        mine = [p for p in PLAYS if p[0] == user]
        for _, t, artist, track, mbid in reversed(mine):
            artist_mbid = "amb-" + artist.lower()[:3] if artist.startswith("B") else ""
            lines.append("\t".join([user, stamp(T0 + t), artist_mbid, artist, mbid, track]).encode())
    rejects = {}
    for offset, (text, reason) in enumerate(MALFORMED):
        position = 2 + 3 * offset
        lines.insert(position, text.encode())
        rejects[position + 1] = reason
    lines.insert(6, b"user_000002\t2008-01-01T00:00:00Z\t\tLatin-1 \xe9\t\tBytes")
    rejects = {(k + 1 if k > 6 else k): v for k, v in rejects.items()}
    rejects[7] = "invalid_utf8"
    return lines, rejects


def write_fixture(folder: Path, profile: bool = True) -> dict[str, Path]:
    """Write the extracted-folder layout plus a durations manifest; return the paths."""
    raw = folder / "lastfm-dataset-1K"
    raw.mkdir(parents=True, exist_ok=True)
    lines, _ = plays_lines()
    (raw / PLAYS_NAME).write_bytes(b"\n".join(lines) + b"\n")
    if profile:
        (raw / PROFILE_NAME).write_text(
            "#id\tgender\tage\tcountry\tregistered\n"
            "user_000001\tf\t\tIceland\tAug 13, 2006\n"
            "user_000002\t\t31\t\t\n",
            encoding="utf-8",
        )
    durations = folder / "durations.csv"
    rows = ["artist_name,track_name,duration_seconds"]
    rows += [f'"{a.replace(chr(34), chr(34) * 2)}","{t}",{d}' for (a, t), d in DURATIONS.items()]
    durations.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"folder": raw, "plays": raw / PLAYS_NAME, "durations": durations}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``mmbench`` console script in a subprocess. No wall-clock limit: a busy
    machine slows a command down, and a test must not fail for that."""
    exe = Path(sys.executable).with_name("mmbench")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture
def fixture_raw(tmp_path: Path) -> dict[str, Path]:
    return write_fixture(tmp_path / "raw")


ROOT = Path(__file__).resolve().parents[1]


def code_digest() -> str:
    """SHA-256 over the package's code and data files (paths and bytes), pyproject.toml and the
    installed runtime packages' versions (the build's ``constraints.txt``): what a sample build
    depends on. A cache kept across environments (CI machines keep ``~/.cache``) must not hand a
    build made with other package versions to a test that compares it with a fresh one."""
    digest = hashlib.sha256(f"{sys.version}\0{constraints_text()}\0".encode())
    files = [ROOT / "pyproject.toml"]
    for folder in ("mmbench", "builders", "baselines"):
        files += sorted(
            p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".toml", ".tsv", ".json")
        )
    for path in files:
        digest.update(f"{path.relative_to(ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample benchmark built by the real CLI, shared by the tests that only read it, and kept
    between sessions under ``MMBENCH_TEST_CACHE`` (default ``~/.cache/mmbench/tests``) by the
    code's digest: a run after a code change builds it again, a run without one reuses it. The
    build goes to a temporary folder renamed into place, so an interrupted build leaves no entry;
    a lock makes parallel workers (``pytest -n 2``) wait for one build instead of each making one."""
    from filelock import FileLock

    cache = Path(os.environ.get("MMBENCH_TEST_CACHE") or Path.home() / ".cache" / "mmbench" / "tests")
    out = cache / f"sample-{code_digest()}" / "lastfm1k-mm"
    if (out / "build_report.json").is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(cache / "build.lock"):
        if not (out / "build_report.json").is_file():
            _build_sample(cache, out)
    return out


def _build_sample(cache: Path, out: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache)) / "lastfm1k-mm"
    result = run_cli("build", "--sample", "--quiet", "--out", str(staging))
    assert result.returncode == 0, result.stderr
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # another session put the same build there first
        staging.rename(out)
    shutil.rmtree(staging.parent, ignore_errors=True)
    for old in cache.glob("sample-*"):  # builds of older code
        if old != out.parent:
            shutil.rmtree(old, ignore_errors=True)


def pop_predictions(dataset: Path, out: Path, task: str = "next-track", split: str = "test") -> Path:
    """Train the pop baseline on ``dataset`` and write its predictions to ``out``."""
    from mmbench.baselines.runner import predict, train

    model = train("pop", dataset, (), out.with_suffix(".model"))
    predict(model, task, split, out, progress=False)
    return out


NO_FILTERS = [
    f"filters.{name}={value}"
    for name, value in [
        ("min_user_plays", 0),
        ("min_track_plays", 0),
        ("dedupe_session_repeats", "false"),
        ("min_session_length", 0),
        ("max_session_length", 0),
        ("min_user_sessions", 0),
    ]
]


def build_fixture(raw: dict[str, Path], out: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`mmbench build` of the fixture with every filter off (it is tiny), 2 negatives and no text
    config (loading the sentence encoder would take most of the build's time; the text kind is
    tested on the sample, and ``enrich.text_encoder="minilm"`` in ``overrides`` turns it on)."""
    args = [
        "build",
        "--raw",
        str(raw["folder"]),
        "--durations",
        str(raw["durations"]),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "instances.paper_sampled_negatives=2",
        "--set",
        'enrich.text_encoder=""',
    ]
    for item in (*NO_FILTERS, *overrides):
        args += ["--set", item]
    return run_cli(*args)


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real OpenAI-compatible server: `transformers serve` on the packaged SmolLM2, saved once
    as a transformers folder; its ``url`` and ``model`` (the folder, which it serves)."""
    from mmbench.llm import save_packaged_llm

    folder = save_packaged_llm(tmp_path_factory.mktemp("llm") / "smollm2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("transformers")
    log = (folder.parent / "serve.log").open("w")
    server = subprocess.Popen(
        [str(exe), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"transformers serve did not start: {(folder.parent / 'serve.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(1)
        yield {"url": url, "model": str(folder)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # uvicorn may wait on an open connection
            server.kill()
            server.wait()
        log.close()


# -- leaderboard fixtures (tests/test_leaderboard*.py) ------------------------------------------


def entry_metadata(fingerprint: str, **changes) -> dict:
    """A submission's metadata.yaml fields, with ``changes`` applied."""
    base = {
        "model": "Popularity",
        "authors": ["Test Author"],
        "contact": "test@example.org",
        "code": "https://example.org/code",
        "mmbench_version": "0.1.0",
        "dataset": "sample",
        "dataset_fingerprint": fingerprint,
        "task": "next-track",
        "split": "test",
        "runs": 1,
        "seeds": [0],
        "hyperparameter_selection": "defaults",
        "modalities": ["ids"],
        "training_data": "train",
        "hardware": "CPU",
        "date": "2026-12-01",
    }
    return {**base, **changes}


def write_meta(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def predictions(sample_build, tmp_path_factory) -> dict[str, Path]:
    """Real baselines' test predictions on the sample: pop, user-repeat, history-lookup and
    unseen-first, and a folder of two runs (history-lookup as seed 0, unseen-first gzipped as
    seed 1)."""
    import gzip
    import shutil

    from mmbench.baselines.runner import predict, train

    folder = tmp_path_factory.mktemp("predictions")
    out = {"pop": pop_predictions(sample_build, folder / "pop.jsonl")}
    for name in ("user-repeat", "history-lookup", "unseen-first"):
        model = train(name, sample_build, (), folder / f"{name}.model", progress=False)
        predict(model, "next-track", "test", folder / f"{name}.jsonl", progress=False)
        out[name] = folder / f"{name}.jsonl"
    runs = folder / "two-runs"
    runs.mkdir()
    shutil.copyfile(out["history-lookup"], runs / "seed0.jsonl")
    with gzip.open(runs / "seed1.jsonl.gz", "wb") as f:  # runs may be compressed
        f.write(out["unseen-first"].read_bytes())
    out["runs"] = runs
    return out


BOARD_RULES = "reference:\n  next-track: pop\nbaselines:\n  pop: pop\n"


@pytest.fixture(scope="session")
def board(sample_build, predictions, tmp_path_factory) -> Path:
    """A leaderboard with three entries written by `mmbench submit` (tests copy it to change it)."""
    from mmbench.fingerprint import dataset_fingerprint

    root = tmp_path_factory.mktemp("board") / "leaderboard"
    metas = tmp_path_factory.mktemp("meta")
    fingerprint = dataset_fingerprint(sample_build)
    root.mkdir()
    (root / "baselines.yaml").write_text(BOARD_RULES, encoding="utf-8")
    entries = [
        ("pop", predictions["pop"], entry_metadata(fingerprint, code="mmbench:baselines/pop.py")),
        (
            "repeat",
            predictions["user-repeat"],
            entry_metadata(
                fingerprint, model="<script>alert('x')</script> | repeat", modalities=["ids", "completion"]
            ),
        ),
        (
            "mixed",
            predictions["runs"],
            entry_metadata(fingerprint, model="Mixed runs", runs=2, seeds=[0, 1], backbone="tiny"),
        ),
    ]
    for slug, path, meta in entries:
        result = run_cli(
            "submit", str(path), "--meta", str(write_meta(metas / f"{slug}.yaml", meta)),
            "--dataset", str(sample_build), "--leaderboard", str(root), "--slug", slug,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    (root / "README.md").write_text("# Leaderboard\n\nRules.\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def standin_build(tmp_path_factory) -> Path:
    """A second build with another fingerprint and the official recipe (so its dataset is
    lastfm1k-mm): the tiny raw fixture, standing in for the real data that CI does not have."""
    folder = tmp_path_factory.mktemp("standin")
    result = build_fixture(write_fixture(folder / "raw"), folder / "lastfm1k-mm")
    assert result.returncode == 0, result.stderr
    return folder / "lastfm1k-mm"


# -- outside tools in their own environment (make test-tools) -----------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tools",
        action="store_true",
        help="Run the tests that build a second environment (make test-tools).",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the real server is marked ``server`` (and ``llm``: the server runs one);
    the ``tools`` tests are skipped without ``--tools``."""
    skip = pytest.mark.skip(reason="builds a second environment with an outside tool: make test-tools")
    for item in items:
        if "llm_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
            item.add_marker(pytest.mark.llm)
        if "tools" in item.keywords and not config.getoption("--tools"):
            item.add_marker(skip)
