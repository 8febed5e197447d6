"""Bad input gives one clear line, exit code 2, no traceback and no output folder left behind."""

import gzip
import io
import tarfile

import pytest

from conftest import run_cli
from mmbench.builders.ingest import PLAYS_NAME


def _expect_clean_failure(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_cli("build", *args, "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not out.exists()


def test_missing_file(tmp_path):
    _expect_clean_failure(tmp_path, ["--raw", str(tmp_path / "nope.tar.gz")], "no such file or folder")


def test_wrong_archive(tmp_path):
    archive = tmp_path / "lastfm-dataset-1K.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("something/else.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    _expect_clean_failure(tmp_path, ["--raw", str(archive)], f"holds no {PLAYS_NAME}")


def test_gzip_that_is_not_a_tar(tmp_path):
    path = tmp_path / "plays.tsv.gz"
    path.write_bytes(gzip.compress(b"x\n"))
    _expect_clean_failure(tmp_path, ["--raw", str(path)], "gzip data")


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / PLAYS_NAME
    path.write_bytes("user_000001\t2008-01-01T00:00:00Z\t\tBjörk\t\tJóga\n".encode("latin-1") * 5)
    _expect_clean_failure(
        tmp_path, ["--raw", str(path)], "none of its 5 lines is a valid play ({'invalid_utf8': 5})"
    )


def test_empty_file(tmp_path):
    path = tmp_path / PLAYS_NAME
    path.write_bytes(b"")
    _expect_clean_failure(tmp_path, ["--raw", str(path)], "the plays file is empty")


def test_only_malformed_lines(tmp_path):
    path = tmp_path / PLAYS_NAME
    path.write_text("a,b,c\n" * 3 + "user\tnot-a-time\t\tA\t\tB\n", encoding="utf-8")
    _expect_clean_failure(tmp_path, ["--raw", str(path)], "none of its 4 lines is a valid play")


def test_not_the_plays_file_at_all(tmp_path):
    path = tmp_path / "random.csv"
    path.write_text("id,name\n" * 20_000, encoding="utf-8")
    _expect_clean_failure(tmp_path, ["--raw", str(path)], "is this the LastFM-1K plays file?")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("filters.min_users=3", "unknown recipe key 'filters.min_users'"),
        ("split.test_quantile=high", "split.test_quantile expects a float"),
        ("nonsense", "expected key=value"),
    ],
)
def test_bad_recipe_overrides(fixture_raw, tmp_path, override, message):
    _expect_clean_failure(tmp_path, ["--raw", str(fixture_raw["folder"]), "--set", override], message)


def test_unknown_recipe(fixture_raw, tmp_path):
    _expect_clean_failure(
        tmp_path, ["--raw", str(fixture_raw["folder"]), "--recipe", "fancy"], "unknown recipe 'fancy'"
    )


def test_filters_that_remove_everything(fixture_raw, tmp_path):
    _expect_clean_failure(tmp_path, ["--raw", str(fixture_raw["folder"])], "removed every play")


def test_sample_and_raw_together(fixture_raw, tmp_path):
    _expect_clean_failure(
        tmp_path, ["--sample", "--raw", str(fixture_raw["folder"])], "exactly one of --sample or --raw"
    )


def test_download_never_fetches_and_checks_a_file(fixture_raw):
    result = run_cli("download")
    assert result.returncode == 0 and "does not fetch" in result.stdout
    assert "non-commercial" in result.stdout and "gated" in result.stdout
    result = run_cli("download", "--check", str(fixture_raw["plays"]))
    assert result.returncode == 2 and "MISMATCH" in result.stderr and "Traceback" not in result.stderr
