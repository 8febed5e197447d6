"""The official evaluator: ranks, metrics, intervals, chance levels and segments.

    >>> from mmbench import Evaluator
    >>> evaluator = Evaluator("next-track", split="test", source="DIR")
    >>> print(evaluator.expected_input_format)
    >>> report = evaluator.eval({"next-track/user_000001:1233282878": ["t...", ...]})
    >>> report = evaluator.eval_file("predictions.jsonl.gz")

Reading and checking predictions is :mod:`mmbench.predictions` (every failure a
:class:`~mmbench.predictions.PredictionsError` naming the file, the line, the instance and what
was expected); the segment breakdown is :mod:`mmbench.segments`, from the label columns that the
build publishes with the instances.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from mmbench import beyond_accuracy
from mmbench.errors import MmbenchError
from mmbench.metrics import KS, METRICS, chance_level, coverage_at_k, metric_by_rank
from mmbench.predictions import Expected, PredictionsError, Ranks, read_file, read_rows, rows_from_object
from mmbench.schema import MAX_PREDICTIONS, TASKS
from mmbench.segments import LABELS, segment_masks

__all__ = ["Evaluator", "PredictionsError", "Ranks", "Report"]


@dataclass
class Report:
    """Everything `mmbench evaluate` prints, as data (its JSON form is documented in docs/)."""

    task: str
    split: str
    dataset: str
    n_instances: int
    n_predicted: int
    n_catalog: int
    ks: list[int]
    metrics: dict[str, dict[str, float]]
    chance: dict[str, float]
    coverage: dict[str, float]
    segments: dict[str, dict[str, dict[str, Any]]]
    bootstrap: dict[str, Any]
    predictions: str | None = None
    fingerprint: str | None = None
    beyond_accuracy: dict[str, float] = field(default_factory=dict)
    rank_histogram: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (schema version 2, see docs/evaluation.md)."""
        return {"schema_version": 2, **self.__dict__}


