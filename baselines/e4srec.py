"""E4SRec (Li et al., "E4SRec: an elegant effective efficient extensible solution of large language
models for sequential recommendation", arXiv:2312.02443): a frozen language model, adapted with
LoRA, reads the listening history as soft tokens and scores the whole catalogue.

Each item token is the track's fused representation (:mod:`mmbench.baselines.fusion`) of its
frozen ID vector (the item table of a trained ``sasrec``, ``bert4rec`` or ``gru4rec`` folder,
saved with this model's weights) and its content configs, projected to the backbone's hidden
size. A track never played in training has no trained ID row: its ID part is a learned "no ID"
vector and it is represented by its content; with content configs, IDs are dropped at random
during training as in sasrec-mm, so that this representation is learnt.

The prompt is a fixed instruction followed by the item tokens, oldest first; the history keeps
the last ``max_len`` items, so the instruction is never cut. Every item position predicts the
next item (the causal mask makes this exact), and a ranking is made at the last item, the same
kind of position: with ``completion = "prompt"``, an item is followed by a short text of its
play's completion ratio (" (70%)") and the position is the end of that text; with ``"embed"``, a
learned vector per ratio decile is added to the item token.

Heads: ``linear`` (a trained row per track, as the paper; a track never played in training is
never the answer in training and sinks) or ``tied`` (a track's score is the hidden state times
its fused representation projected to the hidden size, so a track never played in training is
ranked by its content; trained against tracks played in training only).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from mmbench.baselines.data import Benchmark
from mmbench.baselines.fusion import Fusion, ItemFusion
from mmbench.baselines.sasrec_mm import content_features, first_play_share
from mmbench.baselines.training import (
    COMPLETION_BUCKETS,
    Fraction,
    Positive,
    SequentialRecommender,
    TrainingSettings,
    next_item_targets,
    pick_device,
)
from mmbench.causal_lm import PRESETS, load_pretrained
from mmbench.errors import MmbenchError
from mmbench.llm import packaged_llm

PACKAGED = "smollm2-135m"
TINY = "tiny"  # a randomly initialised two-layer Llama (fixed seed) with the packaged tokenizer
ID_ENCODERS = ("sasrec", "bert4rec", "gru4rec")
Completion = Literal["none", "prompt", "embed"]
Head = Literal["linear", "tied"]
COMPLETIONS: tuple[str, ...] = get_args(Completion)
HEADS: tuple[str, ...] = get_args(Head)


class Settings(TrainingSettings):
    backbone: str  # a preset, the packaged model, tiny, a Hub name or a folder
    quantization: Literal["none", "nf4"]
    gradient_checkpointing: bool
    lora_r: Positive
    lora_alpha: Positive
    lora_dropout: Fraction
    lora_targets: list[str]
    id_encoder: str  # a trained sasrec, bert4rec or gru4rec folder, or ""
    content: list[str]
    fusion: Fusion
    fusion_dim: Positive
    completion: Completion
    head: Head
    instruction: str
    id_dropout: Fraction
    new_share: Fraction
    new_id_dropout: Fraction


def channels(config: Settings) -> tuple[str, ...]:
    """Per-item inputs: the item, and its play's completion bucket unless ``completion`` is none."""
    return ("code",) if config.completion == "none" else ("code", "completion")


def check_settings(config: Settings) -> None:
    """One-line errors for settings that cannot work, before anything is loaded."""
    if not config.id_encoder and not config.content:
        raise MmbenchError(
            "e4srec: set id_encoder (a trained sasrec, bert4rec or gru4rec folder) or content configs, or both"
        )
    if config.quantization == "nf4":
        if pick_device(config.device).type != "cuda":
            raise MmbenchError("e4srec: quantization nf4 (QLoRA) needs a CUDA device; this run has none")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise MmbenchError("e4srec: quantization nf4 needs the package bitsandbytes") from None


