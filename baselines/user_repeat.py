"""User-repeat: the user's own most played tracks, most recent first among equal counts."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import Field

from mmbench.baselines import BaselineSettings


class Settings(BaselineSettings):
    max_history: Annotated[int, Field(ge=0)]  # the last plays counted (0: all)


def fit(data: Any, config: Settings) -> dict:
    """Nothing to learn: the scores come from the instance's own history."""
    return {}


def score(inputs: dict, state: dict, config: Settings) -> dict[str, float]:
    """Play count in history + prefix, plus a recency term below 1 that breaks ties."""
    plays = inputs["history"] + inputs["prefix"]
    if config.max_history:
        plays = plays[-config.max_history :]
    counts = Counter(plays)
    last = {track: position for position, track in enumerate(plays)}
    return {track: counts[track] + (last[track] + 1) / (len(plays) + 1) for track in counts}
