"""Pop: every track scored by its number of training plays."""

from __future__ import annotations

from typing import Any

from mmbench.baselines import BaselineSettings as Settings  # a description, nothing to set


def fit(data: Any, config: Settings) -> dict:
    """Nothing to learn beyond the popularity order that the runner computes for every model."""
    return {}


def score(inputs: dict, state: dict, config: Settings) -> dict[str, float]:
    """No instance-specific scores: the ranking is the popularity back-off itself."""
    return {}
