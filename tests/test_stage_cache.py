"""The stage cache reuses an artefact only when the stage's code and the recipe values it reads,
in their order, are unchanged."""

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from conftest import run_cli
from mmbench.builders.stages import code_digest


def test_code_digest_follows_project_imports(tmp_path, monkeypatch):
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stage.py").write_text("from probe_pkg import helper\nimport json\n")
    (package / "helper.py").write_text("from probe_pkg.deep import VALUE\n")
    (package / "deep.py").write_text("VALUE = 1\n")
    (package / "unrelated.py").write_text("OTHER = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def digest() -> str:
        code_digest.cache_clear()
        return code_digest("probe_pkg.stage", package="probe_pkg")

    first = digest()
    (package / "unrelated.py").write_text("OTHER = 2\n")
    assert digest() == first
    (package / "deep.py").write_text("VALUE = 2\n")  # imported through helper
    second = digest()
    assert second != first
    (package / "stage.py").write_text("from probe_pkg import helper\nimport json  # edited\n")
    assert digest() != second
    code_digest.cache_clear()


def _digests(folder: Path) -> dict[str, str]:
    files = [p for p in folder.rglob("*") if p.is_file() and ".build" not in p.parts]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


@pytest.mark.slow
def test_reordered_filters_rebuild_in_place_like_a_fresh_build(sample_build, tmp_path):
    text = (resources.files("mmbench.builders") / "recipes" / "sample.toml").read_text()
    text = text.replace("annotate_mgphot = true", "annotate_mgphot = false")
    dedupe, truncate = "dedupe_session_repeats = true\n", "max_session_length = 10\n"
    # Truncating sessions to 10 tracks before removing repeats leaves sessions shorter than 10.
    swapped = text.replace(dedupe, "@").replace(truncate, dedupe).replace("@", truncate)
    assert swapped != text
    recipes = {}
    for name, body in (("first", text), ("swapped", swapped)):
        recipes[name] = tmp_path / f"{name}.toml"
        recipes[name].write_text(body)
    raw = str(sample_build / ".build" / "sample-raw" / "lastfm-dataset-1K.tar.gz")

    def build(recipe: Path, out: Path) -> None:
        result = run_cli("build", "--raw", raw, "--recipe", str(recipe), "--out", str(out), "--quiet")
        assert result.returncode == 0, result.stderr

    in_place, fresh = tmp_path / "in-place", tmp_path / "fresh"
    build(recipes["first"], in_place)
    before = _digests(in_place)
    build(recipes["swapped"], in_place)
    build(recipes["swapped"], fresh)
    after = _digests(in_place)
    assert (
        after["data/sessions/train-00000-of-00001.parquet"]
        != before["data/sessions/train-00000-of-00001.parquet"]
    )
    assert after == _digests(fresh)
