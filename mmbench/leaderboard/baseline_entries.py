"""The leaderboard entry of a baseline trained by mmbench: its display name, modalities and
backbone read from the trained folder's own settings (never typed by hand), and its metadata.
Used by leaderboard/sample_entries.py and `mmbench reproduce`."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from mmbench.leaderboard.metadata import modalities as known_modalities

NEURAL = ("sasrec", "bert4rec", "gru4rec", "sasrec-mm")
NAMES = {
    "pop": "Popularity",
    "user-repeat": "User repeat",
    "sknn": "Session kNN",
    "history-lookup": "History lookup",
    "unseen-first": "Unseen first",
    "sasrec": "SASRec",
    "bert4rec": "BERT4Rec",
    "gru4rec": "GRU4Rec",
    "sasrec-mm": "SASRec-MM",
    "e4srec": "E4SRec",
    "zeroshot": "Zero-shot likelihood",
}
BACKBONES = {"smollm2-135m": "SmolLM2-135M", "": "SmolLM2-135M"}  # "": the packaged default


def described(baseline: str, model_dir: Path) -> dict:
    """The display name, modalities and backbone of a trained model, from its config.json."""
    config = json.loads((model_dir / "config.json").read_text())["config"]
    content = list(config.get("content", []))
    modalities = ["ids"] + sorted({c.split("-")[0] for c in content}, key=list(known_modalities()).index)
    extra = list(content)
    backbone = None
    if baseline == "sasrec-mm":  # it always fuses the track's mean training completion ratio
        modalities.append("completion")
        extra.append("mean completion")
    if baseline == "e4srec":
        backbone = BACKBONES.get(config["backbone"], config["backbone"])
        ids = []
        if config["id_encoder"]:
            ids = [json.loads((Path(config["id_encoder"]) / "config.json").read_text())["model"] + " IDs"]
        extra = [backbone, ", ".join([*ids, *content])]
        if config["completion"] != "none":
            modalities.append("completion")
            extra.append(f"completion as {'text' if config['completion'] == 'prompt' else 'embedding'}")
        if config["item_text"]:
            modalities.append("text")
            extra.append(f"item text on the last {config['text_items'] or 'all'}")
        extra += ["random weights"] * (config["weights"] == "random") + ["no LoRA"] * (not config["lora"])
        extra += ["last-50 targets"] * (config["targets"] == "last")
    if baseline == "zeroshot":
        backbone = BACKBONES.get(config["model"], config["model"])
        modalities = ["ids", "text"]  # the retriever's IDs, the tracks' names
        modalities += ["mgphot"] * bool(config["mgphot"]) + ["completion"] * bool(config["completion"])
        extra = [backbone, f"over SASRec's top {config['shortlist']}"]
    modalities = sorted(set(modalities), key=list(known_modalities()).index)
    name = NAMES[baseline] + (
        f" ({'; '.join(extra) if baseline == 'e4srec' else ', '.join(extra)})" if extra else ""
    )
    return {"model": name, "modalities": modalities, "backbone": backbone}


def metadata(
    description: dict,
    baseline: str,
    task: str,
    seeds: list[int],
    fingerprint: str,
    dataset: str = "sample",
    hardware: str | None = None,
) -> dict:
    """An entry's metadata.yaml data (``dataset``: "sample" or "lastfm1k-mm"; ``hardware``: by
    default this machine's architecture and core count)."""
    from importlib.metadata import version

    return {
        **{k: v for k, v in description.items() if k != "backbone"},
        "authors": ["mmbench maintainers"],
        "contact": "the mmbench issue tracker",
        "code": f"mmbench:baselines/{baseline.replace('-', '_')}.py",
        "mmbench_version": version("mmbench"),
        "dataset": dataset,
        "dataset_fingerprint": fingerprint,
        "task": task,
        "split": "test",
        "runs": len(seeds),
        "seeds": seeds,
        # the zero-shot ranker's defaults are the settings benchmarks/zeroshot_results.py chose on validation
        "hyperparameter_selection": "validation"
        if baseline in (*NEURAL, "e4srec", "zeroshot")
        else "defaults",
        "backbone": description["backbone"],
        "training_data": "train",
        "hardware": hardware or f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "date": datetime.date.today(),
    }
