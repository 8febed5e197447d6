"""Pop: every track scored by its number of training plays."""

from __future__ import annotations

from typing import Any


def fit(data: Any, config: dict) -> dict:
    """Nothing to learn beyond the popularity order that the runner computes for every model."""
    return {}


def score(inputs: dict, state: dict, config: dict) -> dict[str, float]:
    """No instance-specific scores: the ranking is the popularity back-off itself."""
    return {}