class Evaluator:
    """Scores rankings for one task and split of a LastFM-1K-MM build (OGB-style).

    ``source`` is a build folder or a Hub id (default: the local build, else the Hub).
    """

    def __init__(
        self, task: str = "next-track", split: str = "test", source: str | os.PathLike | None = None
    ):
        from mmbench.loading import load_table, resolve_source

        if task not in TASKS:
            raise MmbenchError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if split not in ("validation", "test"):
            raise MmbenchError(f"unknown split {split!r}; expected validation or test")
        self.task, self.split = task, split
        self.source = resolve_source(source)
        instances = load_table("instances", split, self.source)
        missing = set(LABELS) - set(instances.column_names)
        if missing:
            raise MmbenchError(
                f"{self.source}: the instances config has no segment labels ({', '.join(sorted(missing))}); "
                "it was built by an older mmbench: rebuild it with `mmbench build`"
            )
        self.instances = instances.filter(pc.equal(instances["task"], task))
        if self.instances.num_rows == 0:
            raise MmbenchError(f"{self.source}: no {task} instances in the {split} split")
        tracks = load_table("tracks", "catalog", self.source, ["track_id"])
        try:
            self.expected = Expected(task, split, self.instances, tracks["track_id"])
        except MmbenchError as exc:
            raise MmbenchError(f"{self.source}: {exc}") from None
        self.n_tracks, self.n_instances = self.expected.n_tracks, self.expected.n_instances
        candidates = self.expected.candidates
        self.n_items = len(candidates[0]) if candidates else self.n_tracks
        self._segments: dict[str, dict[str, np.ndarray]] | None = None
        self._prefix: np.ndarray | None = None
        self._can_repeat_prefix: bool | None = None
        self._fingerprint: str | None = None
        self._plays_train: np.ndarray | None = None
        self._content: dict[str, np.ndarray | None] = {}
        self._content_names: list[str] | None = None

    @property
    def instance_ids(self) -> list[str]:
        """The instances' ids, in the evaluator's instance order."""
        return self.expected.instance_ids

    @property
    def track_ids(self) -> list[str]:
        """The catalogue's track ids; a track's position is its code."""
        return self.expected.track_ids

    # -- the contract -------------------------------------------------------------------------

    @property
    def expected_input_format(self) -> str:
        """What :meth:`eval` and :meth:`eval_file` accept."""
        scope = (
            "the instance's 200 candidates (the `candidates` column)"
            if self.task == "paper-sampled"
            else f"the {self.n_tracks:,} catalogue tracks (the `tracks` config)"
        )
        return (
            f"==== Expected input format of Evaluator({self.task!r}, split={self.split!r})\n"
            f"One ranking per instance of the {self.split} split ({self.n_instances:,} instances, ids in the\n"
            f"`instances` config, e.g. {self.expected.instance_column[0].as_py()!r}).\n"
            "- JSON Lines (optionally .gz): one object per line,\n"
            '  {"instance_id": "<id>", "predictions": ["<track_id>", ...]}; other keys are ignored.\n'
            "- parquet: the same two columns, instance_id string and predictions list<string>.\n"
            "- in Python: a dict {instance_id: [track_id, ...]}, a list of such objects, a pandas or\n"
            "  pyarrow table with those columns, or a 2-D numpy array of track ids in instance order.\n"
            f"Each ranking: best first, 1 to {MAX_PREDICTIONS} distinct track ids, all from {scope}.\n"
            "Every instance needs a ranking unless allow_missing=True (then a missing one scores 0)."
        )

    @property
    def expected_output_format(self) -> str:
        """What :meth:`eval` returns."""
        return (
            f"==== Expected output format of Evaluator({self.task!r})\n"
            "A Report: metrics {'ndcg@10': {'value', 'ci_low', 'ci_high'}, ...} for recall, ndcg and mrr at\n"
            f"K in {list(KS)} (means over instances, 95% bootstrap intervals), chance levels, coverage@K,\n"
            "and segments {segment: {group: {'n', metrics}}}; Report.to_dict() is the JSON written by --json."
        )

    # -- entry points ---------------------------------------------------------------------------

    def eval(
        self,
        predictions: Any,
        *,
        allow_missing: bool = False,
        ks: Iterable[int] = KS,
        n_bootstrap: int = 1000,
        seed: int = 0,
        segments: bool = True,
    ) -> Report:
        """Score predictions given as Python objects (see :attr:`expected_input_format`)."""
        rows = rows_from_object(predictions, self.instance_ids)
        ranks = read_rows(self.expected, rows, allow_missing, origin="predictions")
        return self.report(ranks, None, ks=ks, n_bootstrap=n_bootstrap, seed=seed, segments=segments)

    def eval_file(
        self,
        path: str | os.PathLike,
        *,
        allow_missing: bool = False,
        ks: Iterable[int] = KS,
        n_bootstrap: int = 1000,
        seed: int = 0,
        segments: bool = True,
    ) -> Report:
        """Score a predictions file: JSON Lines, ``.jsonl.gz`` or parquet."""
        ranks = self.read_file(path, allow_missing=allow_missing)
        return self.report(ranks, str(path), ks=ks, n_bootstrap=n_bootstrap, seed=seed, segments=segments)

    def read_file(self, path: str | os.PathLike, allow_missing: bool = False) -> Ranks:
        """Validate a predictions file and return the ranks (streams; memory does not grow with it)."""
        return read_file(self.expected, path, allow_missing)

    # -- scoring --------------------------------------------------------------------------------

    def report(
        self,
        ranks: Ranks,
        predictions: str | None = None,
        ks: Iterable[int] = KS,
        n_bootstrap: int = 1000,
        seed: int = 0,
        segments: bool = True,
    ) -> Report:
        """Metrics with bootstrap intervals, chance levels, coverage and segments from ranks."""
        ks = sorted(set(ks))
        bad = [k for k in ks if not 1 <= k <= MAX_PREDICTIONS]
        if bad:
            raise MmbenchError(f"--k {bad[0]}: K must lie between 1 and {MAX_PREDICTIONS}")
        names = [f"{m}@{k}" for m in METRICS for k in ks]
        table = np.stack([metric_by_rank(m, k) for m in METRICS for k in ks], axis=1)
        hist = np.bincount(ranks.ranks, minlength=MAX_PREDICTIONS + 1)
        rng = np.random.default_rng(seed)
        metrics = summarize_counts(hist, table, names, n_bootstrap, rng)
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        if segments:
            for segment, masks in self.segments().items():
                groups[segment] = {}
                for group, mask in masks.items():
                    h = np.bincount(ranks.ranks[mask], minlength=MAX_PREDICTIONS + 1)
                    groups[segment][group] = {
                        "n": int(mask.sum()),
                        **(summarize_counts(h, table, names, n_bootstrap, rng) if mask.any() else {}),
                    }
        return Report(
            task=self.task,
            split=self.split,
            dataset=self.source,
            n_instances=self.n_instances,
            n_predicted=int(ranks.predicted.sum()),
            n_catalog=self.n_tracks,
            ks=ks,
            metrics=metrics,
            chance={
                name: chance_level(m, k, self.n_items)
                for name, (m, k) in zip(names, [(m, k) for m in METRICS for k in ks], strict=True)
            },
            coverage={f"coverage@{k}": coverage_at_k(ranks.first_position, k) for k in ks},
            segments=groups,
            bootstrap={"resamples": n_bootstrap, "seed": seed, "level": 0.95},
            predictions=predictions,
            fingerprint=self.fingerprint,
            beyond_accuracy=self.beyond_accuracy(ranks),
            rank_histogram=hist.tolist(),
            warnings=self._protocol_warnings(ranks),
        )

    def _protocol_warnings(self, ranks: Ranks) -> list[str]:
        """What the reader of the report must know. next-track, on a build whose target cannot
        repeat a prefix track: how many rankings waste top-10 slots on the prefix. paper-sampled:
        how many targets a history lookup finds among the candidates."""
        if self.task == "next-track":
            return self._prefix_warnings(ranks)
        heard = self.segments()["target_heard_before"]["true"]
        return [
            f"paper-sampled: {int(heard.sum()):,} of {heard.size:,} targets ({heard.mean():.1%}) were heard "
            "by the user before; the negatives exclude every track of the input, so such a target is the "
            "only heard candidate and a history lookup ranks it first. Scores on this protocol reward that "
            "lookup; make claims on next-track, which ranks the whole catalogue."
        ]

    def _prefix_warnings(self, ranks: Ranks) -> list[str]:
        from mmbench.loading import target_can_repeat_prefix

        if self._can_repeat_prefix is None:  # read once: a leaderboard scores many files
            self._can_repeat_prefix = target_can_repeat_prefix(self.source)
        if self._can_repeat_prefix:
            return []
        prefix = self.prefix_codes()
        top = ranks.top
        hits = ((top[:, :, None] == prefix[:, None, :]) & (prefix[:, None, :] >= 0)).any(axis=2)
        slots, rankings = int(hits.sum()), int(hits.any(axis=1).sum())
        if slots == 0:
            return []
        k = top.shape[1]
        return [
            f"next-track: {rankings:,} of {self.n_instances:,} rankings put tracks of the session prefix in their "
            f"top {k} ({slots:,} of {k * self.n_instances:,} slots), but on this build a target is never a "
            "prefix track (its recipe removes repeats within a session; `protocol` in build_report.json): "
            "those slots cannot score. Leave the prefix out, as every mmbench baseline does."
        ]

    def prefix_codes(self) -> np.ndarray:
        """Each instance's session prefix as catalogue codes ([instances, longest prefix], -1 =
        none), in the evaluator's instance order."""
        from mmbench.loading import load_table

        if self._prefix is None:
            import polars as pl

            sessions = pl.DataFrame(
                load_table("sessions", self.split, self.source, ["session_id", "track_ids"])
            )
            instances = pl.DataFrame(self.instances.select(["session_id", "position"]))
            prefixes = instances.join(sessions, on="session_id", how="left", maintain_order="left").select(
                pl.col("track_ids").list.head(pl.col("position"))
            )["track_ids"]
            width = max(1, int(prefixes.list.len().max() or 0))  # type: ignore[arg-type]
            flat = self.expected.track_table.positions(prefixes.explode().drop_nulls().to_arrow())
            codes = np.full((len(prefixes), width), -1, dtype=np.int64)
            lengths = prefixes.list.len().to_numpy().astype(np.int64)
            rows = np.repeat(np.arange(len(prefixes)), lengths)
            cols = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            codes[rows, cols] = flat
            self._prefix = codes
        return self._prefix

    def beyond_accuracy(self, ranks: Ranks) -> dict[str, float]:
        """Novelty, popularity bias and (per content config of the build with an ``embedding``
        column: audio, lyrics, text) intra-list diversity of the top 10 of the rankings
        (:mod:`mmbench.beyond_accuracy`)."""
        from mmbench.loading import load_table

        if self._plays_train is None:
            column = load_table("tracks", "catalog", self.source, ["n_plays_train"])["n_plays_train"]
            self._plays_train = column.to_numpy()
        k = beyond_accuracy.K
        out = {
            f"novelty@{k}": beyond_accuracy.novelty_at_k(ranks.top, self._plays_train),
            f"popularity_percentile@{k}": beyond_accuracy.popularity_percentile_at_k(
                ranks.top, self._plays_train
            ),
        }
        for config in self.content_configs:
            embeddings = self._embeddings(config)
            if embeddings is not None:
                out[f"diversity@{k}/{config}"] = beyond_accuracy.intra_list_diversity_at_k(
                    ranks.top, embeddings
                )
        return out

    @property
    def content_configs(self) -> list[str]:
        """The build's content configs, as its build report lists them."""
        from mmbench.loading import build_report

        if self._content_names is None:
            self._content_names = sorted(build_report(self.source).get("content", {}))
        return self._content_names

    def _embeddings(self, config: str) -> np.ndarray | None:
        """A content config's embeddings by catalogue code (NaN rows for tracks without one), or
        None for a config without an ``embedding`` column (``mgphot``)."""
        from mmbench.loading import load_table

        if config not in self._content:
            table = load_table(config, "catalog", self.source)
            if "embedding" not in table.column_names:
                self._content[config] = None
                return None
            values = np.stack(table["embedding"].to_numpy(zero_copy_only=False)) if table.num_rows else None
            matrix = np.full(
                (self.n_tracks, 0 if values is None else values.shape[1]), np.nan, dtype=np.float32
            )
            if values is not None:
                matrix[self.expected.track_table.positions(table["track_id"])] = values
            self._content[config] = matrix
        return self._content[config]

    @property
    def fingerprint(self) -> str:
        """The dataset fingerprint of the build (DESIGN.md section 9), computed once."""
        if self._fingerprint is None:
            from mmbench.fingerprint import dataset_fingerprint

            self._fingerprint = dataset_fingerprint(self.source)
        return self._fingerprint

    def segments(self) -> dict[str, dict[str, np.ndarray]]:
        """Boolean masks over instances for each segment of the breakdown (read once)."""
        if self._segments is None:
            self._segments = segment_masks(self.instances)
        return self._segments


def summarize_counts(
    hist: np.ndarray, table: np.ndarray, names: list[str], n_bootstrap: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    """Means and percentile bootstrap intervals from the counts of groups of instances that share
    every metric's value (``table``: a row per group), e.g. the rank histogram.

    Every metric is a function of the rank alone, so resampling n instances with replacement
    is drawing the rank histogram from a multinomial with the observed rank frequencies.
    """
    n = int(hist.sum())
    values = hist @ table / n
    out = {}
    if n_bootstrap > 0:
        draws = rng.multinomial(n, hist / n, size=n_bootstrap) @ table / n
        low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    else:
        low = high = values
    for j, name in enumerate(names):
        out[name] = {"value": float(values[j]), "ci_low": float(low[j]), "ci_high": float(high[j])}
    return out
