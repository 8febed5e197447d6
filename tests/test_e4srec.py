"""The e4srec baseline on the tiny random backbone: the prompt, fusions, completion modes, the
tied head, determinism, reload, settings errors and two processes under accelerate launch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import run_cli
from mmbench.baselines import e4srec, runner, training
from mmbench.baselines.data import Benchmark
from mmbench.baselines.fusion import FUSIONS, ItemFusion
from mmbench.errors import MmbenchError

# Every test here runs a language model's code (the tiny random backbone or the packaged one).
pytestmark = pytest.mark.llm

TINY = ["backbone=tiny", "max_len=12", "fusion_dim=16", "lora_r=4", "lora_alpha=8", "batch_size=64"]


def config(**changes) -> e4srec.Settings:
    return runner.model_config("e4srec", TINY).replace(**changes)


@pytest.fixture(scope="module")
def id_encoder(sample_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e4srec") / "sasrec"
    return runner.train("sasrec", sample_build, ["epochs=1", "dim=16", "layers=1"], out, progress=False)


@pytest.fixture(scope="module")
def trained(sample_build, id_encoder, tmp_path_factory) -> Path:
    """A tiny e4srec with content, completion embedded and the tied head, trained by the CLI in
    batches of 256 x 12 items: enough items that a multi-core CPU's backward of an index lookup
    sums repeated items' gradients in parallel, which the determinism test below needs."""
    out = tmp_path_factory.mktemp("e4srec") / "tied"
    args = ["baseline", "train", "e4srec", "--dataset", str(sample_build), "--out", str(out), "--quiet"]
    for item in [*TINY, f"id_encoder={id_encoder}", 'content=["audio-mfcc", "lyrics-minilm"]',
                 "head=tied", "completion=embed", "epochs=1",
                 "batch_size=256"]:  # fmt: skip
        args += ["--set", item]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return out


def capture_inputs(model: torch.nn.Module) -> list[dict]:
    """Record the keyword inputs of every backbone call."""
    calls: list[dict] = []
    model.backbone.register_forward_pre_hook(lambda m, a, kw: calls.append(kw), with_kwargs=True)
    return calls


def test_the_instruction_is_whole_and_the_history_is_cut_from_the_oldest_end(sample_build, id_encoder):
    data = Benchmark(sample_build)
    settings = config(id_encoder=str(id_encoder), max_len=5)
    model = e4srec.build(len(data.track_ids), settings, data).eval()
    calls = capture_inputs(model)
    ids, seqs, _, _ = training.instance_sequences(data, "next-track", "test", 5)
    long = [i for i, row in enumerate(seqs) if (row > 0).all()]  # histories longer than 5 items
    assert long
    _, full, _, _ = training.instance_sequences(data, "next-track", "test", 40)
    assert (seqs[long] == full[long][:, -5:]).all()  # the last 5 items, the oldest dropped
    with torch.no_grad():
        model(torch.as_tensor(seqs[long]))
    x, mask = calls[0]["inputs_embeds"], calls[0]["attention_mask"]
    tokenizer_ids = model.instruction.tolist()
    assert len(tokenizer_ids) > 10 and x.shape[1] == len(tokenizer_ids) + 5
    embed = model.backbone.get_input_embeddings()
    assert torch.equal(x[:, : len(tokenizer_ids)], embed(model.instruction)[None].expand(len(long), -1, -1))
    assert mask.all()


def test_padding_items_are_masked_and_do_not_change_the_query(sample_build, id_encoder):
    data = Benchmark(sample_build)
    model = e4srec.build(len(data.track_ids), config(id_encoder=str(id_encoder)), data).eval()
    calls = capture_inputs(model)
    items = torch.tensor([[5, 9, 14]])
    padded = torch.tensor([[0, 0, 0, 0, 5, 9, 14]])
    with torch.no_grad():
        short, padded_query = model(items)[0], model(padded)[0]
    torch.testing.assert_close(short, padded_query, rtol=1e-5, atol=1e-5)
    instruction = len(model.instruction)
    mask, positions = calls[1]["attention_mask"][0], calls[1]["position_ids"][0]
    assert mask[instruction : instruction + 4].tolist() == [0] * 4 and mask[-3:].tolist() == [1] * 3
    assert positions[-3:].tolist() == [instruction, instruction + 1, instruction + 2]


