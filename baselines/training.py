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

The loop calls the model through ``forward(batch, generator)`` (:class:`SequentialRecommender`
defines it from the two methods above), so that DDP sees every step; it optimises and
saves only the parameters that require gradients, so a frozen backbone is neither copied at the
best epoch nor written to the checkpoint.

A model whose module has ``channels(config)`` naming more than ``("code",)`` gets, per item, the
extra channels too: sequences are then [..., channels, length] instead of [..., length]. The one
extra channel is ``completion``: the play's completion-ratio bucket (0 padding, 1 unknown,
2 + round(10 * ratio) for a ratio in [0, 1], so 2..12).

Training: full-softmax cross-entropy over the catalogue (chunked and recomputed in the backward
pass so that memory stays bounded at 383k tracks), or sampled softmax; AdamW (paged 8-bit on
CUDA with ``optimizer_8bit``), a linear warmup then a constant or cosine learning rate,
gradient clipping; early stopping on validation NDCG@10 as computed by :class:`mmbench.evaluator.Evaluator`. Under ``accelerate
launch`` with DDP (more than one process; sharded training, FSDP or DeepSpeed, is refused) each
process takes its share of every batch and the loss is scaled so that the averaged gradient
equals one process's on the whole batch.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field
from safetensors.torch import load_file, save_file
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from mmbench.baselines import BaselineSettings
from mmbench.baselines.data import Benchmark
from mmbench.devices import resolve_device
from mmbench.errors import MmbenchError
from mmbench.files import atomic_path, write_atomic
from mmbench.progress import progress_bar
from mmbench.schema import MAX_PREDICTIONS

CHUNK_ELEMENTS = 1 << 25  # logits per chunk of the full softmax (128 MiB in float32)
COMPLETION_BUCKETS = 13  # 0 padding, 1 unknown, 2..12 the deciles 0%..100%


class SequentialRecommender(torch.nn.Module):
    """Base of the neural models: ``forward`` is a training step's objective or a ranking's query."""

    def forward(
        self, batch: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...]:
        """With a ``generator``: ``(hidden, targets, table)`` of a batch of windows, from which the
        loop computes the loss. Without: ``(query, table)`` of a batch of sequences."""
        table = self.item_table()  # once per step: inputs and outputs share one draw of any dropout
        if generator is None:
            return self.query(batch, table), table
        hidden, targets = self.loss_inputs(batch, generator, table)
        return hidden, targets, table


def process_count() -> int:
    """How many processes train together (``accelerate launch``, ``torchrun``); 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def seed_everything(seed: int) -> None:
    """Seed every generator the training loop draws from."""
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` = CUDA when present, else CPU; or an explicit torch device that exists here.
    Under ``accelerate launch``, the device accelerate gives this process."""
    if process_count() > 1:
        from accelerate import PartialState

        return PartialState().device
    return torch.device(resolve_device(name))


# ---------------------------------------------------------------------------------------------
# Inputs from the dataset


def _plays(data: Benchmark, splits: tuple[str, ...]) -> pl.DataFrame:
    """One row per play with its item number and completion bucket, ordered by user, session
    start, session, position."""
    codes = pl.DataFrame(
        {"track_id": data.track_ids, "code": np.arange(1, len(data.track_ids) + 1, dtype=np.int64)}
    )
    bucket = (
        pl.when(pl.col("completion_ratios").is_null())
        .then(1)
        .otherwise(2 + (pl.col("completion_ratios").clip(0, 1) * 10).round())
        .cast(pl.Int64)
    )
    return (
        data.sessions(*splits)
        .sort("user_id", "start_time", "session_id")
        .explode("track_ids", "completion_ratios")
        .join(codes, left_on="track_ids", right_on="track_id", how="left", maintain_order="left")
        .select("user_id", "session_id", "code", bucket.alias("completion"))
    )


