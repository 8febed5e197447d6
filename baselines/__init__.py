"""Baselines that write predictions for `mmbench evaluate`; `mmbench baseline list` shows them.

Each model is one module with ``fit(train, config) -> state`` and ``score(inputs, state,
config) -> {track_id: score}`` for one instance; :mod:`mmbench.baselines.runner` does the rest
(instance inputs, ranking with the popularity back-off, checkpoints, predictions files).
"""

BASELINES = {
    "pop": "mmbench.baselines.pop",
    "user-repeat": "mmbench.baselines.user_repeat",
    "sknn": "mmbench.baselines.sknn",
}
