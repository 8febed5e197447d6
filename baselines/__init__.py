"""Baselines that write predictions for `mmbench evaluate`; `mmbench baseline list` shows them.

Each model is one module with ``fit(train, config) -> state`` and ``score(inputs, state,
config) -> {track_id: score}`` for one instance, or, for the neural models, ``build(n_items,
config, source) -> nn.Module`` trained by the shared loop of :mod:`mmbench.baselines.training`;
:mod:`mmbench.baselines.runner` does the rest (instance inputs, ranking, checkpoints,
predictions files).
"""

BASELINES = {
    "pop": "mmbench.baselines.pop",
    "user-repeat": "mmbench.baselines.user_repeat",
    "sknn": "mmbench.baselines.sknn",
    "sasrec": "mmbench.baselines.sasrec",
    "bert4rec": "mmbench.baselines.bert4rec",
    "gru4rec": "mmbench.baselines.gru4rec",
    "sasrec-mm": "mmbench.baselines.sasrec_mm",
}