def training_windows(
    data: Benchmark, max_len: int, channels: tuple[str, ...] = ("code",), targets: str = "all"
) -> np.ndarray:
    """Every user's training plays in time order, cut from the end into windows of
    ``max_len + 1`` items (left-padded), so that each play but the user's first is a target
    exactly once (``targets = "all"``); with ``"last"``, only each user's last window: the last
    ``max_len`` training plays are the targets, as in both E4SRec originals (their last 50).
    [windows, max_len + 1], or [windows, channels, max_len + 1]."""
    plays = _plays(data, ("train",))
    users = plays.group_by("user_id", maintain_order=True).agg(*channels)
    per_channel = [cut_windows(users[c].to_list(), max_len, targets == "last") for c in channels]
    if per_channel[0].shape[0] == 0:
        raise MmbenchError(f"{data.source}: no training sequence of two plays or more")
    return per_channel[0] if len(channels) == 1 else np.stack(per_channel, axis=1)


def cut_windows(sequences: list[list[int]], max_len: int, last: bool = False) -> np.ndarray:
    """Each sequence cut from its end into windows of ``max_len + 1`` items, left-padded with 0:
    the windows overlap by one item, so every item but a sequence's first is a target (an item
    after the first position of a window) exactly once; ``last``: each sequence's last window
    only. Shape [windows, max_len + 1]."""
    span = max_len + 1
    windows = []
    for codes in sequences:
        seq = np.asarray(codes, dtype=np.int64)
        ends = range(len(seq), 1, -max_len)
        for end in ends[:1] if last else ends:
            piece = seq[max(0, end - span) : end]
            windows.append(np.pad(piece, (span - len(piece), 0)))
    return np.stack(windows) if windows else np.zeros((0, span), dtype=np.int64)


def instance_sequences(
    data: Benchmark, task: str, split: str, max_len: int, channels: tuple[str, ...] = ("code",)
) -> tuple[list[str], np.ndarray, list[list[str]] | None, np.ndarray | None]:
    """Per instance (sorted by id): the last ``max_len`` items the user played before the target
    (every earlier session, then the session prefix), left-padded ([instances, max_len], or
    [instances, channels, max_len]); the candidates, if any; and the items a ranking must leave
    out ([instances, longest prefix], 0 = none): the session prefix, on a build whose target
    cannot repeat it (:attr:`Benchmark.excludes_prefix`), else None.

    A user's sessions never overlap in time, so the plays before a session's start are exactly
    the plays of the user's earlier sessions.
    """
    instances = data.instances(task, split)
    plays = _plays(data, ("train", "validation", "test"))
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
    per_channel = [np.where(valid, plays[c].to_numpy()[np.clip(index, 0, None)], 0) for c in channels]
    seqs = per_channel[0] if len(channels) == 1 else np.stack(per_channel, axis=1)
    candidates = instances["candidates"].to_list() if task == "paper-sampled" else None
    excluded = None
    if candidates is None and data.excludes_prefix:
        position = located["position"].to_numpy().astype(np.int64)
        steps = np.arange(max(1, int(position.max(initial=0))))
        inside = steps[None, :] < position[:, None]
        start = (located["offset"].to_numpy().astype(np.int64))[:, None] + steps[None, :]
        codes = plays["code"].to_numpy()
        excluded = np.where(inside, codes[np.clip(start, 0, len(codes) - 1)], 0)
    return instances["instance_id"].to_list(), seqs, candidates, excluded


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
    draw_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each target against ``n_negatives`` items drawn for the whole batch; a
    draw equal to a position's own target is left out of that position.

    Without ``draw_weights`` the draws are uniform over 1..N (or over the items where ``allowed``
    [N] is true). With ``draw_weights`` [N] (non-negative, zero outside ``allowed``) each draw
    takes item i with probability q_i = w_i / sum(w), and every logit, the target's included, is
    corrected by minus log(n_negatives q_i), its expected number of draws: the sampled softmax of
    Jean et al. (ACL 2015, eq. 9-10), whose gradient estimates the full softmax's whatever the
    draws' distribution (Yi et al., RecSys 2019, apply it to in-batch negatives)."""
    keep = targets > 0
    h, t = hidden[keep], targets[keep]
    if draw_weights is not None:
        q = draw_weights / draw_weights.sum()
        negatives = torch.multinomial(q, n_negatives, replacement=True, generator=generator) + 1
    elif allowed is None:
        negatives = torch.randint(1, table.shape[0], (n_negatives,), generator=generator)
    else:
        pool = allowed.nonzero().flatten().cpu() + 1
        negatives = pool[torch.randint(0, len(pool), (n_negatives,), generator=generator)]
    negatives = negatives.to(t.device)
    # F.embedding, not table[...]: indexing's backward adds repeated rows in a run-dependent order.
    positive = (h * F.embedding(t, table)).sum(-1, keepdim=True)
    negative = h @ F.embedding(negatives, table).T
    if draw_weights is not None:
        log_expected = torch.log(n_negatives * q).to(t.device)
        positive = positive - log_expected[t - 1, None]
        negative = negative - log_expected[negatives - 1][None, :]
    negative = negative.masked_fill(negatives[None, :] == t[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long, device=t.device))


