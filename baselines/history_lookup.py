"""History lookup, a protocol probe: the tracks the user has heard, the most recently heard
first, then the popularity ranking.

No model and no content: it measures how far knowing the user's own plays goes. On
``paper-sampled`` the negatives exclude every track of the input, so a heard target is the only
heard candidate and this rule ranks it first (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

from mmbench.baselines import BaselineSettings as Settings  # a description, nothing to set


def fit(data: Any, config: Settings) -> dict:
    """Nothing to learn: the scores come from the instance's own history."""
    return {}


def score(inputs: dict, state: dict, config: Settings) -> dict[str, float]:
    """Each heard track scores the position of its last play in history + prefix (1 = the
    oldest), so the most recent comes first."""
    plays = inputs["history"] + inputs["prefix"]
    return {track: float(position) for position, track in enumerate(plays, 1)}
