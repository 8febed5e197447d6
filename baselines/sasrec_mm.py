"""SASRec-MM: SASRec whose item representation fuses the ID embedding with projections of the
track's content (audio and lyric embeddings, MGPHot genes: any ``content`` config of the build)
and its mean training completion ratio.

A track never played in training has no trained ID embedding: its ID part is a learned "no ID"
vector, so it is represented (and ranked) by its content. During training, IDs are replaced by
that vector at random (DropoutNet, Volkovs et al., NeurIPS 2017), most often for the tracks
first played at the end of the training period: the test period's cold tracks are new
releases, and those are the training's, so the content projections and the "no ID" vector
learn what a new track is like.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from mmbench.baselines.data import Benchmark
from mmbench.baselines.fusion import Fusion, ItemFusion
from mmbench.baselines.sasrec import SASRec
from mmbench.baselines.sasrec import Settings as SASRecSettings
from mmbench.baselines.training import Fraction
from mmbench.errors import MmbenchError


def content_features(data: Benchmark, configs: list[str]) -> dict[str, np.ndarray]:
    """Per config, a ``[N + 1, d + 1]`` float32 matrix in item-number order: the standardized
    vector (0 where the track has none) and a last column that is 1 where it has one. Plus
    ``completion``: the track's mean completion ratio in training, and whether it has one."""
    track_ids = data.track_ids
    order = pl.DataFrame({"track_id": track_ids, "item": np.arange(1, len(track_ids) + 1)})
    out = {}
    for config in configs:
        try:
            frame = data.frame(config, "catalog")
        except MmbenchError as exc:
            raise MmbenchError(f"content config {config!r}: {exc}") from None
        column = "genes" if "genes" in frame.columns else "embedding"
        rows = frame.join(order, on="track_id")
        if rows.height == 0:
            raise MmbenchError(f"content config {config!r} has no track of this catalogue")
        vectors = np.stack(rows[column].to_numpy()).astype(np.float64)
        vectors = (vectors - vectors.mean(axis=0)) / (vectors.std(axis=0) + 1e-6)
        matrix = np.zeros((len(track_ids) + 1, vectors.shape[1] + 1), dtype=np.float32)
        matrix[rows["item"].to_numpy(), :-1] = vectors
        matrix[rows["item"].to_numpy(), -1] = 1.0
        out[config] = matrix
    sessions = data.sessions("train")
    ratios = (
        sessions.select(pl.col("track_ids").alias("track_id"), "completion_ratios")
        .explode("track_id", "completion_ratios")
        .drop_nulls("completion_ratios")
        .group_by("track_id")
        .agg(pl.col("completion_ratios").mean())
        .join(order, on="track_id")
    )
    completion = np.zeros((len(track_ids) + 1, 2), dtype=np.float32)
    completion[ratios["item"].to_numpy(), 0] = ratios["completion_ratios"].to_numpy()
    completion[ratios["item"].to_numpy(), 1] = 1.0
    out["completion"] = completion
    return out


def first_play_share(data: Benchmark) -> np.ndarray:
    """When each track was first played in training, as a share of the training period (0 = its
    first session, 1 = its last; NaN for a track never played in training)."""
    sessions = data.sessions("train")
    first = (
        sessions.select(pl.col("track_ids").alias("track_id"), pl.col("start_time").dt.epoch("s"))
        .explode("track_id")
        .group_by("track_id")
        .agg(pl.col("start_time").min())
    )
    begin, end = sessions["start_time"].dt.epoch("s").min(), sessions["start_time"].dt.epoch("s").max()
    order = pl.DataFrame({"track_id": data.track_ids}).join(
        first, on="track_id", how="left", maintain_order="left"
    )
    return ((order["start_time"].cast(pl.Float64) - begin) / max(end - begin, 1)).fill_null(np.nan).to_numpy()


class SASRecMM(SASRec):
    """SASRec over fused item representations (see the module docstring)."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        layers: int,
        heads: int,
        dropout: float,
        max_len: int,
        features: dict[str, np.ndarray],
        trained: np.ndarray,
        fusion: str,
        id_dropout: np.ndarray,
    ):
        super().__init__(n_items, dim, layers, heads, dropout, max_len)
        self.names = sorted(features)
        for i, name in enumerate(self.names):
            self.register_buffer(f"feature_{i}", torch.as_tensor(features[name]))
        self.register_buffer("trained", torch.as_tensor(trained, dtype=torch.float32)[:, None])
        self.register_buffer("trainable", torch.as_tensor(trained[1:] > 0), persistent=False)
        self.register_buffer("id_dropout", torch.as_tensor(id_dropout, dtype=torch.float32)[:, None])
        # Added where a track has no ID (never played in training, or dropped): what a track
        # without history is like, beyond its content.
        self.no_id = nn.Parameter(torch.zeros(dim))
        self.projections = nn.ModuleList(nn.Linear(features[n].shape[1], dim) for n in self.names)
        self.fusion = ItemFusion(fusion, len(self.names) + 1, dim, heads)

    def item_table(self) -> torch.Tensor:
        keep = self.trained
        if self.training:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout).float()
        parts = [self.items.weight * keep + self.no_id * (1 - keep)]
        for i, (name, proj) in enumerate(zip(self.names, self.projections, strict=True)):
            feature = getattr(self, f"feature_{i}")
            part = proj(feature) * feature[:, -1:]
            # The completion ratio, like the ID, exists only for tracks played in training: it is
            # dropped with the ID, so that a dropped item looks exactly like a cold one.
            parts.append(part * keep if name == "completion" else part)
        table = self.fusion(parts)
        return torch.cat([torch.zeros_like(table[:1]), table[1:]])  # row 0 stays padding


class Settings(SASRecSettings):
    content: list[str]  # content configs of the build
    fusion: Fusion
    id_dropout: Fraction
    new_share: Fraction
    new_id_dropout: Fraction


def build(n_items: int, config: Settings, data: Benchmark, folder: Any = None) -> SASRecMM:
    """The model for the build ``data`` (content and training play counts read from it)."""
    tracks = data.tracks
    if tracks.height != n_items:
        raise MmbenchError(f"{data.source}: catalogue of {tracks.height} tracks, expected {n_items}")
    features = content_features(data, config.content)
    trained = np.concatenate([[0.0], (tracks["n_plays_train"].to_numpy() > 0).astype(np.float64)])
    newest = first_play_share(data) >= 1 - config.new_share
    id_dropout = np.where(newest, config.new_id_dropout, config.id_dropout)
    return SASRecMM(
        n_items,
        config.dim,
        config.layers,
        config.heads,
        config.dropout,
        config.max_len,
        features,
        trained,
        config.fusion,
        np.concatenate([[0.0], id_dropout]),
    )