@pytest.mark.parametrize("kind", FUSIONS)
def test_each_fusion_gives_one_vector_per_item_and_learns_from_every_part(kind):
    torch.manual_seed(0)
    fusion = ItemFusion(kind, parts=3, dim=8, heads=2)
    parts = [torch.randn(4, 5, 8, requires_grad=True) for _ in range(3)]
    assert fusion(parts).shape == (4, 5, 8)
    optimizer = torch.optim.SGD(fusion.parameters(), lr=0.1)
    for _ in range(2):  # FiLM starts as the identity: its content gradient appears after a step
        optimizer.zero_grad()
        for p in parts:
            p.grad = None
        fusion(parts).pow(2).sum().backward()
        optimizer.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in parts)
    assert all(p.grad.abs().sum() > 0 for p in fusion.parameters())


def test_completion_modes(sample_build, id_encoder):
    data = Benchmark(sample_build)
    codes = torch.tensor([[0, 5, 9, 14]])
    buckets = torch.tensor([[0, 3, 12, 1]])
    changed = torch.tensor([[0, 3, 12, 7]])  # only the last play's completion differs
    queries = {}
    for mode in e4srec.COMPLETIONS:
        settings = config(id_encoder=str(id_encoder), completion=mode)
        torch.manual_seed(0)
        model = e4srec.build(len(data.track_ids), settings, data).eval()
        calls = capture_inputs(model)
        if mode == "embed":
            with torch.no_grad():
                model.completion_embedding.weight.normal_()  # trained vectors, not the zero start
        seqs = [codes] if mode == "none" else [torch.stack([codes, b], 1) for b in (buckets, changed)]
        with torch.no_grad():
            queries[mode] = [model(s)[0] for s in seqs]
        assert e4srec.channels(settings) == (("code",) if mode == "none" else ("code", "completion"))
        length = calls[0]["inputs_embeds"].shape[1] - len(model.instruction)
        if mode == "prompt":
            width = model.completion_ids.shape[1]
            assert length == 4 * (1 + width)
            mask = calls[0]["attention_mask"][0, len(model.instruction) :].reshape(4, 1 + width)
            assert mask[0].sum() == 0  # a padding item and its text are hidden
            text = model.completion_mask[buckets[0, 1:]].sum(1)
            assert mask[1:].sum(1).tolist() == (1 + text).tolist()
        else:
            assert length == 4
    for mode in ("prompt", "embed"):
        assert not torch.allclose(*queries[mode])
    texts = e4srec.completion_texts(model_tokenizer())
    assert texts[1][0].sum() == 0 and texts[1][1:].all(dim=0).any()


def test_a_windows_last_completion_ratio_never_reaches_the_model(sample_build, id_encoder):
    """The target's own play (its ratio is known only after it) is never an input."""
    data = Benchmark(sample_build)
    for mode in ("prompt", "embed"):
        settings = config(id_encoder=str(id_encoder), completion=mode)
        model = e4srec.build(len(data.track_ids), settings, data).eval()
        if mode == "embed":
            with torch.no_grad():
                model.completion_embedding.weight.normal_()
        window = torch.tensor([[[0, 5, 9, 14, 20], [0, 3, 12, 1, 4]]])
        other = window.clone()
        other[0, 1, -1] = 11
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            hidden, targets, _ = model(window, generator)
            torch.testing.assert_close(model(other, generator)[0], hidden, rtol=0, atol=0)
            other[0, 1, 2] = 7  # an input play's ratio does count, from its position on
            changed = model(other, generator)[0]
        assert torch.equal(changed[:, :2], hidden[:, :2]) and not torch.allclose(
            changed[:, 2:], hidden[:, 2:]
        )
        assert targets.tolist() == [[0, 9, 14, 20]]