def id_encoder_table(config: Settings, data: Benchmark) -> np.ndarray:
    """The ID encoder's item table [N, D], checked to be a sasrec, bert4rec or gru4rec folder of
    this catalogue."""
    from mmbench.baselines.data import catalogue_digest

    source = Path(config.id_encoder)
    record_path, table_path = source / "config.json", source / "item_embeddings.safetensors"
    if not record_path.is_file() or not table_path.is_file():
        raise MmbenchError(
            f"e4srec: id_encoder {source}: expected a folder written by `mmbench baseline train` "
            f"({', '.join(ID_ENCODERS)}) with config.json and item_embeddings.safetensors"
        )
    try:
        model = json.loads(record_path.read_text(encoding="utf-8")).get("model")
    except (json.JSONDecodeError, AttributeError):
        model = None
    if model not in ID_ENCODERS:
        raise MmbenchError(
            f"e4srec: id_encoder {source} holds a {model!r} model; expected one of {', '.join(ID_ENCODERS)}"
        )
    with safe_open(table_path, "pt") as f:
        if (f.metadata() or {}).get("catalogue_digest") != catalogue_digest(data.track_ids):
            raise MmbenchError(
                f"e4srec: id_encoder {source} was trained on another catalogue than {data.source} "
                "(its catalogue digest differs); train the ID encoder on this dataset"
            )
        return f.get_tensor("embedding").float().numpy()


