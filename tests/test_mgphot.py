"""MGPHot: the gene list, the sample's mgphot config, the local LLM annotator, the http backend
against a real `transformers serve` server, the answer cache (resume, shards) and validate-mgphot."""

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import soundfile

import mmbench
import mmbench.layout
from conftest import NO_FILTERS, run_cli
from mmbench.builders import mgphot
from mmbench.errors import MmbenchError
from mmbench.schema import MGPHOT_GENES

NAMES = [g[0] for g in MGPHOT_GENES]
SONGS = [mgphot.Song(f"t{i:016x}", f"Artist {i}", f"Song {i}", "love " * i or None) for i in range(6)]


def test_genes_are_the_reference_list_in_order():
    with (Path(__file__).parent / "data" / "mgphot_genes.tsv").open() as f:
        reference = [(r["name"], r["category"]) for r in csv.DictReader(f, delimiter="\t")]
    assert [(g[0], g[1]) for g in MGPHOT_GENES] == reference and len(reference) == 58
    assert all(g[2] and g[3] and g[2] != g[3] for g in MGPHOT_GENES)  # every scale has two poles


def test_sample_mgphot_config(sample_build):
    ds = datasets.load_dataset(str(sample_build), "mgphot", split="catalog")
    genes = np.asarray(ds["genes"], dtype=np.float64)
    report = json.loads((sample_build / "build_report.json").read_text())["content"]["mgphot"]
    assert genes.shape == (report["annotated"], 58) and report["annotated"] == 24
    assert np.isfinite(genes).all() and genes.min() >= 0 and genes.max() <= 1
    assert (genes.max(axis=0) > genes.min(axis=0)).all()  # no constant gene
    assert set(ds["annotator"]) == {"local:SmolLM2-135M-Instruct"}
    # The annotated tracks are the most played ones.
    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_polars()
    top = tracks.sort(["n_plays_train", "track_id"], descending=[True, False]).head(24)["track_id"]
    assert sorted(ds["track_id"]) == sorted(top.to_list())


