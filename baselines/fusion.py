"""How a track's parts (its ID vector first, then one projected vector per content config) are
fused into one item representation; shared by sasrec-mm and e4srec.

- ``concat``: a linear layer over the parts side by side;
- ``sum``: a learned weight per part, the parts added (E4SRec-style weighted sum);
- ``gated``: per-item softmax gates over the parts, computed from all of them;
- ``cross_attention``: the ID part attends over all parts (one multi-head attention layer with
  a residual connection), so each track weighs its content by what its ID says;
- ``film``: the content parts give a scale and a shift of the ID part (Perez et al., "FiLM:
  visual reasoning with a general conditioning layer", AAAI 2018).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

Fusion = Literal["concat", "sum", "gated", "cross_attention", "film"]
FUSIONS: tuple[str, ...] = get_args(Fusion)


class ItemFusion(nn.Module):
    """Fuses ``parts`` vectors of ``dim`` each (the ID part first) into one of ``dim``."""

    def __init__(self, kind: str, parts: int, dim: int, heads: int = 1):
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion {kind!r} is not one of {', '.join(FUSIONS)}")
        self.kind = kind
        if kind == "concat":
            self.mix = nn.Linear(parts * dim, dim)
        elif kind == "sum":
            self.weights = nn.Parameter(torch.ones(parts))
        elif kind == "gated":
            self.gate = nn.Linear(parts * dim, parts)
        elif kind == "cross_attention":
            self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm = nn.LayerNorm(dim)
        else:
            # Starts as the identity (scale 1, shift 0): content only moves the ID part once trained.
            self.film = nn.Linear(max(1, parts - 1) * dim, 2 * dim)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``parts``: tensors [..., dim], the ID part first; returns [..., dim]."""
        if self.kind == "concat":
            return self.mix(torch.cat(parts, dim=-1))
        if self.kind == "sum":
            return sum(w * p for w, p in zip(self.weights, parts, strict=True))
        if self.kind == "gated":
            gates = torch.softmax(self.gate(torch.cat(parts, dim=-1)), dim=-1)
            return sum(gates[..., i : i + 1] * p for i, p in enumerate(parts))
        if self.kind == "cross_attention":
            tokens = torch.stack(parts, dim=-2)  # [..., parts, dim]
            flat = tokens.reshape(-1, *tokens.shape[-2:])
            query = self.norm(flat[:, :1])
            attended, _ = self.attention(query, self.norm(flat), self.norm(flat), need_weights=False)
            return (flat[:, 0] + attended[:, 0]).reshape(parts[0].shape)
        content = torch.cat(parts[1:], dim=-1) if len(parts) > 1 else torch.zeros_like(parts[0])
        scale, shift = self.film(content).chunk(2, dim=-1)
        return parts[0] * (1 + scale) + shift
