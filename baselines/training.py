"""The one training loop of the neural baselines, their inputs, checkpoints and rankings.

Items are numbered 1..N in the catalogue's order (the ``tracks`` config, sorted by track id);
0 is padding and N + 1 the mask token of models that use one. Sequences are left-padded: the
most recent item is always in the last position.

A neural model is an ``nn.Module`` with

- ``item_table() -> [N + 1, D]``: the item representations (row 0: padding, never scored),
  computed once per training step or ranking batch and passed to the two methods below,
- ``loss_inputs(batch, generator, table) -> (hidden [B, T, D], targets [B, T])``: its training
  objective on a batch of windows (targets 0 are ignored),
- ``query(seqs, table) -> [B, D]``: the representation that scores the next item of each
  sequence.

Training: full-softmax cross-entropy over the catalogue (chunked and recomputed in the backward
pass so that memory stays bounded at 383k tracks), or sampled softmax; AdamW; early stopping on
validation NDCG@10 as computed by :class:`mmbench.evaluator.Evaluator`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from mmbench.baselines.data import Benchmark
from mmbench.devices import resolve_device
from mmbench.errors import MmbenchError
from mmbench.files import atomic_path, write_atomic
from mmbench.progress import progress_bar
from mmbench.schema import MAX_PREDICTIONS

CHUNK_ELEMENTS = 1 << 25  # logits per chunk of the full softmax (128 MiB in float32)


def seed_everything(seed: int) -> None:
    """Seed every generator the training loop draws from."""
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` = CUDA when present, else CPU; or an explicit torch device that exists here."""
    return torch.device(resolve_device(name))


# ---------------------------------------------------------------------------------------------
# Inputs from the dataset


def _plays(data: Benchmark, splits: tuple[str, ...]) -> pl.DataFrame:
    """One row per play with its item number, ordered by user, session start, session, position."""
    codes = pl.DataFrame(
        {"track_id": data.track_ids, "code": np.arange(1, len(data.track_ids) + 1, dtype=np.int64)}
    )
    return (
        data.sessions(*splits)
        .sort("user_id", "start_time", "session_id")
        .explode("track_ids")
        .join(codes, left_on="track_ids", right_on="track_id", how="left", maintain_order="left")
        .select("user_id", "session_id", "code")
    )


def training_windows(data: Benchmark, max_len: int) -> np.ndarray:
    """Every user's training plays in time order, cut from the end into windows of
    ``max_len + 1`` items (left-padded), so that each play but the user's first is a target
    exactly once."""
    plays = _plays(data, ("train",))
    users = plays.group_by("user_id", maintain_order=True).agg(pl.col("code"))
    windows = cut_windows(users["code"].to_list(), max_len)
    if windows.shape[0] == 0:
        raise MmbenchError(f"{data.source}: no training sequence of two plays or more")
    return windows


def cut_windows(sequences: list[list[int]], max_len: int) -> np.ndarray:
    """Each sequence cut from its end into windows of ``max_len + 1`` items, left-padded with 0:
    the windows overlap by one item, so every item but a sequence's first is a target (an item
    after the first position of a window) exactly once. Shape [windows, max_len + 1]."""
    span = max_len + 1
    windows = []
    for codes in sequences:
        seq = np.asarray(codes, dtype=np.int64)
        for end in range(len(seq), 1, -max_len):
            piece = seq[max(0, end - span) : end]
            windows.append(np.pad(piece, (span - len(piece), 0)))
    return np.stack(windows) if windows else np.zeros((0, span), dtype=np.int64)


def instance_sequences(
    data: Benchmark, task: str, split: str, max_len: int
) -> tuple[list[str], np.ndarray, list[list[str]] | None]:
    """Per instance (sorted by id): the last ``max_len`` items the user played before the target
    (every earlier session, then the session prefix), left-padded; and the candidates, if any.

    A user's sessions never overlap in time, so the plays before a session's start are exactly
    the plays of the user's earlier sessions.
    """
    instances = data.instances(task, split)
    plays = _plays(data, ("train", "validation", "test"))
    codes = plays["code"].to_numpy()
    offsets = (
        plays.with_row_index("row")
        .group_by("session_id", maintain_order=True)
        .agg(pl.col("row").first().alias("offset"), pl.col("user_id").first())
    )
    user_first = offsets.group_by("user_id", maintain_order=True).agg(pl.col("offset").min().alias("first"))
    located = instances.join(offsets, on="session_id", how="left", maintain_order="left").join(
        user_first, on="user_id", how="left", maintain_order="left"
    )
    end = (located["offset"] + located["position"]).to_numpy().astype(np.int64)
    first = located["first"].to_numpy().astype(np.int64)
    index = end[:, None] - max_len + np.arange(max_len)[None, :]
    valid = index >= first[:, None]
    seqs = np.where(valid, codes[np.clip(index, 0, None)], 0)
    candidates = instances["candidates"].to_list() if task == "paper-sampled" else None
    return instances["instance_id"].to_list(), seqs, candidates