def test_item_text_precedes_the_last_items_only(sample_build, id_encoder):
    """With item_text, each of the last text_items items is preceded by " artist - title:";
    older items are tokens alone, and their names cannot reach the model."""
    data = Benchmark(sample_build)
    settings = config(id_encoder=str(id_encoder), item_text=True, text_items=2, text_tokens=6)
    model = e4srec.build(len(data.track_ids), settings, data).eval()
    calls = capture_inputs(model)
    codes = torch.tensor([[0, 5, 9, 14]])
    with torch.no_grad():
        query = model(codes)[0]
    width = model.text_ids.shape[1]
    assert width == 6
    length = calls[0]["inputs_embeds"].shape[1] - len(model.instruction)
    assert length == 2 + 2 * (width + 1)  # two plain positions, two with their text
    mask = calls[0]["attention_mask"][0, len(model.instruction) :]
    assert mask[:2].tolist() == [0, 1]  # padding hidden, item 5 alone
    track = data.tracks.row(13, named=True)  # item 14
    text = model_tokenizer().encode(
        f" {track['artist_name']} - {track['track_name']}:", add_special_tokens=False
    )
    last = model.text_ids[14][model.text_mask[14]].tolist()
    assert last == text[:6] and mask[-(width + 1) :].sum() == len(last) + 1
    with torch.no_grad():
        original = model.text_ids.clone()
        model.text_ids[5] = model.text_ids[200]  # an older item's name: not read
        torch.testing.assert_close(model(codes)[0], query, rtol=0, atol=0)
        model.text_ids[14] = model.text_ids[200]  # the last item's name: read
        assert not torch.allclose(model(codes)[0], query)
        model.text_ids.copy_(original)


def test_the_controls_random_weights_and_no_lora(sample_build, id_encoder):
    """weights=random: the backbone's shape, other (seeded) weights; lora=false: nothing in the
    backbone trains."""
    base = config(id_encoder=str(id_encoder), backbone="smollm2-135m")
    pretrained, _ = e4srec.load_backbone(base)
    random_a, _ = e4srec.load_backbone(base.replace(weights="random"))
    random_b, _ = e4srec.load_backbone(base.replace(weights="random"))
    shapes = {k: v.shape for k, v in pretrained.base_model.model.state_dict().items()}
    weights_a = random_a.base_model.model.state_dict()
    assert {k: v.shape for k, v in weights_a.items()} == shapes
    name = "layers.0.self_attn.q_proj.base_layer.weight"
    assert not torch.allclose(weights_a[name], pretrained.base_model.model.state_dict()[name])
    assert torch.equal(weights_a[name], random_b.base_model.model.state_dict()[name])
    frozen, _ = e4srec.load_backbone(base.replace(lora=False))
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not any("lora" in n for n, _ in frozen.named_parameters())


def test_the_instruction_follows_the_chat_template_when_asked():
    tokenizer = model_tokenizer()
    with_template = e4srec.instruction_ids(tokenizer, config())
    plain = e4srec.instruction_ids(tokenizer, config(chat_template=False))
    assert plain == tokenizer.encode(config().instruction)
    text = tokenizer.decode(with_template)
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert config().instruction in text


def model_tokenizer():
    from transformers import AutoTokenizer

    from mmbench.llm import packaged_llm

    location, options = packaged_llm("test")
    return AutoTokenizer.from_pretrained(location, **options)


def test_the_tied_head_ranks_a_cold_track_by_its_content(sample_build, id_encoder):
    data = Benchmark(sample_build)
    plays = data.tracks["n_plays_train"].to_numpy()
    cold = int(np.flatnonzero(plays == 0)[0]) + 1
    for head in e4srec.HEADS:
        settings = config(id_encoder=str(id_encoder), head=head, content=["audio-mfcc", "lyrics-minilm"])
        torch.manual_seed(0)
        model = e4srec.build(len(data.track_ids), settings, data).eval()
        with torch.no_grad():
            before = model.item_table()[cold].clone()
            for i in range(len(model.names)):
                getattr(model, f"feature_{i}")[cold, :-1] += 1.0  # other audio and lyrics
            after = model.item_table()[cold]
        assert torch.equal(before, after) == (head == "linear"), head
    assert model.trainable.sum() == (plays > 0).sum()  # tied: trained against played tracks only


