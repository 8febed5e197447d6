"""Segments of the evaluation breakdown: groups of instances by their target.

The build publishes each instance's labels as columns of the ``instances`` config
(``target_heard_before``, ``target_popularity``, ``target_cold``, ``target_cold_new`` and one
``target_has_<config>`` per content config), so any tool can slice results with them; the evaluator reads the same
columns. docs/protocol.md defines each label.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mmbench.schema import content_label

POPULARITY_GROUPS = ("head", "torso", "tail")
_CONTENT_PREFIX = content_label("")


def popularity_thresholds(n_plays_train: np.ndarray) -> tuple[int, int]:
    """The training play counts from which a track is ``head`` and ``torso``.

    Tracks sorted by training plays, most first: the head ends with the track at which the
    cumulative share of training plays reaches 1/3, the torso with the one at which it reaches
    2/3, the tail holds the rest (so each holds about a third of the plays). A track is head if
    it has at least as many plays as that first track, torso if at least as many as the second;
    tracks with equal counts share a group, and a track never played in training is tail.
    """
    order = np.sort(n_plays_train)[::-1]
    total = order.sum()
    if total == 0:
        return 1, 1
    share = np.cumsum(order) / total
    head = order[np.searchsorted(share, 1 / 3)]
    torso = order[np.searchsorted(share, 2 / 3)]
    return max(int(head), 1), max(int(torso), 1)


def popularity_group(n_plays_train: np.ndarray, thresholds: tuple[int, int]) -> np.ndarray:
    """``head``, ``torso`` or ``tail`` for each count, by :func:`popularity_thresholds`."""
    head, torso = thresholds
    return np.select([n_plays_train >= head, n_plays_train >= torso], ["head", "torso"], "tail")


LABELS = ("target_heard_before", "target_popularity", "target_cold", "target_cold_new")


def segment_columns(instances: pa.Table) -> list[str]:
    """The label columns of an ``instances`` table: the contract's labels, then one
    ``target_has_<config>`` per content config, in the table's order."""
    return [c for c in instances.column_names if c in LABELS or c.startswith(_CONTENT_PREFIX)]


def segment_masks(instances: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks over the rows of ``instances`` for each segment and group, from its labels.

    A segment is named by its label column and a group by the column's value, as written on the
    command line (``--segment target_heard_before=true``): ``true`` and ``false`` for a boolean
    label, ``head``, ``torso`` and ``tail`` for ``target_popularity``.
    """
    out = {}
    for column in segment_columns(instances):
        values = instances[column].to_numpy(zero_copy_only=False)
        if column == "target_popularity":
            out[column] = {group: values == group for group in POPULARITY_GROUPS}
        else:
            flag = values.astype(bool)
            out[column] = {"true": flag, "false": ~flag}
    return out
