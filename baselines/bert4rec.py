"""BERT4Rec (Sun et al., "BERT4Rec: sequential recommendation with bidirectional encoder
representations from transformer", CIKM 2019): bidirectional self-attention trained to fill in
masked items (cloze); the next item is predicted at a mask appended to the sequence."""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from mmbench.baselines.sasrec import AttentionEncoder
from mmbench.baselines.training import Fraction, Positive, SequentialRecommender, TrainingSettings
from mmbench.errors import MmbenchError


class BERT4Rec(SequentialRecommender):
    """Item embeddings with an extra mask token (N + 1, never scored) + a bidirectional encoder."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        layers: int,
        heads: int,
        dropout: float,
        max_len: int,
        mask_probability: float,
    ):
        super().__init__()
        if max_len < 2:
            raise MmbenchError(
                f"bert4rec: max_len must be at least 2 (the history and the mask), got {max_len}"
            )
        self.dim, self.max_len, self.mask_probability = dim, max_len, mask_probability
        self.mask_id = n_items + 1
        self.items = nn.Embedding(n_items + 2, dim, padding_idx=0)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.encoder = AttentionEncoder(dim, layers, heads, dropout, max_len, causal=False)

    def item_table(self) -> torch.Tensor:
        return self.items.weight[: self.mask_id]

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        # The mask token's row is not in item_table() (it is never scored), so look up all rows.
        return self.encoder(self.items(seqs) * math.sqrt(self.dim), seqs > 0)

    def cloze(self, seqs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace each real item by the mask token with ``mask_probability`` (the last item of
        a sequence where nothing was drawn); targets are the hidden items, 0 elsewhere."""
        real = seqs > 0
        draw = torch.rand(seqs.shape, generator=generator).to(seqs.device) < self.mask_probability
        masked = draw & real
        none = ~masked.any(dim=1)
        masked[:, -1] |= none & real[:, -1]
        inputs = torch.where(masked, torch.full_like(seqs, self.mask_id), seqs)
        return inputs, torch.where(masked, seqs, torch.zeros_like(seqs))

    def loss_inputs(
        self, batch: torch.Tensor, generator: torch.Generator, table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.cloze(batch[:, 1:], generator)
        return self.encode(inputs), targets

    def query(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        keep = seqs[:, -(self.max_len - 1) :]
        mask = torch.full((len(seqs), 1), self.mask_id, dtype=seqs.dtype, device=seqs.device)
        return self.encode(torch.cat([keep, mask], dim=1))[:, -1]


class Settings(TrainingSettings):
    dim: Positive
    layers: Positive
    heads: Positive
    dropout: Fraction
    mask_probability: Annotated[float, Field(gt=0, lt=1)]


def build(n_items: int, config: Settings, data: Any = None, folder: Any = None) -> BERT4Rec:
    """The model for a catalogue of ``n_items`` tracks from its hyperparameters."""
    return BERT4Rec(
        n_items,
        config.dim,
        config.layers,
        config.heads,
        config.dropout,
        config.max_len,
        config.mask_probability,
    )
