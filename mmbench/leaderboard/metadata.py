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

Whether an entry is one of mmbench's baselines (or a protocol probe) is not the entry's to say:
``leaderboard/baselines.yaml``, which the maintainers own, lists them (:mod:`.rules`).
"""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from mmbench.errors import MmbenchError
from mmbench.settings import validation_problems


def modalities() -> tuple[str, ...]:
    """The modalities an entry may list, in the order entries list them: track ids, the content
    kinds of the builder (mmbench.builders.kinds.KINDS), the MGPHot genes, completion ratios."""
    from mmbench.builders.kinds import KINDS

    return ("ids", *(kind.name for kind in KINDS), "mgphot", "completion")


SHA256 = r"^[0-9a-f]{64}$"
RUN_FILE = r"^seed[0-9]{1,9}\.jsonl\.gz$"
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no line breaks or other control characters
MAINTAINER_FIELDS = ("baseline", "probe")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice: a reader sees the first
    value where the loader would keep the last."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> tuple[object, bytes]:
    """A YAML file's data and bytes; duplicate keys and syntax errors are errors naming the file
    and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MmbenchError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(raw, Loader=_UniqueKeyLoader), raw  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise MmbenchError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None


def package_module(code: str) -> str | None:
    """The module named by ``mmbench:baselines/sasrec.py`` (``mmbench.baselines.sasrec``) if the
    installed package has it, else None."""
    name = "mmbench." + code.removeprefix("mmbench:").removesuffix(".py").replace("/", ".")
    try:
        return name if importlib.util.find_spec(name) is not None else None
    except ModuleNotFoundError:
        return None


class RemotePredictions(BaseModel):
    """A predictions file too large for the repository: where to get it and its digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(pattern=RUN_FILE, description="Its name in the submission: seed<N>.jsonl.gz.")
    url: str = Field(
        pattern=r"^https://\S+$", description="Where the recompute step downloads it (https only)."
    )
    size: int = Field(
        gt=0, le=1 << 40, description="The .jsonl.gz file's size in bytes; reading stops past it."
    )
    sha256: str = Field(pattern=SHA256, description="SHA-256 of the decompressed JSON Lines.")


class Metadata(BaseModel):
    """What a leaderboard entry declares about its model, data use and runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=120, pattern=PRINTABLE, description="The display name.")
    authors: list[Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]] = Field(
        min_length=1
    )
    contact: str = Field(min_length=3, max_length=200, pattern=PRINTABLE)
    paper: HttpUrl | None = None
    code: str = Field(
        pattern=r"^(https?://\S+|mmbench:[a-z_]+(/[a-z0-9_]+)*\.py)$",
        description="A URL of the code, or mmbench:PATH of a module of this package (baselines/sasrec.py).",
    )
    mmbench_version: str
    dataset: Literal["lastfm1k-mm", "sample"]
    dataset_fingerprint: str = Field(pattern=SHA256)
    task: Literal["next-track", "paper-sampled"]
    split: Literal["test", "validation"]
    runs: int = Field(ge=1, le=100)
    seeds: list[int]
    hyperparameter_selection: Literal["validation", "defaults"]
    modalities: list[str] = Field(min_length=1)
    backbone: str | None = Field(default=None, max_length=120, pattern=PRINTABLE)
    parameters: int | None = Field(default=None, ge=0)
    training_data: Literal["train"]
    hardware: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)
    date: datetime.date = Field(description="The submission date; it breaks ties in the tables.")
    remote_predictions: list[RemotePredictions] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _not_self_declared(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in MAINTAINER_FIELDS:
                if key in data:
                    raise ValueError(
                        f"{key}: not set by an entry; the maintainers list mmbench's baselines and "
                        "probes in leaderboard/baselines.yaml"
                    )
        return data

    @field_validator("code")
    @classmethod
    def _module_exists(cls, code: str) -> str:
        if code.startswith("mmbench:") and package_module(code) is None:
            raise ValueError(f"{code}: no such module in the mmbench package")
        return code

    @model_validator(mode="after")
    def _consistent(self) -> Metadata:
        if len(self.seeds) != self.runs:
            raise ValueError(f"seeds lists {len(self.seeds)} seed(s) but runs is {self.runs}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeats a seed; each run is one training seed")
        if any(s < 0 for s in self.seeds):
            raise ValueError("seeds must be non-negative integers")
        unknown = [m for m in self.modalities if m not in modalities()]
        if unknown:
            raise ValueError(f"modalities: {unknown[0]!r} is not one of {', '.join(modalities())}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities lists a modality twice")
        if self.date > datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1):
            raise ValueError(f"date {self.date} is in the future")
        named = {f"seed{s}.jsonl.gz" for s in self.seeds}
        for remote in self.remote_predictions:
            if remote.file not in named:
                raise ValueError(
                    f"remote_predictions: {remote.file} is not the file of one of the seeds {self.seeds}"
                )
        return self


def read_metadata(path: Path) -> tuple[Metadata, bytes]:
    """The validated metadata and the file's bytes; a clear error naming the file and field."""
    data, raw = load_yaml(path)
    if not isinstance(data, dict):
        raise MmbenchError(f"{path}: expected a mapping of metadata fields, e.g. 'model: My model'")
    try:
        return Metadata.model_validate(data), raw
    except ValidationError as exc:
        raise MmbenchError(f"{path}: {validation_problems(exc, 'metadata')}") from None
