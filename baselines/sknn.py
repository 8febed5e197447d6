"""Session-based kNN (Jannach & Ludewig, "When recurrent neural networks meet the neighborhood
for session-based recommendation", RecSys 2017) over the training sessions."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from mmbench.baselines import BaselineSettings
from mmbench.baselines.data import Benchmark


class Settings(BaselineSettings):
    sample_size: Annotated[int, Field(gt=0)]  # the most recent sessions that share a track
    k: Annotated[int, Field(gt=0)]  # neighbours that vote
    similarity: Literal["cosine", "jaccard"]
    history_as_session: Annotated[int, Field(ge=0)]  # plays of the history standing in for an empty prefix


def fit(data: Benchmark, config: Settings) -> dict:
    """Index the training sessions: their track sets, newest first, and an inverted index."""
    ordered = data.sessions("train").sort("start_time", "session_id", descending=[True, False])
    sessions = [frozenset(tracks) for tracks in ordered["track_ids"].to_list()]
    index: dict[str, list[int]] = {}
    for position, tracks in enumerate(sessions):
        for track in tracks:
            index.setdefault(track, []).append(position)  # ascending position = newest first
    return {"sessions": sessions, "index": index}


def _similarity(a: frozenset, b: frozenset, kind: str) -> float:
    common = len(a & b)
    if kind == "jaccard":
        return common / len(a | b)
    return common / math.sqrt(len(a) * len(b))


def score(inputs: dict, state: dict, config: Settings) -> dict[str, float]:
    """Sum of the similarities of the k nearest sessions that contain each track."""
    current = inputs["prefix"] or inputs["history"][-config.history_as_session :]
    if not current:
        return {}
    session = frozenset(current)
    candidates: set[int] = set()
    for track in session:
        candidates.update(state["index"].get(track, ())[: config.sample_size])
    recent = sorted(candidates)[: config.sample_size]
    neighbours = sorted(
        ((_similarity(session, state["sessions"][p], config.similarity), p) for p in recent),
        key=lambda pair: (-pair[0], pair[1]),
    )[: config.k]
    scores: dict[str, float] = {}
    for similarity, p in neighbours:
        for track in state["sessions"][p]:
            scores[track] = scores.get(track, 0.0) + similarity
    return scores