def load_backbone(config: Settings) -> tuple[nn.Module, Any]:
    """The decoder without its LM head (``AutoModel``) and its tokenizer, with LoRA adapters."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer, LlamaConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    name = config.backbone
    cuda = pick_device(config.device).type == "cuda"
    options: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if config.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        options["device_map"] = {"": str(pick_device(config.device))}
    if name == TINY:
        location, gguf = packaged_llm(f"e4srec backbone {name}")
        tokenizer = AutoTokenizer.from_pretrained(location, **gguf)
        shape = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same frozen weights at training and prediction
            backbone = AutoModel.from_config(shape, dtype=options["dtype"])
    else:
        location = "" if name == PACKAGED else PRESETS.get(name, name)
        tokenizer, backbone = load_pretrained(location, f"e4srec backbone {name!r}", "AutoModel", **options)
    if config.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        backbone = prepare_model_for_kbit_training(backbone, config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        bias="none",
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft asks a deprecated transformers flag
            backbone = get_peft_model(backbone, lora)
    except ValueError as exc:
        raise MmbenchError(f"e4srec: LoRA on {name!r}: {str(exc).splitlines()[0]}") from None
    return backbone, tokenizer


class E4SRec(SequentialRecommender):
    """A LoRA-adapted decoder over fused item tokens with a linear or tied head (module docstring)."""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        id_table: np.ndarray | None,
        features: dict[str, np.ndarray],
        trained: np.ndarray,
        id_dropout: np.ndarray,
        config: Settings,
    ):
        super().__init__()
        self.backbone, self.head, self.completion = backbone, config.head, config.completion
        hidden, dim = backbone.config.hidden_size, config.fusion_dim
        n_items = len(trained) - 1
        instruction = tokenizer.encode(config.instruction, add_special_tokens=False)
        self.register_buffer("instruction", torch.as_tensor(instruction, dtype=torch.long), persistent=False)
        self.register_buffer(
            "trained", torch.as_tensor(trained, dtype=torch.float32)[:, None], persistent=False
        )
        self.register_buffer("id_dropout", torch.as_tensor(id_dropout, dtype=torch.float32)[:, None], persistent=False)  # fmt: skip
        self.names = sorted(features)
        for i, name in enumerate(self.names):
            self.register_buffer(f"feature_{i}", torch.as_tensor(features[name]), persistent=False)
        self.no_id = nn.Parameter(torch.zeros(dim))
        if id_table is not None:
            # Saved with the trained weights: the folder does not depend on the ID encoder's.
            self.register_buffer("id_table", torch.as_tensor(id_table))
            self.id_projection = nn.Linear(id_table.shape[1], dim)
        self.projections = nn.ModuleList(nn.Linear(features[n].shape[1], dim) for n in self.names)
        heads = 4 if dim % 4 == 0 else 1
        self.fusion = ItemFusion(config.fusion, len(self.names) + 1, dim, heads)
        self.to_hidden = nn.Linear(dim, hidden)
        if self.completion == "embed":
            self.completion_embedding = nn.Embedding(COMPLETION_BUCKETS, hidden, padding_idx=0)
            nn.init.zeros_(self.completion_embedding.weight)
        elif self.completion == "prompt":
            ids, mask = completion_texts(tokenizer)
            self.register_buffer("completion_ids", ids, persistent=False)
            self.register_buffer("completion_mask", mask, persistent=False)
        if self.head == "linear":
            self.output = nn.Linear(hidden, n_items)
        else:
            self.output = nn.Linear(dim, hidden, bias=False)
            # Output rows near the linear head's scale (entries ~ 1/sqrt(hidden)): the default
            # init makes them sqrt(hidden / 3) times larger (14 for SmolLM2), and SmolLM2's first
            # losses on the sample were about 60, where a uniform guess costs ln(1,470) = 7.3.
            nn.init.normal_(self.output.weight, std=(dim * hidden) ** -0.5)
            self.register_buffer("trainable", torch.as_tensor(trained[1:] > 0), persistent=False)

    # --- item representations

    def fused(self, codes: torch.Tensor) -> torch.Tensor:
        """The fused representation [..., fusion_dim] of item numbers ``codes``."""
        keep = self.trained[codes]
        if self.training and self.names:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout[codes]).float()
        known = self.id_projection(self.id_table[codes]) if hasattr(self, "id_table") else 0.0
        parts = [known * keep + self.no_id * (1 - keep)]
        for i, projection in enumerate(self.projections):
            feature = getattr(self, f"feature_{i}")[codes]
            parts.append(projection(feature) * feature[..., -1:])
        return self.fusion(parts)

    def table_from(self, fused_all: torch.Tensor | None) -> torch.Tensor:
        """The scoring table [N + 1, hidden + 1] (row 0 padding): each track's output vector and
        bias, so that a query (hidden state with a 1 appended) times a row is the track's score."""
        if self.head == "linear":
            rows = torch.cat([self.output.weight, self.output.bias[:, None]], dim=1)
        else:
            out = self.output(fused_all)
            rows = torch.cat([out, torch.zeros_like(out[:, :1])], dim=1)[1:]
        return torch.cat([torch.zeros_like(rows[:1]), rows])

    def item_table(self) -> torch.Tensor:
        return self.table_from(self._fused_all())

    def _fused_all(self) -> torch.Tensor | None:
        return (
            self.fused(torch.arange(len(self.trained), device=self.trained.device))
            if self.head == "tied"
            else None
        )

    # --- the prompt

    def encode(self, seqs: torch.Tensor, fused_all: torch.Tensor | None) -> torch.Tensor:
        """Hidden states [B, L, hidden] at every item's position of sequences [B, L] (item
        numbers) or [B, 2, L] (item numbers, completion buckets), left-padded."""
        codes, buckets = (seqs, None) if seqs.dim() == 2 else (seqs[:, 0], seqs[:, 1])
        batch, length = codes.shape
        embed = self.backbone.get_input_embeddings()
        items = self.to_hidden(fused_all[codes] if fused_all is not None else self.fused(codes))
        items = items * (codes > 0)[..., None]
        real = (codes > 0)[..., None]
        if self.completion == "embed":
            items = items + self.completion_embedding(buckets)
        segments = items[:, :, None].to(embed.weight.dtype)
        if self.completion == "prompt":
            text = embed(self.completion_ids[buckets])  # [B, L, K, hidden]
            segments = torch.cat([segments, text], dim=2)
            real = torch.cat([real, self.completion_mask[buckets] & real], dim=2)
        span = segments.shape[2]
        prompt = embed(self.instruction)[None].expand(batch, -1, -1)
        x = torch.cat([prompt, segments.reshape(batch, length * span, -1)], dim=1)
        mask = torch.cat([torch.ones_like(codes[:, :1]).expand(-1, len(self.instruction)), real.reshape(batch, -1).long()], dim=1)  # fmt: skip
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        states = self.backbone(
            inputs_embeds=x, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        at = len(self.instruction) + span * torch.arange(1, length + 1, device=x.device) - 1
        hidden = states[:, at]
        return torch.cat([hidden, torch.ones_like(hidden[..., :1])], dim=-1)

    def forward(
        self, batch: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...]:
        fused_all = self._fused_all()  # one dropout draw for the inputs and the tied head
        table = self.table_from(fused_all)
        if generator is None:
            return self.encode(batch, fused_all)[:, -1], table
        codes = batch if batch.dim() == 2 else batch[:, 0]
        inputs, targets = next_item_targets(codes)
        seqs = inputs if batch.dim() == 2 else torch.stack([inputs, batch[:, 1, :-1]], dim=1)
        return self.encode(seqs, fused_all), targets, table

    def loss_inputs(
        self, batch: torch.Tensor, generator: torch.Generator, table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, targets, _ = self(batch, generator)
        return hidden, targets

    def query(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        return self(seqs)[0]


def completion_texts(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [buckets, K] and mask of the text after an item per completion bucket, right
    aligned: nothing for padding, " (?)" for an unknown ratio, " (0%)" .. " (100%)"."""
    texts = ["", " (?)"] + [f" ({10 * d}%)" for d in range(11)]
    encoded = [tokenizer.encode(t, add_special_tokens=False) if t else [] for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    for i, e in enumerate(encoded):
        if e:
            ids[i, width - len(e) :] = torch.as_tensor(e)
            mask[i, width - len(e) :] = True
    return ids, mask


def build(n_items: int, config: Settings, data: Benchmark, folder: Path | None = None) -> E4SRec:
    """The model for the build ``data``: backbone with LoRA, the frozen ID table, content and
    training play counts. The ID table comes from the ``id_encoder`` folder when training
    (``folder`` None) and from the copy saved in the trained ``folder`` when predicting."""
    check_settings(config)
    tracks = data.tracks
    if tracks.height != n_items:
        raise MmbenchError(f"{data.source}: catalogue of {tracks.height} tracks, expected {n_items}")
    id_table = None
    if config.id_encoder and folder is None:
        id_table = id_encoder_table(config, data)
    elif config.id_encoder:
        try:
            with safe_open(folder / "model.safetensors", "pt") as f:  # the copy saved with the weights
                id_table = f.get_tensor("id_table").numpy()[1:]
        except (OSError, SafetensorError) as exc:
            raise MmbenchError(
                f"{folder}: no ID table in model.safetensors ({str(exc).splitlines()[0]}); "
                "expected a folder written by `mmbench baseline train e4srec`"
            ) from None
    if id_table is not None:
        id_table = np.concatenate([np.zeros((1, id_table.shape[1]), dtype=np.float32), id_table])
    features = content_features(data, config.content)
    features.pop("completion")  # the play's own ratio comes through `completion` instead
    trained = np.concatenate([[0.0], (tracks["n_plays_train"].to_numpy() > 0).astype(np.float64)])
    newest = first_play_share(data) >= 1 - config.new_share
    id_dropout = np.concatenate([[0.0], np.where(newest, config.new_id_dropout, config.id_dropout)])
    backbone, tokenizer = load_backbone(config)
    return E4SRec(backbone, tokenizer, id_table, features, trained, id_dropout, config)