def test_training_is_deterministic_and_the_folder_reloads_to_the_same_rankings(
    sample_build, trained, tmp_path
):
    record = json.loads((trained / "config.json").read_text())
    assert record["config"]["head"] == "tied"
    assert record["backbone_source"].startswith("a randomly initialised two-layer Llama")
    saved = load_file(trained / "model.safetensors")
    sasrec_table = load_file(Path(record["config"]["id_encoder"]) / "item_embeddings.safetensors")
    assert torch.equal(saved["id_table"][1:], sasrec_table["embedding"])  # the folder keeps its copy
    assert any("lora_A" in k for k in saved) and not any(
        "base_layer" in k or "embed_tokens" in k for k in saved
    )
    again = runner.train("e4srec", sample_build, record_overrides(record), tmp_path / "again", progress=False)
    assert (again / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    data = Benchmark(sample_build)
    settings = e4srec.Settings.model_validate(record["config"])
    model = e4srec.build(len(data.track_ids), settings, data, trained)
    training.load_weights(model, trained)
    exported = load_file(trained / "item_embeddings.safetensors")["embedding"]
    with torch.no_grad():
        torch.testing.assert_close(model.eval().item_table()[1:], exported)
    # The reloaded model is the trained one: its validation score is the best epoch's.
    best = record["training"]["epochs"][record["training"]["best_epoch"] - 1]["validation_ndcg@10"]
    channels = e4srec.channels(settings)
    score = training.validation_scorer(data, settings.max_len, channels)(model)
    assert score == pytest.approx(best, abs=1e-9)
    for task in ("next-track", "paper-sampled"):
        paths = [tmp_path / f"{task}-{i}.jsonl" for i in range(2)]
        for path in paths:
            result = run_cli(
                "baseline", "predict", str(trained), "--task", task, "--out", str(path), "--quiet"
            )
            assert result.returncode == 0, result.stderr
        assert paths[0].read_bytes() == paths[1].read_bytes()
        report = tmp_path / f"{task}.json"
        result = run_cli("evaluate", str(paths[0]), "--dataset", str(sample_build), "--task", task, "--json", str(report))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(report.read_text())["n_predicted"] == len(paths[0].read_text().splitlines())


def record_overrides(record: dict) -> list[str]:
    """The trained folder's settings as --set items."""
    return [f"{k}={json.dumps(v)}" for k, v in record["config"].items() if k != "description"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "backbone=no-such/model-anywhere",
            "e4srec backbone 'no-such/model-anywhere': cannot load no-such/model-anywhere",
        ),
        ("id_encoder=/nonexistent/sasrec", "expected a folder written by `mmbench baseline train`"),
        ("quantization=nf4", "quantization nf4 (QLoRA) needs a CUDA device"),
        ('content=["audio-clap"]', "content config 'audio-clap'"),
        ("head=bilinear", "e4srec hyperparameters: head: Input should be 'linear' or 'tied', got 'bilinear'"),
    ],
)
def test_bad_settings_are_one_line_errors(sample_build, id_encoder, tmp_path, setting, message):
    args = ["baseline", "train", "e4srec", "--dataset", str(sample_build), "--out", str(tmp_path / "m")]
    for item in [*TINY, f"id_encoder={id_encoder}", setting, "device=cpu"]:
        args += ["--set", item]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_id_encoder_from_another_catalogue_is_refused(sample_build, id_encoder, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(id_encoder, other)
    table = load_file(other / "item_embeddings.safetensors")
    save_file(table, other / "item_embeddings.safetensors", metadata={"catalogue_digest": "0" * 64})
    with pytest.raises(MmbenchError, match="trained on another catalogue"):
        e4srec.id_encoder_table(config(id_encoder=str(other)), Benchmark(sample_build))


@pytest.mark.slow
def test_two_processes_under_accelerate_train_the_same_model_as_one(sample_build, id_encoder, tmp_path):
    settings = [
        *TINY,
        f"id_encoder={id_encoder}",
        "lora_dropout=0",
        "epochs=1",
        "batch_size=32",
        "device=cpu",
    ]
    mmbench = str(Path(sys.executable).with_name("mmbench"))
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    folders, losses = {}, {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        command = [mmbench] if processes == 1 else [
            accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", mmbench,
        ]  # fmt: skip
        command += [
            "baseline",
            "train",
            "e4srec",
            "--dataset",
            str(sample_build),
            "--out",
            str(out),
            "--quiet",
        ]
        for item in settings:
            command += ["--set", item]
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        record = json.loads((out / "config.json").read_text())["training"]["epochs"][0]
        folders[processes] = load_file(out / "model.safetensors")
        losses[processes] = (record["loss"], record["validation_ndcg@10"])
    # The loss recorded is the whole batch's mean in both: a wrong weighting of the processes'
    # shares would show here even where AdamW's scale invariance hides it in the weights.
    assert losses[2] == pytest.approx(losses[1], rel=1e-4)
    one, two = folders[1], folders[2]
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=1e-5, msg=name)
    assert any(not torch.equal(one[k], torch.zeros_like(one[k])) for k in one if "lora_B" in k)  # it trained