# ---------------------------------------------------------------------------------------------
# Losses


def full_softmax_loss(
    hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the targets over all N items (rows 1..N of ``table``), or over the
    items where ``allowed`` ([N] bool) is true.

    The logits are computed in chunks of positions and recomputed in the backward pass, so the
    memory of one step is bounded by ``CHUNK_ELEMENTS`` logits whatever the catalogue size.
    """
    keep = targets > 0
    h, t = hidden[keep], targets[keep] - 1
    items = table[1:]
    step = max(1, CHUNK_ELEMENTS // items.shape[0])

    def chunk_loss(h_chunk: torch.Tensor, items: torch.Tensor, t_chunk: torch.Tensor) -> torch.Tensor:
        logits = (h_chunk @ items.T).float()
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        return F.cross_entropy(logits, t_chunk, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, h.shape[0], step):
        piece = (h[start : start + step], items, t[start : start + step])
        if torch.is_grad_enabled() and h.requires_grad and h.shape[0] > step:
            total = total + checkpoint(chunk_loss, *piece, use_reentrant=False)
        else:
            total = total + chunk_loss(*piece)
    return total / max(1, h.shape[0])


def sampled_softmax_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    n_negatives: int,
    generator: torch.Generator,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each target against ``n_negatives`` items drawn uniformly from 1..N (or
    from the items where ``allowed`` [N] is true) for the whole batch; a draw equal to a
    position's own target is left out of that position."""
    keep = targets > 0
    h, t = hidden[keep], targets[keep]
    if allowed is None:
        negatives = torch.randint(1, table.shape[0], (n_negatives,), generator=generator)
    else:
        pool = allowed.nonzero().flatten().cpu() + 1
        negatives = pool[torch.randint(0, len(pool), (n_negatives,), generator=generator)]
    negatives = negatives.to(t.device)
    positive = (h * table[t]).sum(-1, keepdim=True)
    negative = h @ table[negatives].T
    negative = negative.masked_fill(negatives[None, :] == t[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long, device=t.device))


# ---------------------------------------------------------------------------------------------
# Scoring


@torch.no_grad()
def top_items(model: torch.nn.Module, seqs: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` best item numbers (1..N) per sequence; padding and mask are never returned."""
    table = model.item_table()
    scores = model.query(seqs, table) @ table[1:].T
    return scores.float().topk(min(k, scores.shape[1]), dim=1).indices + 1


@torch.no_grad()
def candidate_order(model: torch.nn.Module, seqs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The candidates (item numbers, [B, C]) of each sequence, best first."""
    table = model.item_table()
    scores = (model.query(seqs, table)[:, None, :] * table[candidates]).sum(-1).float()
    return candidates.gather(1, scores.argsort(dim=1, descending=True, stable=True))


def rankings(
    model: torch.nn.Module,
    seqs: np.ndarray,
    track_ids: list[str],
    candidates: list[list[str]] | None = None,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "ranking",
) -> list[list[str]]:
    """Ranked track ids per sequence: the whole catalogue, or only each sequence's candidates."""
    model.eval()
    device = next(model.parameters()).device
    code = {t: i + 1 for i, t in enumerate(track_ids)}
    out: list[list[str]] = []
    for start in progress_bar(range(0, len(seqs), batch_size), desc=desc, disable=not progress, leave=False):
        batch = torch.as_tensor(seqs[start : start + batch_size], device=device)
        if candidates is None:
            best = top_items(model, batch, MAX_PREDICTIONS)
        else:
            chosen = torch.as_tensor(
                [[code[t] for t in c] for c in candidates[start : start + batch_size]], device=device
            )
            best = candidate_order(model, batch, chosen)[:, :MAX_PREDICTIONS]
        out += [[track_ids[i - 1] for i in row] for row in best.tolist()]
    return out


# ---------------------------------------------------------------------------------------------
# The loop


def fit(
    model: torch.nn.Module,
    windows: np.ndarray,
    config: dict[str, Any],
    validate: Callable[[torch.nn.Module], float] | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``windows`` and leave it with its best weights.

    Each epoch shuffles the windows (seeded), takes AdamW steps on the chosen loss, then, if
    ``validate`` is given, scores the model with it (validation NDCG@10); training stops after
    ``patience`` epochs without improvement and the best epoch's weights are restored. Returns
    one record per epoch. A model with a ``trainable`` attribute ([N] bool) is trained against
    those items only (content models leave out tracks never played in training, which would
    otherwise be learnt as "never the answer").
    """
    generator = torch.Generator().manual_seed(config["seed"])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"]
    )
    data = torch.as_tensor(windows, dtype=torch.long)
    history: list[dict[str, float]] = []
    best, best_state, waited = -math.inf, None, 0
    for epoch in range(1, config["epochs"] + 1):
        loss = _train_epoch(model, data, config, generator, optimizer, f"epoch {epoch}", progress)
        record = {"epoch": epoch, "loss": loss}
        if validate is not None:
            record["validation_ndcg@10"] = score = validate(model)
            if score > best:
                best, waited = score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
        history.append(record)
        if progress:
            tqdm.write(
                " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
            )
        if validate is not None and waited >= config["patience"]:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _train_epoch(
    model: torch.nn.Module,
    data: torch.Tensor,
    config: dict[str, Any],
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    desc: str,
    progress: bool,
) -> float:
    """One pass over the windows in a seeded random order; returns the mean loss."""
    allowed = getattr(model, "trainable", None)
    device = next(model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()
    order = torch.randperm(len(data), generator=generator)
    total, steps = 0.0, 0
    bar = progress_bar(
        range(0, len(data), config["batch_size"]), desc=desc, disable=not progress, leave=False
    )
    for start in bar:
        batch = data[order[start : start + config["batch_size"]]].to(device)
        with autocast:
            table = model.item_table()  # once per step: inputs and outputs share one draw of any dropout
            hidden, targets = model.loss_inputs(batch, generator, table)
            if config["loss"] == "sampled":
                loss = sampled_softmax_loss(hidden, table, targets, config["negatives"], generator, allowed)
            else:
                loss = full_softmax_loss(hidden, table, targets, allowed)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, steps = total + loss.item(), steps + 1
        bar.set_postfix(loss=f"{total / steps:.3f}")
    return total / max(1, steps)


def validation_scorer(data: Benchmark, max_len: int) -> Callable[[torch.nn.Module], float]:
    """NDCG@10 of a model on the validation next-track instances, by the official evaluator."""
    from mmbench.evaluator import Evaluator

    evaluator = Evaluator("next-track", "validation", data.source)
    ids, seqs, _ = instance_sequences(data, "next-track", "validation", max_len)

    def score(model: torch.nn.Module) -> float:
        ranked = rankings(model, seqs, data.track_ids)
        report = evaluator.eval(dict(zip(ids, ranked, strict=True)), n_bootstrap=0, segments=False)
        return report.metrics["ndcg@10"]["value"]

    return score


def save_checkpoint(model: torch.nn.Module, out: Path, record: dict[str, Any], track_ids: list[str]) -> None:
    """``model.safetensors`` (weights), ``item_embeddings.safetensors`` (``embedding`` [N, D] in
    catalogue order, the track ids in its metadata) and ``config.json``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()  # the exported table must not carry a training-time dropout draw
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(weights, tmp, metadata={"format": "pt"})
    with torch.no_grad():
        table = model.item_table()[1 : len(track_ids) + 1].detach().float().cpu().contiguous()
    metadata = {
        "model": record["model"],
        "dataset_fingerprint": record["dataset_fingerprint"],
        "track_ids": json.dumps(track_ids),
    }
    with atomic_path(out / "item_embeddings.safetensors") as tmp:
        save_file({"embedding": table}, tmp, metadata=metadata)
    write_atomic(out / "config.json", json.dumps(record, indent=2) + "\n")


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load ``model.safetensors`` of a trained folder into ``model``."""
    path = folder / "model.safetensors"
    if not path.is_file():
        raise MmbenchError(
            f"{folder}: no model.safetensors; expected a folder written by `mmbench baseline train`"
        )
    try:
        model.load_state_dict(load_file(path))
    except RuntimeError as exc:
        raise MmbenchError(
            f"{path}: weights do not fit the model in config.json ({str(exc).splitlines()[0]})"
        ) from None


def next_item_targets(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (all but the last item) and the next item at every input position (0 where the
    input is padding): the objective of the causal models."""
    inputs, following = batch[:, :-1], batch[:, 1:]
    return inputs, torch.where(inputs > 0, following, torch.zeros_like(following))
