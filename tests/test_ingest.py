import hashlib
import json
import tarfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from conftest import PLAYS, plays_lines, write_fixture
from mmbench.builders.ingest import PLAYS_NAME, PROFILE_NAME, ingest, parse_profiles, resolve_raw


def _archive(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for name in (PROFILE_NAME, PLAYS_NAME):
            tar.add(folder / name, arcname=f"lastfm-dataset-1K/{name}")
    return target


def test_rejects_name_line_and_reason(fixture_raw, tmp_path):
    result = ingest(resolve_raw(fixture_raw["folder"]), tmp_path / "rejects.jsonl", progress=False)
    _, expected = plays_lines()
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert {r["line"]: r["reason"] for r in rejects} == expected
    assert all(r["file"] == PLAYS_NAME for r in rejects)
    report = result.report
    assert report["rows_in"] == len(PLAYS) + len(expected) == 17
    assert report["rows_out"] == len(PLAYS) == result.plays.height
    assert report["rows_in"] == report["rows_out"] + sum(report["removed"].values())
    assert report["removed"] == {
        "invalid_utf8": 1,
        "wrong_field_count": 1,
        "empty_user_id": 1,
        "bad_timestamp": 1,
    }
    # Valid lines keep their own line numbers, and no quote processing happened.
    lines, _ = plays_lines()
    valid_lines = sorted(result.plays["line"].to_list())
    assert valid_lines == [i for i in range(1, 18) if i not in expected]
    assert result.pairs.filter(pl.col("artist_name") == 'The "Quoted" Band').height > 0


def test_archive_is_streamed_and_gives_the_same_plays(fixture_raw, tmp_path):
    archive = _archive(fixture_raw["folder"], tmp_path / "lastfm-dataset-1K.tar.gz")
    from_folder = ingest(resolve_raw(fixture_raw["folder"]), tmp_path / "a.jsonl", progress=False)
    from_archive = ingest(resolve_raw(archive), tmp_path / "b.jsonl", progress=False)
    assert from_archive.plays.equals(from_folder.plays)
    assert from_archive.users.equals(from_folder.users)
    md5 = hashlib.md5(fixture_raw["plays"].read_bytes()).hexdigest()
    assert from_archive.report["inputs"][PLAYS_NAME]["md5"] == md5
    assert from_archive.report["inputs"][PLAYS_NAME]["matches_published"] is False


@pytest.mark.parametrize("block_bytes", [7, 64, 1000])
def test_block_boundaries_do_not_change_the_result(fixture_raw, tmp_path, block_bytes):
    whole = ingest(resolve_raw(fixture_raw["plays"]), tmp_path / "a.jsonl", progress=False)
    pieces = ingest(
        resolve_raw(fixture_raw["plays"]), tmp_path / "b.jsonl", progress=False, block_bytes=block_bytes
    )
    assert pieces.plays.sort("line").equals(whole.plays.sort("line"))
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_last_line_without_newline_is_read(tmp_path):
    path = tmp_path / PLAYS_NAME
    path.write_bytes(
        b"user_000001\t2008-01-01T00:00:00Z\t\tA\t\tB\nuser_000001\t2008-01-01T00:00:01Z\t\tA\t\tC"
    )
    result = ingest(resolve_raw(path), tmp_path / "r.jsonl", progress=False)
    assert result.plays.height == 2
    assert result.users["gender"].to_list() == [None]  # no profile file next to it: attributes null


def test_profiles_header_empty_fields_and_dates():
    data = "#id\tgender\tage\tcountry\tregistered\nuser_2\t\t31\t\t\nuser_1\tf\t\tIceland\tAug 13, 2006\nbad\tline\n"
    frame, rejects = parse_profiles(data.encode())
    assert frame.to_dicts() == [
        {"user_id": "user_1", "gender": "f", "age": None, "country": "Iceland", "signup": date(2006, 8, 13)},
        {"user_id": "user_2", "gender": None, "age": 31, "country": None, "signup": None},
    ]
    assert [(r["line"], r["reason"]) for r in rejects] == [(4, "wrong_field_count")]


def test_folder_without_profile_and_plays_file_alone(tmp_path):
    paths = write_fixture(tmp_path / "x", profile=False)
    assert resolve_raw(paths["folder"]).profile is None
    assert resolve_raw(paths["plays"]).kind == "file"


def _play(i: int) -> bytes:
    return f"user_000001\t2008-01-01T00:00:{i:02d}Z\t\tArtist\t\tTrack {i}".encode()


SHORT = b"user_000001\t2008-01-01T00:00:00Z\t\tFive Fields\tOnly"
LONG = b"user_000001\t2008-01-01T00:00:00Z\t\tSeven\t\tFields\textra"


@pytest.mark.parametrize(
    "bad",
    [
        {0: SHORT},
        {2: SHORT},
        {4: SHORT},
        {0: LONG},
        {2: LONG},
        {4: LONG},
        {0: SHORT, 2: LONG},  # five fields then seven: the tabs still average five per line
        {0: LONG, 2: SHORT},
        {0: SHORT, 4: LONG},
        {4: SHORT, 0: LONG},
        {1: SHORT, 2: LONG},
        {3: LONG, 4: SHORT},
    ],
)
def test_a_bad_line_anywhere_in_a_block_is_quarantined(tmp_path, bad):
    lines = [bad.get(i, _play(i)) for i in range(5)]
    path = tmp_path / PLAYS_NAME
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest(resolve_raw(path), tmp_path / "r.jsonl", progress=False)
    rejects = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["line"]: r["reason"] for r in rejects} == {i + 1: "wrong_field_count" for i in bad}
    assert sorted(result.plays["line"].to_list()) == [i + 1 for i in range(5) if i not in bad]


def test_cli_quarantines_a_five_and_a_seven_field_line(fixture_raw, tmp_path):
    from conftest import T0, build_fixture, stamp

    # Valid plays of two users, one session each hour, newest first; then the two bad lines.
    plays = [
        f"user_00000{u}\t{stamp(T0 + 3600 * k)}\t\tArtist\t\tTrack {u}-{k}".encode()
        for u in (1, 2)
        for k in reversed(range(12))
    ]
    fixture_raw["plays"].write_bytes(b"\n".join([SHORT, plays[0], LONG, *plays[1:]]) + b"\n")
    out = tmp_path / "out"
    result = build_fixture(fixture_raw, out)
    assert result.returncode == 0, result.stderr
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert {r["line"]: r["reason"] for r in rejects} == {1: "wrong_field_count", 3: "wrong_field_count"}
