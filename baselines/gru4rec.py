"""GRU4Rec (Hidasi et al., "Session-based recommendations with recurrent neural networks", ICLR
2016) with the cross-entropy loss over the catalogue of its later versions (Hidasi & Karatzoglou,
CIKM 2018): a GRU over the item sequence, next-item prediction at every step."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmbench.baselines.training import (
    Fraction,
    Positive,
    SequentialRecommender,
    TrainingSettings,
    next_item_targets,
)


class GRU4Rec(SequentialRecommender):
    """Item embeddings (shared with the output layer), a GRU and a projection to item space.

    Sequences are packed, so padding never enters the recurrence: the state of a sequence does
    not depend on how much padding precedes it.
    """

    def __init__(self, n_items: int, dim: int, layers: int, dropout: float):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(dim, dim)

    def item_table(self) -> torch.Tensor:
        return self.items.weight

    def encode(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden state [B, L, D] at every position of left-padded sequences (0 at padding);
        ``table`` is the model's own item table, looked up through its embedding layer."""
        length = seqs.shape[1]
        lengths = (seqs > 0).sum(dim=1).clamp(min=1)
        shift = (length - lengths)[:, None]
        steps = torch.arange(length, device=seqs.device)[None]
        right = seqs.gather(1, (steps + shift) % length)  # the same items, padding moved right
        packed = pack_padded_sequence(
            self.dropout(self.items(right)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=length)
        left = states.gather(1, ((steps - shift) % length)[..., None].expand(-1, -1, states.shape[2]))
        return self.out(self.dropout(left)) * (seqs > 0)[..., None]

    def loss_inputs(
        self, batch: torch.Tensor, generator: torch.Generator, table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = next_item_targets(batch)
        return self.encode(inputs), targets

    def query(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(seqs)[:, -1]


class Settings(TrainingSettings):
    dim: Positive
    layers: Positive
    dropout: Fraction


def build(n_items: int, config: Settings, data: Any = None, folder: Any = None) -> GRU4Rec:
    """The model for a catalogue of ``n_items`` tracks from its hyperparameters."""
    return GRU4Rec(n_items, config.dim, config.layers, config.dropout)
