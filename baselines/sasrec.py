"""SASRec (Kang & McAuley, "Self-attentive sequential recommendation", ICDM 2018): causal
self-attention over the item sequence, next-item cross-entropy at every position."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.baselines.training import (
    Fraction,
    Positive,
    SequentialRecommender,
    TrainingSettings,
    next_item_targets,
)


class AttentionEncoder(nn.Module):
    """Pre-norm Transformer blocks over left-padded item embeddings with learned positions
    counted from the end (the last item always has the same position). A position attends only
    to real items (and to itself, so that padding rows stay finite); ``causal`` also hides the
    items after it."""

    def __init__(self, dim: int, layers: int, heads: int, dropout: float, max_len: int, causal: bool):
        super().__init__()
        self.heads, self.max_len, self.causal = heads, max_len, causal
        self.positions = nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``x`` [B, L, D] item representations, ``real`` [B, L] True where not padding."""
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence of {length} items is longer than max_len={self.max_len}")
        where = torch.arange(self.max_len - length, self.max_len, device=x.device)
        x = self.dropout(x + self.positions(where)[None])
        allowed = real[:, None, :] | torch.eye(length, dtype=torch.bool, device=x.device)[None]
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()[None]
        blocked = (~allowed).repeat_interleave(self.heads, dim=0)
        for block in self.blocks:
            x = block(x, src_mask=blocked)
        return self.norm(x)


class SASRec(SequentialRecommender):
    """Item embeddings (shared with the output layer) + a causal :class:`AttentionEncoder`."""

    def __init__(self, n_items: int, dim: int, layers: int, heads: int, dropout: float, max_len: int):
        super().__init__()
        self.dim = dim
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.encoder = AttentionEncoder(dim, layers, heads, dropout, max_len, causal=True)

    def item_table(self) -> torch.Tensor:
        return self.items.weight

    def encode(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden state [B, L, D] at every position, from the items up to that position."""
        # A fused table goes through F.embedding, not table[seqs]: the backward of advanced indexing
        # accumulates with parallel atomic adds on a multi-core CPU, so two runs of one seed differed.
        x = self.items(seqs) if table is None or table is self.items.weight else F.embedding(seqs, table)
        return self.encoder(x * math.sqrt(self.dim), seqs > 0)

    def loss_inputs(
        self, batch: torch.Tensor, generator: torch.Generator, table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = next_item_targets(batch)
        return self.encode(inputs, table), targets

    def query(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(seqs, table)[:, -1]


class Settings(TrainingSettings):
    dim: Positive
    layers: Positive
    heads: Positive
    dropout: Fraction


def build(n_items: int, config: Settings, data: Any = None, folder: Any = None) -> SASRec:
    """The model for a catalogue of ``n_items`` tracks from its hyperparameters."""
    return SASRec(n_items, config.dim, config.layers, config.heads, config.dropout, config.max_len)