def negative_draw_weights(
    windows: torch.Tensor, n_items: int, popular_share: float, allowed: torch.Tensor | None = None
) -> torch.Tensor | None:
    """The draw weights of the sampled softmax's negatives over items 1..``n_items``: a share
    ``popular_share`` of each draw in proportion to the item's plays in the training ``windows``
    (the first channel of multi-channel windows), the rest uniform, both over the ``allowed``
    items; None for uniform draws alone (``popular_share = 0``). With a uniform part every item
    is a negative now and then; with ``popular_share = 1`` a track never played in training is
    never drawn and keeps its initial output vector."""
    if popular_share == 0:
        return None
    items = windows[:, 0] if windows.ndim == 3 else windows
    plays = torch.bincount(items.flatten(), minlength=n_items + 1)[1 : n_items + 1].double()
    mask = torch.ones(n_items, dtype=torch.bool) if allowed is None else allowed.cpu().bool()
    plays = plays * mask
    uniform = mask.double() / mask.sum()
    return (popular_share * plays / plays.sum() + (1 - popular_share) * uniform).float()


# ---------------------------------------------------------------------------------------------
# Scoring


@torch.no_grad()
def top_items(
    model: torch.nn.Module,
    seqs: torch.Tensor,
    k: int,
    excluded: torch.Tensor | None = None,
    table: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``k`` best item numbers (1..N) per sequence; padding and mask are never returned, nor
    the items of ``excluded`` ([B, P] item numbers, 0 = none). ``table`` is the model's
    ``item_table()``, computed here when not given."""
    table = model.item_table() if table is None else table
    query = model.query(seqs, table)
    scores = (query.to(table.dtype) @ table[1:].T).float()  # a bf16 backbone's query, an fp32 head
    if excluded is not None:
        # Column 0 of the padded scores stands for item number 0 (no item): masking it is harmless.
        padded = torch.cat([scores.new_zeros(len(scores), 1), scores], dim=1)
        scores = padded.scatter(1, excluded, float("-inf"))[:, 1:]
        k = min(k, scores.shape[1] - excluded.shape[1])  # a masked item is never among the k
    return scores.topk(min(k, scores.shape[1]), dim=1).indices + 1


def candidate_order(
    model: torch.nn.Module, seqs: torch.Tensor, candidates: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """The candidates (item numbers, [B, C]) of each sequence, best first, scored against the
    model's ``item_table()``."""
    query = model.query(seqs, table)
    scores = (query.to(table.dtype)[:, None, :] * table[candidates]).sum(-1).float()
    return candidates.gather(1, scores.argsort(dim=1, descending=True, stable=True))


@torch.no_grad()
def rankings(
    model: torch.nn.Module,
    seqs: np.ndarray,
    track_ids: list[str],
    candidates: list[list[str]] | None = None,
    excluded: np.ndarray | None = None,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "ranking",
) -> list[list[str]]:
    """Ranked track ids per sequence: the whole catalogue (less each sequence's ``excluded``
    item numbers, [sequences, P], 0 = none), or only each sequence's candidates. The item table
    (a fused one covers every track's content) is computed once for the whole pass."""
    model = getattr(model, "module", model)  # validation during DDP training: the replica
    model.eval()
    device = next(model.parameters()).device
    table = model.item_table()
    code = {t: i + 1 for i, t in enumerate(track_ids)}
    out: list[list[str]] = []
    for start in progress_bar(range(0, len(seqs), batch_size), desc=desc, disable=not progress, leave=False):
        batch = torch.as_tensor(seqs[start : start + batch_size], device=device)
        if candidates is None:
            leave_out = None
            if excluded is not None:
                leave_out = torch.as_tensor(excluded[start : start + batch_size], device=device)
            best = top_items(model, batch, MAX_PREDICTIONS, leave_out, table)
        else:
            chosen = torch.as_tensor(
                [[code[t] for t in c] for c in candidates[start : start + batch_size]], device=device
            )
            best = candidate_order(model, batch, chosen, table)[:, :MAX_PREDICTIONS]
        out += [[track_ids[i - 1] for i in row] for row in best.tolist()]
    return out


# ---------------------------------------------------------------------------------------------
# The loop


Positive = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # a probability or share in [0, 1)


class TrainingSettings(BaselineSettings):
    """The shared loop's settings, which every neural model's ``Settings`` extends."""

    max_len: Positive
    targets: Literal["all", "last"]
    loss: Literal["full", "sampled"]
    negatives: Positive
    # Folders trained before the setting existed drew their negatives uniformly.
    popular_negatives: Annotated[float, Field(ge=0, le=1)] = 0.0
    batch_size: Positive
    learning_rate: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    schedule: Literal["constant", "cosine"]
    warmup: Fraction
    max_grad_norm: Annotated[float, Field(ge=0)]
    # Folders trained before the setting existed used AdamW.
    optimizer_8bit: bool = False
    epochs: Positive
    patience: Annotated[int, Field(ge=0)]
    seed: int
    device: str


def fit(
    model: torch.nn.Module,
    windows: np.ndarray,
    config: TrainingSettings,
    validate: Callable[[torch.nn.Module], float] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train ``model`` in place on ``windows`` and leave it with its best weights.

    Each epoch shuffles the windows (seeded), takes AdamW steps on the chosen loss, then, if
    ``validate`` is given, scores the model with it (validation NDCG@10); training stops after
    ``patience`` epochs without improvement and the best epoch's weights are restored. Returns
    one record per epoch. A model with a ``trainable`` attribute ([N] bool) is trained against
    those items only (content models leave out tracks never played in training, which would
    otherwise be learnt as "never the answer"). Only parameters that require gradients are
    optimised and kept.
    """
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = adamw(params, config)
    data = torch.as_tensor(windows, dtype=torch.long)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, learning_rate_factor(config, math.ceil(len(data) / config.batch_size) * config.epochs)
    )
    accelerator, wrapped = None, model
    if process_count() > 1:
        accelerator = _data_parallel(config)
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        progress = progress and accelerator.is_main_process
    history: list[dict[str, Any]] = []
    best, best_state, waited = -math.inf, None, 0
    for epoch in range(1, config.epochs + 1):
        record = _train_epoch(
            wrapped, model, data, config, generator, optimizer, scheduler, accelerator, epoch, progress
        )
        if validate is not None:
            score = validate(wrapped)
            if accelerator:  # every process stops at the same epoch: rank 0's score decides
                from accelerate.utils import broadcast

                score = broadcast(torch.tensor([score], device=accelerator.device), from_process=0).item()
            record["validation_ndcg@10"] = score
            if score > best:
                best, waited = score, 0
                best_state = trainable_state(model, clone=True)
            else:
                waited += 1
        history.append(record)
        if progress:
            tqdm.write(
                " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in record.items()
                    if not isinstance(v, list)
                ),
                file=sys.stderr,  # with the bars: a log, not output (`mmbench reproduce` drops stdout)
            )
        if validate is not None and waited >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    return history


def learning_rate_factor(config: TrainingSettings, total_steps: int) -> Callable[[int], float]:
    """The learning rate's multiplier at each optimizer step: a linear warmup over the first
    ``warmup`` share of the ``total_steps`` (every epoch of the ``epochs`` bound), then constant
    or a cosine decay to 0 at the last step (Loshchilov and Hutter, "SGDR", ICLR 2017). Early
    stopping ends the run on the way down; the schedule does not depend on when."""
    warmup = math.ceil(config.warmup * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        done = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor


def adamw(params: list[torch.nn.Parameter], config: TrainingSettings) -> torch.optim.Optimizer:
    """AdamW; with ``optimizer_8bit`` and the parameters on CUDA, bitsandbytes' paged 8-bit
    AdamW, whose two moments take 2 bytes per parameter instead of 8 (a linear head over 383,670
    tracks at 3,584 wide is 1.4 billion parameters: 11 GB of fp32 moments, 2.7 GB in 8 bits).
    The optimizer that ran is in each epoch's record."""
    options = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    if config.optimizer_8bit and params and params[0].device.type == "cuda":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise MmbenchError(
                "optimizer_8bit on CUDA needs the package bitsandbytes; install it or set optimizer_8bit=false"
            ) from None
        return bnb.optim.PagedAdamW8bit(params, **options)
    return torch.optim.AdamW(params, **options)


def _data_parallel(config: TrainingSettings) -> Any:
    """The accelerator of a DDP run (one model replica per process), or a clear error."""
    from accelerate import Accelerator, DistributedType
    from accelerate.utils import DistributedDataParallelKwargs

    # Buffers (content features, an ID table) are the same in every process: never re-sent.
    accelerator = Accelerator(
        cpu=pick_device(config.device).type == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )
    data_parallel = (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU, DistributedType.MULTI_XPU)
    if accelerator.distributed_type not in data_parallel:
        raise MmbenchError(
            f"training under accelerate with {accelerator.distributed_type.value}: only DDP (one model "
            "replica per process) is supported; see docs/baselines.md"
        )
    if config.batch_size < accelerator.num_processes:
        raise MmbenchError(
            f"batch_size {config.batch_size} is smaller than the {accelerator.num_processes} processes: "
            "each process needs a window of every batch"
        )
    return accelerator


def _train_epoch(
    wrapped: torch.nn.Module,
    model: torch.nn.Module,
    data: torch.Tensor,
    config: TrainingSettings,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator: Any,
    epoch: int,
    progress: bool,
) -> dict[str, Any]:
    """One pass over the windows in a seeded random order; returns the epoch's record: its mean
    loss, the mean loss of each tenth of its steps (a collapse shows there first), the largest
    gradient norm before clipping and the learning rate at the end.

    ``wrapped`` is ``model`` as accelerate prepared it (DDP) or ``model`` itself. With several
    processes, every process draws the same order and the same negatives from ``generator`` and
    takes its slice of each batch (a last batch with fewer windows than processes is skipped by
    all of them); the model's own draws (BERT4Rec's masks) come from a generator of its own per
    process, as their number depends on the slice.
    """
    allowed = getattr(model, "trainable", None)
    device = next(model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    processes = accelerator.num_processes if accelerator else 1
    draws = generator
    if accelerator:  # seeded without drawing from `generator`, whose draws match one process's
        entropy = [config.seed, epoch, accelerator.process_index]
        draws = torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
    wrapped.train()
    order = torch.randperm(len(data), generator=generator)
    total, steps, losses, norms = 0.0, 0, [], []
    weights = None  # the negatives' draw weights, once the first batch gives the table's size
    bar = progress_bar(
        range(0, len(data), config.batch_size), desc=f"epoch {epoch}", disable=not progress, leave=False
    )
    for start in bar:
        batch = data[order[start : start + config.batch_size]]
        if len(batch) < processes:
            continue
        if accelerator:
            batch = batch.tensor_split(processes)[accelerator.process_index]
        with autocast:
            hidden, targets, table = wrapped(batch.to(device), draws)
            if config.loss == "sampled":
                if weights is None:
                    weights = negative_draw_weights(
                        data, table.shape[0] - 1, config.popular_negatives, allowed
                    )
                loss = sampled_softmax_loss(
                    hidden, table, targets, config.negatives, generator, allowed, weights
                )
            else:
                loss = full_softmax_loss(hidden, table, targets, allowed)
        report = loss.detach()
        if accelerator:
            # Each process's mean, weighted by its share of the batch's targets (times the process
            # count, as DDP averages gradients): the gradient of the whole batch's mean.
            local = (targets > 0).sum().to(torch.float32)
            share = local / accelerator.reduce(local.clone(), reduction="sum")
            loss = loss * share * processes
            report = accelerator.reduce((report * share).clone(), reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        if accelerator:
            accelerator.backward(loss)
        else:
            loss.backward()
        clip = accelerator.clip_grad_norm_ if accelerator else torch.nn.utils.clip_grad_norm_
        norm = clip(  # accelerate's unscales mixed-precision gradients first
            [p for p in model.parameters() if p.grad is not None],
            config.max_grad_norm if config.max_grad_norm > 0 else math.inf,
        )
        optimizer.step()
        scheduler.step()
        losses.append(report.item())
        norms.append(norm.item())
        total, steps = total + losses[-1], steps + 1
        bar.set_postfix(loss=f"{total / steps:.3f}", refresh=False)  # drawn at the bar's own interval
    tenths = [float(np.mean(part)) for part in np.array_split(np.asarray(losses), 10) if len(part)]
    return {
        "epoch": epoch,
        "loss": total / max(1, steps),
        "loss_by_tenth": [round(x, 4) for x in tenths],
        "max_grad_norm": round(max(norms, default=0.0), 4),
        "learning_rate": scheduler.get_last_lr()[0],
        "optimizer": type(optimizer.optimizer if accelerator else optimizer).__name__,
    }


def validation_scorer(
    data: Benchmark, max_len: int, channels: tuple[str, ...] = ("code",)
) -> Callable[[torch.nn.Module], float]:
    """NDCG@10 of a model on the validation next-track instances, by the official evaluator.
    Under DDP each process ranks a contiguous share of the instances and the rankings are
    gathered in order, so that a validation pass takes 1/processes of the time."""
    from mmbench.evaluator import Evaluator

    evaluator = Evaluator("next-track", "validation", data.source)
    ids, seqs, _, excluded = instance_sequences(data, "next-track", "validation", max_len, channels)

    def score(model: torch.nn.Module) -> float:
        if process_count() > 1:
            from accelerate import PartialState
            from accelerate.utils import gather_object

            state = PartialState()
            share = np.array_split(np.arange(len(seqs)), state.num_processes)[state.process_index]
            mine = excluded[share] if excluded is not None else None
            ranked = gather_object(rankings(model, seqs[share], data.track_ids, excluded=mine))
        else:
            ranked = rankings(model, seqs, data.track_ids, excluded=excluded)
        report = evaluator.eval(dict(zip(ids, ranked, strict=True)), n_bootstrap=0, segments=False)
        return report.metrics["ndcg@10"]["value"]

    return score


def trainable_state(model: torch.nn.Module, clone: bool = False) -> dict[str, torch.Tensor]:
    """The parameters that require gradients and the persistent buffers: the model's state
    without its frozen backbone (rebuilt, not saved), nor what a quantized backbone adds to its
    state dict beside its parameters."""
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    for prefix, module in model.named_modules():
        keep |= {
            f"{prefix}.{name}" if prefix else name
            for name, buffer in module.named_buffers(recurse=False)
            if buffer is not None and name not in module._non_persistent_buffers_set
        }
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    return {k: v.detach().clone() for k, v in state.items()} if clone else state


def save_checkpoint(model: torch.nn.Module, out: Path, record: dict[str, Any], track_ids: list[str]) -> None:
    """``model.safetensors`` (the weights that were trained, and the model's saved buffers),
    ``item_embeddings.safetensors`` (``embedding`` [N, D] in catalogue order, the track ids and
    the ``catalogue_digest`` in its metadata) and ``config.json``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()  # the exported table must not carry a training-time dropout draw
    weights = {k: v.detach().cpu().contiguous() for k, v in trainable_state(model).items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(weights, tmp, metadata={"format": "pt"})
    with torch.no_grad():
        table = model.item_table()[1 : len(track_ids) + 1].detach().float().cpu().contiguous()
    metadata = {
        "model": record["model"],
        "catalogue_digest": record["catalogue_digest"],
        "track_ids": json.dumps(track_ids),
    }
    with atomic_path(out / "item_embeddings.safetensors") as tmp:
        save_file({"embedding": table}, tmp, metadata=metadata)
    write_atomic(out / "config.json", json.dumps(record, indent=2) + "\n")


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load ``model.safetensors`` of a trained folder into ``model`` (its frozen parameters are
    the ones it was built with)."""
    path = folder / "model.safetensors"
    if not path.is_file():
        raise MmbenchError(
            f"{folder}: no model.safetensors; expected a folder written by `mmbench baseline train`"
        )
    expected = trainable_state(model)
    try:
        weights = load_file(path)
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise MmbenchError(
            f"{path}: weights do not fit the model in config.json ({str(exc).splitlines()[0]})"
        ) from None


def next_item_targets(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (all but the last item) and the next item at every input position (0 where the
    input is padding): the objective of the causal models."""
    inputs, following = batch[:, :-1], batch[:, 1:]
    return inputs, torch.where(inputs > 0, following, torch.zeros_like(following))
