"""Baselines that write predictions for `mmbench evaluate`; `mmbench baseline list` shows them.

Each model is one module with ``fit(data, config) -> state`` and ``score(inputs, state,
config) -> {track_id: score}`` for one instance (``config``: the module's
``Settings``, a :class:`BaselineSettings`), or, for the neural models, ``build(n_items,
config, source) -> nn.Module`` trained by the shared loop of :mod:`mmbench.baselines.training`,
or, for the rankers that rank a whole split at once (the zero-shot LLMs), ``check`` and
``rank_instances``;
:mod:`mmbench.baselines.runner` does the rest (instance inputs, ranking, checkpoints,
predictions files).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mmbench.settings import Settings

BASELINES = {
    "pop": "mmbench.baselines.pop",
    "user-repeat": "mmbench.baselines.user_repeat",
    "sknn": "mmbench.baselines.sknn",
    "history-lookup": "mmbench.baselines.history_lookup",
    "unseen-first": "mmbench.baselines.unseen_first",
    "sasrec": "mmbench.baselines.sasrec",
    "bert4rec": "mmbench.baselines.bert4rec",
    "gru4rec": "mmbench.baselines.gru4rec",
    "sasrec-mm": "mmbench.baselines.sasrec_mm",
    "e4srec": "mmbench.baselines.e4srec",
    "zeroshot": "mmbench.baselines.zeroshot",
}


class BaselineSettings(Settings):
    """A baseline's hyperparameters: each model module declares ``Settings``, a subclass naming
    its fields and their types; ``baselines/configs/NAME.toml`` holds the defaults (every field,
    with the reasons for its value)."""

    description: str


# Protocol probes: rules with no model and no content that exploit what the protocol lets any
# model know; a model's gain is only meaningful above them (docs/protocol.md).
PROBES = ("history-lookup", "unseen-first")


@runtime_checkable
class MemoryBaseline(Protocol):
    """A model with nothing to train: state from the build (``data``, a
    :class:`~mmbench.baselines.data.Benchmark`: the training sessions, or for a protocol probe
    what is known before each instance), then a score per candidate track of one instance (its
    ``start``, ``history``, ``prefix`` and ``candidates``)."""

    def fit(self, data: Any, config: Any) -> Any: ...

    def score(self, inputs: dict, state: Any, config: Any) -> dict[str, float]: ...


@runtime_checkable
class NeuralBaseline(Protocol):
    """A model trained by the shared loop: ``build`` makes its ``nn.Module`` for a catalogue of
    ``n_items`` tracks of the build ``data`` (a :class:`~mmbench.baselines.data.Benchmark`);
    ``folder`` is the trained model's folder when predicting, None when training. Optionally,
    ``channels(config)`` names the per-item inputs beyond the item number
    (:mod:`mmbench.baselines.training`)."""

    def build(self, n_items: int, config: Any, data: Any, folder: Any = None) -> Any: ...


@runtime_checkable
class Ranker(Protocol):
    """A model with nothing to train that ranks a whole split at once: ``check(config, data)``
    validates the settings when the folder is written (and returns what to record beside them),
    ``rank_instances(data, task, split, config, folder, predict, progress)`` returns the instance
    ids and their rankings (``predict``: the runner's, for a model that ranks another's output)."""

    def check(self, config: Any, data: Any) -> dict: ...

    def rank_instances(
        self, data: Any, task: str, split: str, config: Any, folder: Any, predict: Any, progress: bool = True
    ) -> tuple[list[str], list[list[str]]]: ...
