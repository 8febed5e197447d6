"""The neural baselines: model invariants, the shared loop's losses, overfitting, checkpoints."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch.optim.optimizer import register_optimizer_step_pre_hook

from conftest import run_cli
from mmbench.baselines import bert4rec, gru4rec, sasrec, training
from mmbench.baselines.data import Benchmark, instance_inputs
from mmbench.baselines.runner import model_config

N_ITEMS = 10
TINY = {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.0, "max_len": 12, "mask_probability": 0.3}
MODELS = {"sasrec": sasrec, "bert4rec": bert4rec, "gru4rec": gru4rec}


def tiny_settings(name: str, **changes):
    """The model's defaults with TINY's values for the fields it has, and ``changes``."""
    config = model_config(name)
    return config.replace(**{k: v for k, v in TINY.items() if k in type(config).model_fields}, **changes)


def tiny(name: str, n_items: int = N_ITEMS) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS[name].build(n_items, tiny_settings(name)).eval()


def random_seqs(rows: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, N_ITEMS + 1, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_sasrec_is_causal():
    model, seqs = tiny("sasrec"), random_seqs(4, 12)
    before = model.encode(seqs)
    for t in (0, 5, 10):
        changed = seqs.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] % N_ITEMS) + 1
        after = model.encode(changed)
        torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1])
        assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])


def test_bert4rec_is_bidirectional():
    model, seqs = tiny("bert4rec"), random_seqs(4, 12)
    changed = seqs.clone()
    changed[:, -1] = (changed[:, -1] % N_ITEMS) + 1
    assert not torch.allclose(model.encode(changed)[:, 0], model.encode(seqs)[:, 0])


@pytest.mark.parametrize("name", MODELS)
def test_padding_does_not_change_the_query(name):
    model = tiny(name)
    seqs = random_seqs(3, 7)
    padded = torch.cat([torch.zeros(3, 5, dtype=torch.long), seqs], dim=1)
    torch.testing.assert_close(model.query(padded), model.query(seqs))
    # Rows of different lengths in one batch: each row as if alone.
    mixed = padded.clone()
    mixed[1, :9] = 0
    torch.testing.assert_close(model.query(mixed)[1], model.query(mixed[1:2, 9:])[0])


def test_bert4rec_cloze_masks_only_real_items():
    model = tiny("bert4rec")
    seqs = random_seqs(64, 12)
    seqs[:, :4] = 0
    inputs, targets = model.cloze(seqs, torch.Generator().manual_seed(0))
    masked = inputs == model.mask_id
    assert masked.any(dim=1).all()  # every sequence has something to predict
    assert not masked[:, :4].any()  # padding is never masked
    assert torch.equal(targets[masked], seqs[masked]) and (targets[~masked] == 0).all()
    assert torch.equal(inputs[~masked], seqs[~masked])
    share = masked[:, 4:].float().mean().item()
    assert 0.2 < share < 0.4  # mask_probability = 0.3
    # Prediction appends one mask to the last max_len - 1 items.
    assert model.query(random_seqs(2, 30)).shape == (2, TINY["dim"])


@pytest.mark.parametrize("name", MODELS)
def test_padding_and_mask_are_never_predicted(name):
    model = tiny(name)
    with torch.no_grad():
        model.items.weight[0] = 1e4  # would win every ranking if it were scored
        if name == "bert4rec":
            model.items.weight[model.mask_id] = 1e4
    best = training.top_items(model, random_seqs(8, 12), N_ITEMS)
    assert best.min() >= 1 and best.max() <= N_ITEMS
    assert sorted(best[0].tolist()) == list(range(1, N_ITEMS + 1))


@pytest.mark.parametrize("name", MODELS)
def test_each_model_overfits_a_deterministic_sequence(name):
    # Item i is always followed by item i % N + 1: a perfect model predicts every next item.
    start = np.arange(40) % N_ITEMS
    windows = (start[:, None] + np.arange(TINY["max_len"] + 1)[None, :]) % N_ITEMS + 1
    windows[::3, :4] = 0  # some padded windows
    model = tiny(name).train()
    config = tiny_settings(name, epochs=150, batch_size=16, learning_rate=0.01, weight_decay=0.0)
    training.fit(model, windows, config, validate=None, progress=False)
    model.eval()
    prefixes = torch.as_tensor(windows[:, :-1])
    best = training.top_items(model, prefixes, 1)[:, 0]
    accuracy = (best == torch.as_tensor(windows[:, -1])).float().mean().item()
    assert accuracy >= 0.95


def test_sampled_softmax_training_learns_and_draws_only_allowed_items():
    start = np.arange(40) % N_ITEMS
    windows = (start[:, None] + np.arange(TINY["max_len"] + 1)[None, :]) % N_ITEMS + 1
    model = tiny("sasrec").train()
    config = tiny_settings(
        "sasrec", loss="sampled", negatives=4, epochs=150, batch_size=16, learning_rate=0.01, weight_decay=0.0
    )
    training.fit(model, windows, config, validate=None, progress=False)
    model.eval()
    best = training.top_items(model, torch.as_tensor(windows[:, :-1]), 1)[:, 0]
    assert (best == torch.as_tensor(windows[:, -1])).float().mean().item() >= 0.95
    # With only item 2 allowed, every negative is item 2.
    hidden, table = torch.randn(1, 1, 4), torch.randn(N_ITEMS + 1, 4)
    allowed = torch.zeros(N_ITEMS, dtype=torch.bool)
    allowed[1] = True
    loss = training.sampled_softmax_loss(
        hidden, table, torch.tensor([[1]]), 3, torch.Generator().manual_seed(0), allowed
    )
    pos, neg = hidden[0, 0] @ table[1], hidden[0, 0] @ table[2]
    torch.testing.assert_close(loss, -pos + torch.logsumexp(torch.stack([pos, neg, neg, neg]), 0))


def test_sampled_softmax_gradients_are_the_same_bits_on_every_pass():
    # Thousands of rows looked up from 200 items: enough repeats for a multi-core CPU to sum an
    # index lookup's gradients in parallel, in an order that changed from pass to pass.
    torch.manual_seed(0)
    hidden, targets = torch.randn(64, 40, 16), torch.randint(1, 201, (64, 40))
    table = torch.randn(201, 16, requires_grad=True)
    gradients = set()
    for _ in range(10):
        table.grad = None
        training.sampled_softmax_loss(
            hidden, table, targets, 4096, torch.Generator().manual_seed(0)
        ).backward()
        gradients.add(table.grad.numpy().tobytes())
    assert len(gradients) == 1


def test_chunked_full_softmax_equals_plain_cross_entropy(monkeypatch):
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 8, requires_grad=True)
    table = torch.randn(N_ITEMS + 1, 8, requires_grad=True)
    targets = torch.randint(0, N_ITEMS + 1, (3, 5))
    targets[0, 0] = 1
    keep = targets > 0
    expected = F.cross_entropy(hidden[keep] @ table[1:].T, targets[keep] - 1)
    grads = torch.autograd.grad(expected, (hidden, table))
    monkeypatch.setattr(training, "CHUNK_ELEMENTS", 2 * N_ITEMS)  # two positions per chunk
    loss = training.full_softmax_loss(hidden, table, targets)
    torch.testing.assert_close(loss, expected)
    for got, want in zip(torch.autograd.grad(loss, (hidden, table)), grads, strict=True):
        torch.testing.assert_close(got, want)


def test_sampled_softmax_leaves_out_the_positive():
    torch.manual_seed(0)
    hidden, table = torch.randn(1, 1, 4), torch.randn(3, 4)  # items 1 and 2
    targets = torch.tensor([[1]])
    loss = training.sampled_softmax_loss(hidden, table, targets, 50, torch.Generator().manual_seed(0))
    # The only other item is 2 (drawn about 25 times); the draws of item 1 itself are left out.
    pos, neg = (hidden[0, 0] * table[1]).sum(), (hidden[0, 0] * table[2]).sum()
    draws = torch.randint(1, 3, (50,), generator=torch.Generator().manual_seed(0))
    n_neg = int((draws == 2).sum())
    expected = -pos + torch.logsumexp(torch.cat([pos[None], neg.repeat(n_neg)]), 0)
    torch.testing.assert_close(loss, expected)


def test_popularity_drawn_negatives_are_corrected_by_their_expected_draws():
    torch.manual_seed(0)
    hidden, table = torch.randn(1, 1, 4), torch.randn(4, 4)  # items 1..3
    weights = torch.tensor([6.0, 3.0, 1.0])
    loss = training.sampled_softmax_loss(
        hidden, table, torch.tensor([[2]]), 5, torch.Generator().manual_seed(0), draw_weights=weights
    )
    draws = (
        torch.multinomial(weights / 10, 5, replacement=True, generator=torch.Generator().manual_seed(0)) + 1
    )
    score = hidden[0, 0] @ table.T
    corrected = score - torch.log(5 * torch.tensor([1.0, 0.6, 0.3, 0.1]))  # row 0 unused
    others = [corrected[d] for d in draws.tolist() if d != 2]
    expected = -corrected[2] + torch.logsumexp(torch.stack([corrected[2], *others]), 0)
    torch.testing.assert_close(loss, expected)


def test_negative_draw_weights_mix_training_plays_with_uniform_over_allowed_items():
    windows = torch.tensor([[0, 1, 1, 2], [0, 0, 1, 3]])  # item 1 played 3 times, 2 and 3 once
    assert training.negative_draw_weights(windows, 4, 0.0) is None
    got = training.negative_draw_weights(windows, 4, 0.5)
    torch.testing.assert_close(got, 0.5 * torch.tensor([0.6, 0.2, 0.2, 0.0]) + 0.5 * torch.full((4,), 0.25))
    allowed = torch.tensor([False, True, True, False])
    got = training.negative_draw_weights(windows, 4, 1.0, allowed)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.5, 0.5, 0.0]))
    channels = torch.stack([windows, torch.full_like(windows, 4)], dim=1)  # [W, channels, L]
    torch.testing.assert_close(
        training.negative_draw_weights(channels, 4, 1.0), torch.tensor([0.6, 0.2, 0.2, 0.0])
    )


def test_popularity_drawn_negatives_learn_the_popularity_order_that_uniform_ones_miss():
    # Tracks drawn independently by a Zipf law: the best ranking is by popularity. With 32
    # negatives among 5,000 tracks (the share of 1,024 among the full-size file's 131,594),
    # uniform draws seldom hold the popular tracks whose order a top 10 is made of.
    n_items, rng = 5000, np.random.default_rng(0)
    p = 1 / np.arange(1, n_items + 1)
    p /= p.sum()
    windows, held_out = (rng.choice(n_items, size=(rows, 13), p=p) + 1 for rows in (3000, 200))
    mass = {}
    for share in (0.0, 1.0):
        torch.manual_seed(0)
        config = tiny_settings(
            "sasrec",
            loss="sampled",
            negatives=32,
            popular_negatives=share,
            epochs=10,
            batch_size=32,
            learning_rate=0.01,
            weight_decay=0.0,
        )
        model = sasrec.build(n_items, config)
        training.fit(model, windows, config, validate=None, progress=False)
        top = training.top_items(model.eval(), torch.as_tensor(held_out[:, :-1]), 10).numpy()
        mass[share] = p[top - 1].sum(axis=1).mean()  # the chance that the next track is in the top 10
    best = p[:10].sum()
    assert mass[1.0] >= 0.97 * best
    assert mass[0.0] < mass[1.0] - 0.01


def test_instance_sequences_are_the_tail_of_history_and_prefix(sample_build):
    data = Benchmark(sample_build)
    track_ids = data.track_ids
    code = {t: i + 1 for i, t in enumerate(track_ids)}
    for task in ("next-track", "paper-sampled"):
        ids, seqs, candidates, excluded = training.instance_sequences(data, task, "test", 20)
        rows = instance_inputs(data, task, "test")
        assert ids == [r["instance_id"] for r in rows]
        for row, seq in zip(rows, seqs, strict=True):
            expected = [code[t] for t in row["history"] + row["prefix"]][-20:]
            assert seq.tolist() == [0] * (20 - len(expected)) + expected
        assert (candidates is None) == (task == "next-track")
        # The sample's recipe dedupes sessions: next-track rankings leave out the prefix.
        assert (excluded is not None) == (task == "next-track")
        if excluded is not None:
            for row, leave_out in zip(rows, excluded, strict=True):
                assert sorted(c for c in leave_out.tolist() if c) == sorted(code[t] for t in row["prefix"])


@pytest.fixture(scope="module")
def quick_sasrec(sample_build, tmp_path_factory):
    root = tmp_path_factory.mktemp("neural")
    outputs = []
    for run in ("a", "b"):
        folder = root / run
        result = run_cli(
            "baseline", "train", "sasrec", "--dataset", str(sample_build), "--set", "epochs=3",
            "--set", "dim=32", "--out", str(folder), "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        preds = root / f"{run}.jsonl"
        result = run_cli("baseline", "predict", str(folder), "--out", str(preds), "--quiet")
        assert result.returncode == 0, result.stderr
        outputs.append((folder, preds))
    return outputs


def test_same_seed_same_weights_and_predictions(quick_sasrec):
    (a, pa), (b, pb) = quick_sasrec
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert pa.read_bytes() == pb.read_bytes()


def test_neural_rankings_leave_the_prefix_out_and_keep_prefix_puts_it_back(
    quick_sasrec, sample_build, tmp_path
):
    folder, preds = quick_sasrec[0]
    data = Benchmark(sample_build)
    inputs = {r["instance_id"]: set(r["prefix"]) for r in instance_inputs(data, "next-track", "test")}
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert all(not inputs[r["instance_id"]] & set(r["predictions"]) for r in rows)
    kept = tmp_path / "kept.jsonl"
    result = run_cli("baseline", "predict", str(folder), "--out", str(kept), "--keep-prefix", "--quiet")
    assert result.returncode == 0, result.stderr
    again = [json.loads(line) for line in kept.read_text().splitlines()]
    # The ablation ranks the prefix again (a model trained on sessions ranks it high), and
    # otherwise keeps the same order: removing the prefix from it gives the rule's ranking.
    assert any(inputs[r["instance_id"]] & set(r["predictions"][:10]) for r in again)
    for rule, ablation in zip(rows, again, strict=True):  # the top 20: further down, near-ties may swap
        without = [t for t in ablation["predictions"] if t not in inputs[rule["instance_id"]]]
        assert rule["predictions"][:20] == without[:20]


def test_checkpoint_records_training_and_exports_item_embeddings(quick_sasrec, sample_build):
    folder, _ = quick_sasrec[0]
    record = json.loads((folder / "config.json").read_text())
    assert [e["epoch"] for e in record["training"]["epochs"]] == [1, 2, 3]
    assert 1 <= record["training"]["best_epoch"] <= 3
    with safe_open(folder / "item_embeddings.safetensors", "pt") as f:
        table = f.get_tensor("embedding")
        meta = f.metadata()
    assert json.loads(meta["track_ids"]) == Benchmark(sample_build).track_ids
    assert table.shape == (len(Benchmark(sample_build).track_ids), 32)
    assert meta["catalogue_digest"] == record["catalogue_digest"]


def test_damaged_checkpoint_is_a_clear_error(quick_sasrec, tmp_path):
    folder, _ = quick_sasrec[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    record = json.loads((folder / "config.json").read_text())
    record["config"]["dim"] = 16  # the weights were trained with dim=32
    (broken / "config.json").write_text(json.dumps(record))
    (broken / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    result = run_cli("baseline", "predict", str(broken), "--out", str(tmp_path / "p.jsonl"))
    assert result.returncode == 2 and "weights do not fit" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "p.jsonl").exists()


def test_unknown_neural_hyperparameter_is_a_clear_error(sample_build, tmp_path):
    result = run_cli(
        "baseline",
        "train",
        "gru4rec",
        "--dataset",
        str(sample_build),
        "--set",
        "heads=2",
        "--out",
        str(tmp_path / "g"),
    )
    assert result.returncode == 2 and "unknown gru4rec hyperparameter key 'heads'" in result.stderr
    assert not (tmp_path / "g").exists()


def test_sasrec_mm_represents_a_cold_track_by_content_alone(sample_build):
    import mmbench
    from mmbench.baselines import sasrec_mm

    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_polars()
    config = model_config("sasrec-mm").replace(dim=16, layers=1)
    torch.manual_seed(0)
    model = sasrec_mm.build(tracks.height, config, Benchmark(sample_build)).eval()
    cold = np.flatnonzero(tracks["n_plays_train"].to_numpy() == 0) + 1  # item numbers
    warm = np.flatnonzero(tracks["n_plays_train"].to_numpy() > 0) + 1
    assert cold.size and warm.size
    before = model.item_table().detach().clone()
    assert torch.equal(before, model.item_table())  # no ID dropout outside training
    with torch.no_grad():
        model.items.weight.add_(1.0)  # every ID embedding changes
    after = model.item_table().detach()
    assert torch.equal(after[cold], before[cold])  # cold: content and the "no ID" vector only
    assert not torch.isclose(after[warm], before[warm]).all(dim=1).any()
    audio = getattr(model, f"feature_{model.names.index('audio-mfcc')}")[:, -1].bool()
    with_audio = torch.as_tensor(cold)[audio[cold]]
    assert with_audio.numel() and before[with_audio].abs().sum(dim=1).gt(0).all()  # ... which ranks them


def test_sasrec_mm_drops_the_ids_of_the_newest_tracks_more_often(sample_build):
    import mmbench
    from mmbench.baselines import sasrec_mm

    tracks = mmbench.load("tracks", "catalog", source=sample_build).to_polars()
    share = sasrec_mm.first_play_share(Benchmark(sample_build))
    played = tracks["n_plays_train"].to_numpy() > 0
    assert np.isnan(share[~played]).all() and (share[played] >= 0).all() and (share[played] <= 1).all()
    assert share[played].min() == 0 and share[played].max() > 0.9  # the first session's tracks: 0
    config = model_config("sasrec-mm").replace(dim=16, layers=1)
    dropout = sasrec_mm.build(tracks.height, config, Benchmark(sample_build)).id_dropout[1:, 0].numpy()
    newest = share >= 1 - config.new_share
    assert newest.any() and np.allclose(dropout[newest], config.new_id_dropout)
    assert np.allclose(dropout[played & ~newest], config.id_dropout)


def test_training_windows_of_a_hand_made_user():
    # Seven plays, windows of max_len + 1 = 4 cut from the end: targets 5, 6, 7 then 2, 3, 4.
    windows = training.cut_windows([[1, 2, 3, 4, 5, 6, 7], [8, 9], [10]], max_len=3)
    assert windows.tolist() == [[4, 5, 6, 7], [1, 2, 3, 4], [0, 0, 8, 9]]
    _, targets = training.next_item_targets(torch.as_tensor(windows))
    assert sorted(t for t in targets.flatten().tolist() if t) == [2, 3, 4, 5, 6, 7, 9]
    assert training.cut_windows([[5]], max_len=3).shape == (0, 4)  # one play: nothing to predict


def test_targets_last_keeps_each_users_last_window_only():
    # The E4SRec originals' choice: a user's last max_len plays are the targets.
    windows = training.cut_windows([[1, 2, 3, 4, 5, 6, 7], [8, 9], [10]], max_len=3, last=True)
    assert windows.tolist() == [[4, 5, 6, 7], [0, 0, 8, 9]]


def test_learning_rate_warms_up_linearly_then_follows_its_schedule():
    config = model_config("sasrec").replace(warmup=0.2, schedule="cosine")
    factor = training.learning_rate_factor(config, total_steps=10)
    values = [factor(step) for step in range(10)]
    assert values[:2] == [0.5, 1.0]  # 2 warmup steps
    # Cosine from the end of the warmup to 0 after the last step: step 2 is done = 0, step 6 half.
    assert values[2] == 1.0 and values[6] == pytest.approx(0.5) and factor(10) == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(values[1:-1], values[2:], strict=True))
    constant = training.learning_rate_factor(config.replace(schedule="constant", warmup=0.0), 10)
    assert [constant(step) for step in range(10)] == [1.0] * 10


def test_gradients_are_clipped_before_each_step_and_the_epoch_records_its_curve():
    norms = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    windows = random_seqs(64, 13).numpy()
    for limit in (0.0, 0.01):
        model = tiny("sasrec").train()
        config = tiny_settings("sasrec", epochs=1, batch_size=16, max_grad_norm=limit)
        handle = register_optimizer_step_pre_hook(record)
        try:
            norms.clear()
            history = training.fit(model, windows, config, validate=None, progress=False)
        finally:
            handle.remove()
        assert len(norms) == 4
        if limit:
            assert max(norms) <= limit * 1.001  # clipped
            assert history[0]["max_grad_norm"] > limit  # the record keeps the norm before clipping
        else:
            assert min(norms) > 0.01  # the same batches' gradients, unclipped
    assert len(history[0]["loss_by_tenth"]) == 4 and history[0]["learning_rate"] == config.learning_rate


def test_early_stopping_restores_the_best_epochs_weights():
    model = tiny("sasrec").train()
    windows = random_seqs(64, 13).numpy()
    config = model_config("sasrec").replace(epochs=10, patience=2, batch_size=16, seed=0)
    scores, snapshots = iter([0.1, 0.5, 0.2, 0.3, 0.9]), []

    def validate(m: torch.nn.Module) -> float:
        snapshots.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        return next(scores)

    history = training.fit(model, windows, config, validate, progress=False)
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]  # two epochs without a better score
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[1][k]) for k in state)  # epoch 2's weights
    assert not all(torch.equal(state[k], snapshots[3][k]) for k in state)


def test_sasrec_mm_trains_to_the_same_bytes_and_reloads_to_the_trained_model(sample_build, tmp_path):
    from safetensors.torch import load_file

    from mmbench.baselines import runner, sasrec_mm

    folder, again = (
        runner.train(
            "sasrec-mm", sample_build, ["epochs=1", "dim=16", "layers=1"], tmp_path / n, progress=False
        )
        for n in ("mm", "again")
    )
    # The fused table's lookup sums repeated items' gradients; batches of 128 x 50 items are where
    # a multi-core CPU's indexing backward summed them in a different order on every run.
    assert (folder / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    # The exported table was computed from the trained model in memory, before it was saved.
    trained_table = load_file(folder / "item_embeddings.safetensors")["embedding"]
    record = json.loads((folder / "config.json").read_text())
    config = sasrec_mm.Settings.model_validate(record["config"])
    model = sasrec_mm.build(trained_table.shape[0], config, Benchmark(sample_build))
    training.load_weights(model, folder)
    with torch.no_grad():
        assert torch.equal(model.eval().item_table()[1:], trained_table)
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path in paths:
        runner.predict(folder, "next-track", "test", path, progress=False)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("fusion", ["concat", "sum", "gated", "cross_attention", "film"])
def test_sasrec_mm_fusions_train_a_step_on_audio_lyrics_and_mgphot(sample_build, fusion):
    import mmbench
    from mmbench.baselines import sasrec_mm

    data = Benchmark(sample_build)
    track_ids = data.track_ids
    config = model_config("sasrec-mm").replace(
        dim=16,
        layers=1,
        fusion=fusion,
        content=["audio-mfcc", "lyrics-minilm", "mgphot"],
        epochs=1,
        batch_size=64,
    )
    torch.manual_seed(0)
    model = sasrec_mm.build(len(track_ids), config, data)
    assert model.names == ["audio-mfcc", "completion", "lyrics-minilm", "mgphot"]
    mgphot = getattr(model, f"feature_{model.names.index('mgphot')}")
    annotated = mmbench.load("mgphot", "catalog", source=sample_build).num_rows
    assert mgphot.shape[1] == 59 and int(mgphot[:, -1].sum()) == annotated
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    windows = training.training_windows(data, config.max_len)[:64]
    history = training.fit(model, windows, config, progress=False)
    assert np.isfinite(history[0]["loss"])
    for name, param in model.named_parameters():  # one step moved every part of the fusion
        if name.startswith(("projections", "fusion")):
            assert not torch.equal(param, before[name]), name
