"""``leaderboard/baselines.yaml``: the maintainers' word on which entries are mmbench's
baselines (and protocol probes), and on the one baseline each table's entries are compared with.

An entry cannot declare itself a baseline: only this file, changed by a maintainer's review,
does. The reference of a table is fixed by task, so adding an entry never changes another
entry's comparison::

    reference:              # task: the baseline every entry of its tables is compared with
      next-track: sasrec
      paper-sampled: sasrec
    baselines:              # entry slug: the mmbench baseline it is (`mmbench baseline list`)
      sample-pop-next-track: pop
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from mmbench.baselines import BASELINES, PROBES
from mmbench.errors import MmbenchError
from mmbench.leaderboard.metadata import load_yaml
from mmbench.schema import TASKS

RULES = "baselines.yaml"


class Rules(BaseModel):
    """Which entries are baselines (slug to baseline name) and each task's reference baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: dict[str, str] = {}
    baselines: dict[str, str] = {}

    @field_validator("reference")
    @classmethod
    def _tasks(cls, reference: dict[str, str]) -> dict[str, str]:
        for task, name in reference.items():
            if task not in TASKS:
                raise ValueError(f"{task}: not a task (one of {', '.join(TASKS)})")
            if name not in BASELINES or name in PROBES:
                raise ValueError(f"{task}: {name} is not one of mmbench's baselines (probes excluded)")
        return reference

    @field_validator("baselines")
    @classmethod
    def _known(cls, baselines: dict[str, str]) -> dict[str, str]:
        for slug, name in baselines.items():
            if name not in BASELINES:
                raise ValueError(f"{slug}: {name} is not one of mmbench's baselines ({', '.join(BASELINES)})")
        return baselines

    def is_baseline(self, slug: str) -> bool:
        return slug in self.baselines

    def is_probe(self, slug: str) -> bool:
        return self.baselines.get(slug) in PROBES

    def is_reference(self, slug: str, task: str) -> bool:
        return slug in self.baselines and self.baselines[slug] == self.reference.get(task)

    def code_of(self, slug: str) -> str:
        """The ``code`` a listed baseline's metadata must give: its module in the package."""
        module = BASELINES[self.baselines[slug]].rsplit(".", 1)[-1]
        return f"mmbench:baselines/{module}.py"


def read_rules(leaderboard: Path) -> Rules:
    """The rules of a leaderboard folder; no file means no baselines and no references."""
    path = leaderboard / RULES
    if not path.exists():
        return Rules()
    if path.is_symlink() or not path.is_file():
        raise MmbenchError(f"{path}: expected a plain file")
    data, _ = load_yaml(path)
    try:
        return Rules.model_validate(data if data is not None else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "the file"
        raise MmbenchError(f"{path}: {where}: {error['msg']}") from None