def test_the_published_mgphot_config_names_its_genes(sample_build):
    """Without this package: the parquet field metadata and the card name every gene in order."""
    (path,) = (sample_build / "data" / "mgphot").glob("*.parquet")
    field = pq.read_schema(path).field("genes")
    described = json.loads(field.metadata[b"mgphot_genes"])
    reference = (Path(__file__).parent / "data" / "mgphot_genes.tsv").read_text().splitlines()[1:]
    assert [(g["index"], g["name"], g["category"]) for g in described] == [
        (int(i), name, category) for i, name, category in (line.split("\t") for line in reference)
    ]
    assert all(g["0"] and g["1"] for g in described)
    card = (sample_build / "README.md").read_text(encoding="utf-8")
    table = card.split("### The `mgphot` genes", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 58
    for row, gene in zip(rows, described, strict=True):
        assert row == f"| {gene['index']} | {gene['name']} | {gene['category']} | {gene['0']} | {gene['1']} |"


@pytest.fixture(scope="module")
def local():
    return mgphot.make_annotator("local", device="cpu")


@pytest.mark.llm
def test_local_annotator_reads_digit_probabilities(local):
    first = local.rate(SONGS[3])
    assert first.shape == (58,) and ((first >= 0) & (first <= 1)).all()
    np.testing.assert_array_equal(first, local.rate(SONGS[3]))  # deterministic
    assert not np.allclose(first, local.rate(mgphot.Song("x", "Slayer", "Angel of Death", "war death blood")))
    assert len(local.digits) == 6 and len(set(local.digits)) == 6


@pytest.mark.llm
def test_cached_prefix_equals_plain_forward_passes_of_the_full_prompts(local):
    """rate() reads the prompt once and the 58 questions in padded batches on its cached keys and
    values; the first 12 values (three batches of 5, one short) must equal one plain forward
    pass of prompt + question each."""
    import torch

    song = SONGS[2]
    rated = local.rate(song)
    prefix = local._prefix(song)
    expected = np.empty(12)  # the first 12 genes: 3 batches of 5 below, one of them short
    with torch.no_grad():
        for g, question in enumerate(local.questions[:12]):
            ids = prefix + question  # the question's token ids
            logits = local.model(torch.tensor([ids])).logits[0, -1, local.digits].float()
            expected[g] = float((logits.softmax(-1) * torch.arange(6)).sum() / 5)
    np.testing.assert_allclose(rated[:12], expected, atol=2e-5)
    batch = local.batch_genes
    try:  # batches of 5 questions of different lengths: the padding must not change a value
        local.batch_genes = 5
        np.testing.assert_allclose(local.rate(song)[:12], expected, atol=2e-5)
    finally:
        local.batch_genes = batch


def test_http_request_asks_for_schema_constrained_json():
    annotator = mgphot.make_annotator("http", model="qwen", url="http://127.0.0.1:9/v1")
    body = annotator.request(SONGS[1])
    assert body["temperature"] == 0
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == NAMES and schema["properties"]["Tempo"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 5,
    }
    assert "Song 1" in body["messages"][1]["content"] and "love" in body["messages"][1]["content"]


def test_http_answers_are_validated():
    annotator = mgphot.HttpAnnotator("http://127.0.0.1:9/v1", "m")

    def answer(content: str) -> dict:
        return {"choices": [{"message": {"content": content}}]}

    assert annotator.validate(answer(json.dumps({n: 5 for n in NAMES}))).tolist() == [1.0] * 58
    with pytest.raises(ValueError, match="'Tempo': expected an integer 0-5, got 9"):
        annotator.validate(answer(json.dumps({**{n: 3 for n in NAMES}, "Tempo": 9})))
    with pytest.raises(ValueError, match="not a chat completion with JSON content"):
        annotator.validate(answer("not json"))


def test_http_backend_against_a_real_server(llm_server):
    """`transformers serve` accepts the request but not its JSON schema, so the small model's
    free text is retried, then refused with the reason; a model the server does not serve is a
    refused request (HTTP 400), not retried; a server that cannot be reached is retried."""
    annotator = mgphot.HttpAnnotator(
        llm_server["url"], llm_server["model"], max_tokens=16, requests_per_second=0, retries=1
    )
    with pytest.raises(MmbenchError, match=r"no valid answer for track t0+ after 2 tries: "):
        annotator.rate(SONGS[0])
    refused = mgphot.HttpAnnotator(llm_server["url"], "no/such-model", requests_per_second=0, retries=3)
    with pytest.raises(MmbenchError, match="after 1 tries: HTTP 400"):
        refused.rate(SONGS[0])
    unreachable = mgphot.HttpAnnotator("http://127.0.0.1:9/v1", "m", requests_per_second=0, retries=1)
    with pytest.raises(MmbenchError, match="after 2 tries: .*Connection refused"):
        unreachable.rate(SONGS[0])


def test_cache_reads_its_first_format_and_drops_broken_rows(tmp_path):
    folder = tmp_path / mgphot.cache_key("local:m")
    folder.mkdir()
    legacy = {"track_id": "t1", "input": mgphot.prompt_digest(SONGS[1]), "genes": [0.2] * 58}
    broken = {"key": "t2", "input": "x", "value": [0.1] * 3}
    (folder / "main.jsonl").write_text(json.dumps(legacy) + "\n" + json.dumps(broken) + "\n")
    cache = mgphot.answer_cache(tmp_path, "local:m")
    assert cache.values == {"t1": [0.2] * 58} and cache.has("t1", mgphot.prompt_digest(SONGS[1]))


@pytest.mark.llm
def test_cache_resumes_and_shards_merge(local, tmp_path):
    cache = mgphot.answer_cache(tmp_path, local.name)
    run = mgphot.annotate(local, SONGS, cache, progress=False)
    assert [next(run), next(run)] == [SONGS[0].track_id, SONGS[1].track_id]  # then "killed"
    with cache.path.open("a") as f:
        f.write('{"key": "t2", "input": "x", "value": [0.1, ')  # a line cut by the kill
    resumed = mgphot.answer_cache(tmp_path, local.name)
    assert set(resumed.values) == {SONGS[0].track_id, SONGS[1].track_id}
    assert list(mgphot.annotate(local, SONGS, resumed, shard=(0, 2), progress=False)) == [
        SONGS[2].track_id,
        SONGS[4].track_id,
    ]
    other = mgphot.answer_cache(tmp_path, local.name, shard="shard-1-of-2")
    assert list(mgphot.annotate(local, SONGS, other, shard=(1, 2), progress=False)) == [
        SONGS[3].track_id,
        SONGS[5].track_id,
    ]
    answers = [
        x for f in cache.path.parent.glob("*.jsonl") for x in f.read_text().splitlines() if x.endswith("}")
    ]
    assert len(answers) == 6  # every song asked exactly once
    merged = mgphot.answer_cache(tmp_path, local.name)
    assert set(merged.values) == {s.track_id for s in SONGS}
    assert mgphot.answer_cache(tmp_path, "http:other").values == {}  # keyed by model
    # An answer counts only for the prompt it came from: new lyrics, new question.
    changed = mgphot.Song(SONGS[2].track_id, SONGS[2].artist_name, SONGS[2].track_name, "new words")
    assert list(mgphot.annotate(local, [changed, *SONGS[3:]], merged, progress=False)) == [changed.track_id]


def test_validate_mgphot_reports_mae_and_spearman(sample_build, tmp_path):
    annotations = mmbench.load("mgphot", "catalog", source=sample_build).to_polars()
    genes = np.stack(annotations["genes"].to_numpy()).astype(np.float64)
    truth = np.clip(genes[:, :] * 0.5 + 0.1, 0, 1)  # a monotone transform: Spearman 1 where values vary
    truth[:, 9] = np.linspace(0, 1, len(truth))  # Tempo: an arbitrary truth
    rows = [
        {"track_id": t, **{n: float(v) for n, v in zip(NAMES, row, strict=True)}}
        for t, row in zip(annotations["track_id"], truth, strict=True)
    ]
    path = tmp_path / "truth.csv"
    pl.DataFrame(rows).write_csv(path)
    out = tmp_path / "v.json"
    result = run_cli(
        "validate-mgphot", "--ground-truth", str(path), "--dataset", str(sample_build), "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["tracks"] == len(truth)
    tempo = report["genes"][9]
    assert tempo["gene"] == "Tempo"
    assert tempo["mae"] == pytest.approx(np.abs(truth[:, 9] - genes[:, 9]).mean())
    ranks = lambda x: np.argsort(np.argsort(x))  # noqa: E731 - no ties in these values
    assert tempo["spearman"] == pytest.approx(np.corrcoef(ranks(truth[:, 9]), ranks(genes[:, 9]))[0, 1])
    assert report["genes"][0]["spearman"] == pytest.approx(1.0)


def test_validate_mgphot_bad_ground_truth(sample_build, tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("track_id," + ",".join(NAMES) + "\nt1," + ",".join(["0.5"] * 57) + ",7\n")
    result = run_cli("validate-mgphot", "--ground-truth", str(path), "--dataset", str(sample_build))
    assert result.returncode == 2 and "line 2: every gene value must be a number in [0, 1]" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_build_keeps_its_caches_and_resumes(fixture_raw, llm_server, tmp_path):
    soundfile.write(
        tmp_path / "a.wav", np.random.default_rng(0).standard_normal(22050).astype(np.float32), 22050
    )
    (tmp_path / "audio.csv").write_text("artist_name,track_name,path\nBjörk,Hyperballad,a.wav\n")
    out = tmp_path / "out"
    args = [
        "build", "--raw", str(fixture_raw["folder"]), "--out", str(out), "--audio-manifest",
        str(tmp_path / "audio.csv"), "--annotate-mgphot",
        "--set", "instances.paper_sampled_negatives=2", *[a for item in NO_FILTERS for a in ("--set", item)],
    ]  # fmt: skip
    # The real server refuses a model it does not serve: the build stops after the audio stage.
    refused = [
        "--mgphot-backend",
        "http",
        "--mgphot-model",
        "no/such-model",
        "--mgphot-url",
        llm_server["url"],
    ]
    result = run_cli(*args, *refused)
    assert result.returncode == 2 and "HTTP 400" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "data").exists() and (out / ".build" / "embedding-cache").is_dir()
    # Only the cache stays (the MGPHot answers live in the session-wide MMBENCH_MGPHOT_CACHE here).
    assert sorted(p.name for p in (out / ".build").iterdir()) == ["embedding-cache"]
    cached = {p: p.stat().st_mtime_ns for p in (out / ".build" / "embedding-cache").rglob("*") if p.is_file()}
    result = run_cli(*args, "--mgphot-backend", "local", "--mgphot-limit", "2")
    assert result.returncode == 0, result.stderr
    assert {"audio-mfcc", "mgphot"} <= set(mmbench.layout.configs(out))
    assert cached and all(p.stat().st_mtime_ns == t for p, t in cached.items()), (
        "the audio was embedded again"
    )
