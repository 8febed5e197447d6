"""A submission's ``metadata.yaml``: a typed model, unknown keys rejected.

model: SASRec (ours)               # the display name
authors: [Ada Lovelace]
contact: ada@example.org
paper: https://arxiv.org/abs/...   # optional
code: https://github.com/...       # required
mmbench_version: 0.1.0
dataset: lastfm1k-mm               # or sample: the synthetic sample
dataset_fingerprint: 9999c3...     # `mmbench info DIR` prints it
task: next-track
split: test
runs: 3
seeds: [0, 1, 2]
hyperparameter_selection: validation   # or defaults: nothing was tuned
modalities: [ids, audio]
backbone: null
parameters: 1200000
training_data: train
hardware: 1x A100 40GB
date: 2026-12-01
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from mmbench.errors import MmbenchError

Modality = Literal["ids", "audio", "lyrics", "mgphot", "completion", "text"]
MODALITIES: tuple[str, ...] = Modality.__args__
SHA256 = r"^[0-9a-f]{64}$"


class RemotePredictions(BaseModel):
    """A predictions file too large for the repository: where to get it and its digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.jsonl\.gz$", description="Its name in the submission."
    )
    url: str = Field(pattern=r"^(https?|file)://", description="Where the recompute step downloads it.")
    sha256: str = Field(pattern=SHA256, description="SHA-256 of the decompressed JSON Lines.")


class Metadata(BaseModel):
    """What a leaderboard entry declares about its model, data use and runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=120, description="The display name.")
    authors: list[str] = Field(min_length=1)
    contact: str = Field(min_length=3)
    paper: HttpUrl | None = None
    code: str = Field(
        pattern=r"^(https?://\S+|mmbench:\S+)$",
        description="A URL of the code, or mmbench:PATH for a baseline of this package.",
    )
    mmbench_version: str
    dataset: Literal["lastfm1k-mm", "sample"]
    dataset_fingerprint: str = Field(pattern=SHA256)
    task: Literal["next-track", "paper-sampled"]
    split: Literal["test", "validation"]
    runs: int = Field(ge=1, le=100)
    seeds: list[int]
    hyperparameter_selection: Literal["validation", "defaults"]
    modalities: list[Modality] = Field(min_length=1)
    backbone: str | None = None
    parameters: int | None = Field(default=None, ge=0)
    training_data: Literal["train"]
    hardware: str = Field(min_length=1)
    date: datetime.date
    baseline: bool = Field(default=False, description="One of mmbench's own baselines.")
    probe: bool = Field(
        default=False,
        description="A protocol probe (a baseline with no model and no content that exploits the protocol).",
    )
    remote_predictions: list[RemotePredictions] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Metadata:
        if len(self.seeds) != self.runs:
            raise ValueError(f"seeds lists {len(self.seeds)} seed(s) but runs is {self.runs}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities lists a modality twice")
        if self.probe and not self.baseline:
            raise ValueError("probe: only mmbench's own baselines are marked as protocol probes")
        return self


def read_metadata(path: Path) -> tuple[Metadata, bytes]:
    """The validated metadata and the file's bytes; a clear error naming the file and field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MmbenchError(f"{path}: cannot read the metadata ({exc.strerror})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MmbenchError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise MmbenchError(f"{path}: expected a mapping of metadata fields, e.g. 'model: My model'")
    try:
        return Metadata.model_validate(data), raw
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'metadata'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MmbenchError(f"{path}: {problems}") from None
