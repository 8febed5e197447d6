"""Training and prediction for every baseline: inputs per instance, ranking, checkpoints.

A trained baseline is a folder with ``config.json``: the model, its hyperparameters, the dataset
it was trained on and that dataset's ``catalogue_digest`` (SHA-256 of its catalogue's track ids in
order; not the dataset fingerprint), so that predicting on a dataset with other track ids fails
clearly. Memory-based models (pop, user-repeat, sknn, the probes) have no weights: their ``fit``
reruns at prediction time, which is cheap.

On a build whose next-track target can never repeat a track of its session prefix (the build's
``protocol`` rule, :attr:`Benchmark.excludes_prefix`), every ranking leaves the prefix out. Neural models are trained by :mod:`mmbench.baselines.training`, which
adds their weights and item-embedding table to the folder.
"""

from __future__ import annotations

import importlib
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from types import ModuleType

import mmbench
from mmbench.baselines import BASELINES, BaselineSettings, MemoryBaseline, NeuralBaseline, Ranker, training
from mmbench.baselines.data import Benchmark, catalogue_digest, instance_inputs, popularity_order
from mmbench.errors import MmbenchError
from mmbench.files import atomic_path, write_atomic
from mmbench.progress import progress_bar
from mmbench.schema import MAX_PREDICTIONS
from mmbench.settings import apply_override, validated


def baseline_module(name: str) -> ModuleType:
    """The model's module (``BASELINES``), or a clear error naming the known baselines."""
    if name not in BASELINES:
        raise MmbenchError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    return importlib.import_module(BASELINES[name])


def model_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> BaselineSettings:
    """The model's default hyperparameters (``baselines/configs/NAME.toml``) with overrides,
    validated as the module's ``Settings``."""
    module = baseline_module(name)
    text = (resources.files("mmbench.baselines") / "configs" / f"{name}.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    for item in overrides:
        apply_override(config, item, what=f"{name} hyperparameter")
    return validated(module.Settings, config, f"{name} hyperparameters")


def describe_baselines() -> list[str]:
    """One line per baseline: its name, description and default hyperparameters."""
    lines = []
    for name in BASELINES:
        config = model_config(name)
        settings = ", ".join(f"{k}={v!r}" for k, v in config.model_dump().items() if k != "description")
        lines.append(f"{name:12s} {config.description}" + (f"  [{settings}]" if settings else ""))
    return lines


def rank(
    scores: dict[str, float],
    pop_rank: dict[str, int],
    pop_order: list[str],
    candidates: list[str] | None,
    k: int = MAX_PREDICTIONS,
    excluded: frozenset[str] = frozenset(),
) -> list[str]:
    """Best first by score, then by popularity, then by id; only ``candidates`` when given;
    never a track of ``excluded`` (the prefix, on a build whose target cannot repeat it)."""

    def key(track: str) -> tuple:
        return (-scores.get(track, 0.0), pop_rank.get(track, len(pop_rank)), track)

    if candidates is not None:
        return sorted(candidates, key=key)[:k]
    ranking = sorted((t for t in scores if t in pop_rank and t not in excluded), key=key)[:k]
    if len(ranking) < k:
        seen = set(ranking) | excluded
        ranking += [t for t in pop_order[: k + len(seen)] if t not in seen][: k - len(ranking)]
    return ranking


def train(
    name: str,
    source: str | os.PathLike | None,
    overrides: list[str] | tuple[str, ...],
    out: Path,
    progress: bool = True,
) -> Path:
    """Train the baseline and write its folder: ``config.json`` (hyperparameters, dataset
    identity) and, for the neural models, the weights and the item-embedding table."""
    config = model_config(name, overrides)
    data = Benchmark(source)
    module = baseline_module(name)
    record = {
        "model": name,
        "config": config.model_dump(mode="json"),
        "dataset": str(Path(data.source).resolve()) if Path(data.source).is_dir() else data.source,
        "catalogue_digest": catalogue_digest(data.track_ids),
        "mmbench_version": mmbench.__version__,
    }
    if not isinstance(module, (NeuralBaseline, MemoryBaseline, Ranker)):
        raise MmbenchError(
            f"baseline {name!r} ({module.__name__}) has neither build(), fit() and score(), nor rank_instances()"
        )
    if isinstance(module, Ranker):
        record.update(module.check(config, data))
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "config.json", json.dumps(record, indent=2) + "\n")
        return out
    if isinstance(module, MemoryBaseline):
        module.fit(data, config)  # fails early on a config the model cannot use
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "config.json", json.dumps(record, indent=2) + "\n")
        return out
    if hasattr(module, "provenance"):  # what a model's settings alone do not say (e4srec's weights)
        record.update(module.provenance(config))
    channels = module.channels(config) if hasattr(module, "channels") else ("code",)
    training.seed_everything(config.seed)
    model = module.build(len(data.track_ids), config, data).to(training.pick_device(config.device))
    windows = training.training_windows(data, config.max_len, channels, config.targets)
    validate = training.validation_scorer(data, config.max_len, channels)
    epochs = training.fit(model, windows, config, validate, progress=progress)
    best = max(epochs, key=lambda e: e["validation_ndcg@10"])
    record["training"] = {"windows": len(windows), "best_epoch": best["epoch"], "epochs": epochs}
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch, one process writes
        training.save_checkpoint(model, out, record, data.track_ids)
    return out


def predict(
    model_dir: Path,
    task: str,
    split: str,
    out: Path,
    source: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | None = None,
    keep_prefix: bool = False,
) -> int:
    """Write the ranking of every instance of ``task``/``split``; return how many.

    ``keep_prefix`` is an ablation: the session prefix stays rankable even where the build's
    target cannot repeat it (the rule's effect, measured on one trained model)."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise MmbenchError(
            f"{model_dir}: no config.json; expected a folder written by `mmbench baseline train`"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    name = record["model"]
    module = baseline_module(name)
    config = validated(module.Settings, record["config"], f"{path}: config")
    data = Benchmark(source if source is not None else record["dataset"])
    if keep_prefix:
        data.excludes_prefix = False
    if "catalogue_digest" not in record:
        raise MmbenchError(f"{model_dir}: written by an older mmbench (no catalogue_digest); retrain it")
    if catalogue_digest(data.track_ids) != record["catalogue_digest"]:
        raise MmbenchError(
            f"{model_dir}: trained on a dataset with other track ids than {data.source}; retrain it on this dataset"
        )
    desc = f"{name} {task} {split}"
    if isinstance(module, NeuralBaseline):
        # The device chosen now also decides the dtype a model is built in (e4srec: bf16 on CUDA).
        config = config.replace(device=device or config.device)
        model = module.build(len(data.track_ids), config, data, model_dir).to(
            training.pick_device(config.device)
        )
        training.load_weights(model, model_dir)
        channels = module.channels(config) if hasattr(module, "channels") else ("code",)
        ids, seqs, candidates, excluded = training.instance_sequences(
            data, task, split, config.max_len, channels
        )
        ranked = training.rankings(
            model, seqs, data.track_ids, candidates, excluded, progress=progress, desc=desc
        )
    elif isinstance(module, Ranker):
        config = config.replace(device=device or config.device)
        ids, ranked = module.rank_instances(data, task, split, config, model_dir, predict, progress=progress)
    else:
        state = module.fit(data, config)
        pop_order = popularity_order(data)
        pop_rank = {t: i for i, t in enumerate(pop_order)}
        inputs = instance_inputs(data, task, split)
        ids = [row["instance_id"] for row in inputs]
        ranked = [
            rank(
                module.score(row, state, config),
                pop_rank,
                pop_order,
                row["candidates"],
                excluded=frozenset(row["prefix"]) if data.excludes_prefix else frozenset(),
            )
            for row in progress_bar(inputs, desc=desc, disable=not progress)
        ]
    out.parent.mkdir(parents=True, exist_ok=True)  # a new folder for the predictions is made
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as f:
        for instance_id, ranking in zip(ids, ranked, strict=True):
            f.write(json.dumps({"instance_id": instance_id, "predictions": ranking}) + "\n")
    return len(ids)
