"""The official evaluator: strict reading of predictions, ranks, metrics, intervals, segments.

    >>> from mmbench.evaluator import Evaluator
    >>> evaluator = Evaluator("next-track", split="test", source="DIR")
    >>> print(evaluator.expected_input_format)
    >>> report = evaluator.eval({"next-track/user_000001:1233282878": ["t...", ...]})
    >>> report = evaluator.eval_file("predictions.jsonl.gz")

Every failure of the input is a :class:`PredictionsError` (an :class:`MmbenchError`) whose
message names the file, the line (or row), the instance id where known, and what was expected.
"""

from __future__ import annotations

import array
import functools
import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmbench.errors import MmbenchError
from mmbench.metrics import KS, METRICS, chance_level, coverage_at_k, metric_by_rank
from mmbench.scanner import IdTable
from mmbench.schema import MAX_PREDICTIONS, TASKS

NOT_SEEN = MAX_PREDICTIONS + 1
BATCH = 20_000


class PredictionsError(MmbenchError):
    """A predictions file or object that does not follow the format."""


@dataclass
class Ranks:
    """The outcome of reading predictions: the target's rank per instance (0 = absent)."""

    ranks: np.ndarray  # int16 per instance, in the evaluator's instance order
    predicted: np.ndarray  # bool per instance: a prediction was given
    first_position: np.ndarray  # int16 per catalogue track: best position in any ranking, NOT_SEEN if none


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
    rank_histogram: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (schema version 1, see docs/evaluation.md)."""
        return {"schema_version": 1, **self.__dict__}


def _fail(where: str, message: str, instance_id: str | None = None) -> PredictionsError:
    about = f" (instance {instance_id!r})" if instance_id is not None else ""
    return PredictionsError(f"{where}{about}: {message}")


class Evaluator:
    """Scores rankings for one task and split of a LastFM-1K-MM build (OGB-style).

    ``source`` is a build folder or a Hub id (default: the local build, else the Hub).
    """

    def __init__(
        self, task: str = "next-track", split: str = "test", source: str | os.PathLike | None = None
    ):
        import polars as pl

        from mmbench.loading import load_table, resolve_source

        if task not in TASKS:
            raise MmbenchError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if split not in ("validation", "test"):
            raise MmbenchError(f"unknown split {split!r}; expected validation or test")
        self.task, self.split = task, split
        self.source = resolve_source(source)
        columns = ["instance_id", "task", "user_id", "session_id", "position", "target_track_id"]
        instances = load_table(
            "instances", split, self.source, columns + (["candidates"] if task == "paper-sampled" else [])
        )
        instances = instances.filter(pc.equal(instances["task"], task))
        tracks = load_table("tracks", "catalog", self.source, ["track_id", "n_plays_train"])
        if instances.num_rows == 0:
            raise MmbenchError(f"{self.source}: no {task} instances in the {split} split")
        self.track_table = IdTable(tracks["track_id"])
        self.instance_table = IdTable(instances["instance_id"])
        self._track_column, self._instance_column = tracks["track_id"], instances["instance_id"]
        self.n_tracks, self.n_instances = len(self.track_table), len(self.instance_table)
        self._instances = pl.from_arrow(
            instances.select(["session_id", "user_id", "position", "target_track_id"])
        )
        self.targets = self.track_table.positions(instances["target_track_id"])
        if (self.targets < 0).any():
            raise MmbenchError(f"{self.source}: instances whose target is not in the tracks config")
        self.candidates: list[frozenset[int]] | None = None
        if task == "paper-sampled":
            flat = pc.list_flatten(instances["candidates"])
            codes = self.track_table.positions(flat)
            ends = np.cumsum(pc.list_value_length(instances["candidates"]).to_numpy(zero_copy_only=False))
            self.candidates = [frozenset(c.tolist()) for c in np.split(codes, ends[:-1])]
        self.n_items = len(self.candidates[0]) if self.candidates else self.n_tracks
        self._n_plays_train = tracks["n_plays_train"].to_numpy()
        self._segments: dict[str, dict[str, np.ndarray]] | None = None

    @functools.cached_property
    def targets_list(self) -> list[int]:
        """The targets' catalogue codes as Python ints (for the per-row path)."""
        return self.targets.tolist()

    @functools.cached_property
    def track_ids(self) -> list[str]:
        """The catalogue's track ids; a track's position is its code."""
        return self._track_column.to_pylist()

    @functools.cached_property
    def instance_ids(self) -> list[str]:
        """The instances' ids, in the evaluator's instance order."""
        return self._instance_column.to_pylist()

    @functools.cached_property
    def catalog(self) -> dict[str, int]:
        """Track id -> catalogue code, for the per-row path (built on first use)."""
        return {t: i for i, t in enumerate(self.track_ids)}

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Instance id -> instance number, for the per-row path (built on first use)."""
        return {iid: i for i, iid in enumerate(self.instance_ids)}

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
            f"`instances` config, e.g. {self._instance_column[0].as_py()!r}).\n"
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

    def eval(self, predictions: Any, allow_missing: bool = False, **options: Any) -> Report:
        """Score predictions given as Python objects (see :attr:`expected_input_format`)."""
        rows = _rows_from_object(predictions, self.instance_ids)
        ranks = self.read_rows(rows, allow_missing=allow_missing, origin="predictions")
        return self.report(ranks, predictions=None, **options)

    def eval_file(self, path: str | os.PathLike, allow_missing: bool = False, **options: Any) -> Report:
        """Score a predictions file: JSON Lines, ``.jsonl.gz`` or parquet."""
        ranks = self.read_file(path, allow_missing=allow_missing)
        return self.report(ranks, predictions=str(path), **options)

    def read_file(self, path: str | os.PathLike, allow_missing: bool = False) -> Ranks:
        """Validate a predictions file and return the ranks (streams; memory does not grow with it)."""
        path = Path(path)
        name = str(path)
        if not path.exists():
            raise PredictionsError(f"{name}: no such file")
        if path.is_dir():
            raise PredictionsError(f"{name}: is a folder; expected a .jsonl, .jsonl.gz or .parquet file")
        try:
            with path.open("rb") as f:
                head = f.read(4)
        except OSError as exc:
            raise PredictionsError(f"{name}: cannot read ({exc.strerror})") from None
        if not head:
            raise PredictionsError(f"{name}: the file is empty; expected one JSON object per line")
        if head == b"PAR1":
            return self.read_rows(_parquet_rows(path), allow_missing, name, unit="row")
        tally = _Tally(self, name, "line")
        line = 1
        for block in _jsonl_blocks(path, gzipped=head[:2] == b"\x1f\x8b"):
            if self.candidates is None:
                line = tally.scan(block, line)
            else:
                data = bytes(block)
                tally.rows(_jsonl_rows(data, line, name))
                line += data.count(b"\n")
        return tally.finish(allow_missing)

    # -- validation -----------------------------------------------------------------------------

    def read_rows(
        self, rows: Iterable[tuple[int, Any]], allow_missing: bool, origin: str, unit: str = "line"
    ) -> Ranks:
        """Check (line number, parsed object) pairs and compute each instance's target rank."""
        tally = _Tally(self, origin, unit)
        tally.rows(rows)
        return tally.finish(allow_missing)

    def _explain_row(
        self, where: str, iid: Any, preds: Any, i: int | None, line_of: list[int], unit: str
    ) -> PredictionsError:
        """The error for a row whose id or ranking is missing, mistyped, unknown or repeated."""
        if iid is None:
            return _fail(where, "missing 'instance_id'")
        if type(iid) is not str:
            return _fail(where, f"'instance_id' must be a string, got {_kind(iid)}")
        if i is None:
            return _fail(where, f"unknown instance for task {self.task!r}, split {self.split!r}", iid)
        if line_of[i]:
            return _fail(where, f"duplicate instance: already given at {unit} {line_of[i]}", iid)
        if preds is None:
            return _fail(where, "missing 'predictions'", iid)
        if type(preds) is not list:
            return _fail(where, f"'predictions' must be a list of track ids, got {_kind(preds)}", iid)
        if not preds:
            return _fail(where, "empty ranking; expected 1 to 100 track ids", iid)
        return _fail(where, f"{len(preds)} predictions; at most {MAX_PREDICTIONS} are allowed", iid)

    def _explain_unknown(self, preds: list) -> str:
        for position, t in enumerate(preds, start=1):
            if type(t) is not str:
                return f"prediction {position} is {_kind(t)}; expected a track id string"
            if t not in self.catalog:
                return f"prediction {position}, {t!r}, is not a track id of the catalogue (the tracks config)"
        return "predictions must be track id strings"

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
        metrics = _summarize(hist, table, names, n_bootstrap, rng)
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        if segments:
            for segment, masks in self.segments().items():
                groups[segment] = {}
                for group, mask in masks.items():
                    h = np.bincount(ranks.ranks[mask], minlength=MAX_PREDICTIONS + 1)
                    groups[segment][group] = {
                        "n": int(mask.sum()),
                        **(_summarize(h, table, names, n_bootstrap, rng) if mask.any() else {}),
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
            rank_histogram=hist.tolist(),
            warnings=self._protocol_warnings(),
        )

    def _protocol_warnings(self) -> list[str]:
        """What the reader of a paper-sampled report must know: how many targets a history
        lookup finds among the candidates."""
        if self.task != "paper-sampled":
            return []
        heard = self.target_heard_before
        return [
            f"paper-sampled: {int(heard.sum()):,} of {heard.size:,} targets ({heard.mean():.1%}) were heard "
            "by the user before; the negatives exclude every track of the input, so such a target is the "
            "only heard candidate and a history lookup ranks it first. Scores on this protocol reward that "
            "lookup; make claims on next-track, which ranks the whole catalogue."
        ]

    def segments(self) -> dict[str, dict[str, np.ndarray]]:
        """Boolean masks over instances for each segment of the breakdown (computed once)."""
        if self._segments is not None:
            return self._segments
        plays = self._n_plays_train[self.targets]
        head_min, torso_min = popularity_thresholds(self._n_plays_train)
        heard = self.target_heard_before
        out = {
            "target_history": {"new": ~heard, "heard_before": heard},
            "target_popularity": {
                "head": plays >= head_min,
                "torso": (plays < head_min) & (plays >= torso_min),
                "tail": plays < torso_min,
            },
            "target_cold": {"cold": plays == 0, "warm": plays > 0},
        }
        import polars as pl

        from mmbench.loading import has_config, load_table

        for prefix in ("audio-", "lyrics-", "mgphot"):
            for config in has_config(prefix, self.source):
                covered = load_table(config, "catalog", self.source)["track_id"]
                has = self._instances["target_track_id"].is_in(pl.from_arrow(covered).implode()).to_numpy()
                out[f"target_{config}"] = {"with": has, "without": ~has}
        self._segments = out
        return out

    @functools.cached_property
    def target_heard_before(self) -> np.ndarray:
        """Per instance, whether the user played the target before it: in an earlier session
        or the session prefix (bool)."""
        return self._heard_before()

    def _heard_before(self, batch_size: int = 50_000) -> np.ndarray:
        """Whether the user played the target before it: in an earlier session or the prefix.

        Sessions are read in batches; users and tracks become integer codes (hash tables over
        their ids), each play a key ``user * n_tracks + track``, and each asked key keeps the
        time of its earliest play, so memory stays bounded on big test sets.
        """
        from mmbench.loading import iter_batches
        from mmbench.scanner import key_table, lower_to_earliest

        n = self.n_instances
        users = self._instances["user_id"].to_arrow()
        user_table = IdTable(pc.unique(users))
        asked_keys = user_table.positions(users) * self.n_tracks + self.targets
        asked, first_of_key = key_table(asked_keys)
        first_play = np.full(n, np.iinfo(np.int64).max)  # kept at the first instance of each key
        sessions = self._instances["session_id"].to_arrow()
        session_table = IdTable(pc.unique(sessions))
        instance_session = session_table.positions(sessions)
        positions = self._instances["position"].to_numpy().astype(np.int64)
        start = np.zeros(n, dtype=np.int64)
        heard = np.zeros(n, dtype=bool)
        for split in ("train", "validation", "test"):
            columns = ["session_id", "user_id", "start_time", "track_ids"]
            for batch in iter_batches("sessions", split, self.source, columns, batch_size):
                lengths = pc.list_value_length(batch["track_ids"]).to_numpy(zero_copy_only=False)
                codes = self.track_table.positions(pc.list_flatten(batch["track_ids"]))
                starts = batch["start_time"].cast(pa.int64()).to_numpy(zero_copy_only=False)
                user = np.repeat(user_table.positions(batch["user_id"]), lengths)
                keys = np.where((user >= 0) & (codes >= 0), user * self.n_tracks + codes, -1)
                lower_to_earliest(asked, keys, np.repeat(starts, lengths), first_play)
                if split != self.split:
                    continue
                # The instances whose session is in this batch: its start, and the target in its prefix.
                row_of = np.full(len(session_table), -1, dtype=np.int64)
                rows = session_table.positions(batch["session_id"])
                row_of[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
                mine = np.flatnonzero(row_of[instance_session] >= 0)
                row = row_of[instance_session[mine]]
                start[mine] = starts[row]
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                owner = np.repeat(np.arange(mine.size), positions[mine])
                at = np.repeat(offsets[row], positions[mine]) + (
                    np.arange(owner.size)
                    - np.repeat(np.cumsum(positions[mine]) - positions[mine], positions[mine])
                )
                found = np.bincount(
                    owner, weights=codes[at] == self.targets[mine][owner], minlength=mine.size
                )
                heard[mine] |= found > 0
        heard |= first_play[first_of_key] < start
        return heard


class _Tally:
    """The running state of one read: each instance's rank and line, each track's best position.

    Rows arrive either one parsed object at a time (:meth:`rows`, exact error messages) or as a
    block of JSON Lines (:meth:`scan`): the compiled scanner takes every line of the common form
    that is certainly valid and hands any other line to :meth:`rows`, which accepts it or
    reports exactly what is wrong.
    """

    def __init__(self, evaluator: Evaluator, origin: str, unit: str):
        self.ev, self.origin, self.unit = evaluator, origin, unit
        n = evaluator.n_instances
        self.ranks = np.zeros(n, dtype=np.int16)
        self.line_of = np.zeros(n, dtype=np.int64)
        self.first_position = np.full(evaluator.n_tracks, NOT_SEEN, dtype=np.int16)

    def rows(self, rows: Iterable[tuple[int, Any]]) -> None:
        """Check rows one by one; raise :class:`PredictionsError` at the first bad one."""
        ev, origin, unit = self.ev, self.origin, self.unit
        line_of, ranks = self.line_of, self.ranks
        index_get, code_of = ev.index.get, ev.catalog.__getitem__
        targets, candidates = ev.targets_list, ev.candidates
        flat = array.array("l")
        lengths = array.array("l")
        for number, obj in rows:
            if type(obj) is not dict:
                raise _fail(f"{origin}: {unit} {number}", f"expected a JSON object, got {_kind(obj)}")
            iid = obj.get("instance_id")
            preds = obj.get("predictions")
            i = index_get(iid) if type(iid) is str else None
            if i is None or line_of[i] or type(preds) is not list or not 0 < len(preds) <= MAX_PREDICTIONS:
                raise ev._explain_row(f"{origin}: {unit} {number}", iid, preds, i, line_of, unit)
            try:
                codes = list(map(code_of, preds))
            except (KeyError, TypeError):
                raise _fail(f"{origin}: {unit} {number}", ev._explain_unknown(preds), iid) from None
            if len(set(codes)) != len(codes):
                raise _fail(f"{origin}: {unit} {number}", _explain_duplicates(preds), iid)
            if candidates is not None and not candidates[i].issuperset(codes):
                bad = next(t for t, c in zip(preds, codes, strict=True) if c not in candidates[i])
                raise _fail(
                    f"{origin}: {unit} {number}",
                    f"track id {bad!r} is not among this instance's candidates; paper-sampled rankings may only rank the instance's candidates",
                    iid,
                )
            target = targets[i]
            if target in codes:
                ranks[i] = codes.index(target) + 1
            line_of[i] = number
            flat.extend(codes)
            lengths.append(len(codes))
            if len(lengths) >= BATCH:
                self._mark(np.frombuffer(flat, dtype=np.int64), np.frombuffer(lengths, dtype=np.int64))
                flat, lengths = array.array("l"), array.array("l")
        if lengths:
            self._mark(np.frombuffer(flat, dtype=np.int64), np.frombuffer(lengths, dtype=np.int64))

    def scan(self, block: bytes | memoryview, first_line: int) -> int:
        """Take a block of whole JSON lines with the compiled scanner; each line it leaves goes
        through :meth:`rows`, which accepts it or raises the precise error. Returns the number
        of the line after the block."""
        from mmbench.scanner import line_starts, read_lines, take_lines

        ev = self.ev
        buf = np.frombuffer(block, dtype=np.uint8)
        starts = line_starts(buf)
        n_lines = starts.size - 1
        for a in range(0, n_lines, BATCH):  # BATCH lines at a time bound the codes' memory
            b = min(a + BATCH, n_lines)
            instance, codes = read_lines(
                buf, starts[a : b + 1], MAX_PREDICTIONS, ev.instance_table.table, ev.track_table.table
            )
            k = 0
            while k < b - a:
                taken = take_lines(
                    k,
                    first_line + a + k,
                    instance,
                    codes,
                    ev.targets,
                    self.ranks,
                    self.line_of,
                    self.first_position,
                )
                if taken < b - a:
                    line = bytes(block[starts[a + taken] : starts[a + taken + 1]])
                    self.rows(_jsonl_rows(line, first_line + a + taken, self.origin))
                k = taken + 1
        return first_line + n_lines

    def _mark(self, codes: np.ndarray, lengths: np.ndarray) -> None:
        """Lower each track's best position to the positions it has in these rankings."""
        positions = np.arange(codes.size) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
        np.minimum.at(self.first_position, codes, positions.astype(np.int16))

    def finish(self, allow_missing: bool) -> Ranks:
        """The ranks; raise if instances have no prediction and ``allow_missing`` is false."""
        predicted = self.line_of > 0
        n = predicted.size
        missing = int(n - predicted.sum())
        if missing and not allow_missing:
            example = self.ev._instance_column[int(np.argmin(predicted))].as_py()
            raise PredictionsError(
                f"{self.origin}: {missing:,} of {n:,} {self.ev.task} {self.ev.split} instances have no prediction "
                f"(e.g. {example!r}); pass --allow-missing to score them as misses"
            )
        return Ranks(self.ranks, predicted, self.first_position)


def popularity_thresholds(n_plays_train: np.ndarray) -> tuple[int, int]:
    """The training play counts from which a track is ``head`` and ``torso``.

    Tracks sorted by training plays, most first: the head ends with the track at which the
    cumulative share of training plays reaches 1/3, the torso with the one at which it reaches
    2/3, the tail holds the rest (so each holds about a third of the plays). A track is head if
    it has at least as many plays as that first track, torso if at least as many as the second;
    a track never played in training is always tail.
    """
    order = np.sort(n_plays_train)[::-1]
    total = order.sum()
    if total == 0:
        return 1, 1
    share = np.cumsum(order) / total
    head = order[np.searchsorted(share, 1 / 3)]
    torso = order[np.searchsorted(share, 2 / 3)]
    return max(int(head), 1), max(int(torso), 1)


def _summarize(
    hist: np.ndarray, table: np.ndarray, names: list[str], n_bootstrap: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    """Means and percentile bootstrap intervals from a rank histogram.

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


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _explain_duplicates(preds: list) -> str:
    seen: dict[str, int] = {}
    for position, t in enumerate(preds, start=1):
        if t in seen:
            return f"track id {t!r} appears twice in the ranking (positions {seen[t]} and {position}); each track may appear once"
        seen[t] = position
    return "duplicate track ids in the ranking"


def _jsonl_blocks(path: Path, gzipped: bool, block_bytes: int = 32 << 20) -> Iterator[memoryview]:
    """Blocks of whole lines, each ending with a newline (one is added to a last line without).

    Each block is a view into one buffer that is read into again for the next block (fresh
    32 MB allocations per block cost more than parsing them), so it is only valid until then.
    """
    name = str(path)
    opener = gzip.open if gzipped else open
    buffer, filled, done = bytearray(block_bytes), 0, 0
    try:
        with opener(path, "rb") as stream:
            while True:
                if filled == len(buffer):  # a line longer than the buffer: a bigger one
                    buffer = buffer + bytearray(len(buffer))
                with memoryview(buffer) as view:
                    got = stream.readinto(view[filled:])
                if not got:
                    break
                filled += got
                cut = buffer.rfind(b"\n", 0, filled) + 1
                if cut:
                    yield memoryview(buffer)[:cut]
                    buffer[: filled - cut] = buffer[cut:filled]
                    filled, done = filled - cut, done + cut
    except (OSError, EOFError) as exc:
        raise PredictionsError(f"{name}: cannot read after byte {done + filled:,} ({exc})") from None
    if filled:
        yield memoryview(bytes(buffer[:filled]) + b"\n")


def _jsonl_rows(block: bytes, first_line: int, name: str) -> Iterator[tuple[int, Any]]:
    """Parse a block line by line with orjson, naming the first line that is not JSON."""
    import orjson

    for number, line in enumerate(block.split(b"\n")[:-1], start=first_line):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            what = "an empty line" if not line.strip() else f"not valid JSON ({exc})"
            raise PredictionsError(
                f"{name}: line {number}: {what}; expected one JSON object per line"
            ) from None
        yield number, obj


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        file = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise PredictionsError(f"{name}: not a readable parquet file ({exc})") from None
    schema = file.schema_arrow
    for column, ok in (
        ("instance_id", pa.types.is_string),
        ("predictions", lambda t: pa.types.is_list(t) or pa.types.is_large_list(t)),
    ):
        if column not in schema.names:
            raise PredictionsError(
                f"{name}: missing column {column!r}; expected instance_id (string) and predictions (list of strings)"
            )
        if not ok(schema.field(column).type) and not pa.types.is_large_string(schema.field(column).type):
            raise PredictionsError(
                f"{name}: column {column!r} has type {schema.field(column).type}; expected instance_id string and predictions list<string>"
            )
    number = 0
    for batch in file.iter_batches(columns=["instance_id", "predictions"], batch_size=BATCH):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _rows_from_object(predictions: Any, instance_ids: list[str]) -> Iterable[tuple[int, Any]]:
    """Normalize the Python inputs of :meth:`Evaluator.eval` to (number, object) rows."""
    if isinstance(predictions, dict):
        return (
            (i, {"instance_id": k, "predictions": _as_list(v)})
            for i, (k, v) in enumerate(predictions.items(), start=1)
        )
    if isinstance(predictions, np.ndarray):
        if predictions.ndim != 2 or predictions.shape[0] != len(instance_ids):
            raise PredictionsError(
                f"predictions: a numpy array must have shape (n_instances={len(instance_ids)}, k), got {predictions.shape}"
            )
        return (
            (i + 1, {"instance_id": iid, "predictions": [str(t) for t in row]})
            for i, (iid, row) in enumerate(zip(instance_ids, predictions, strict=True))
        )
    if hasattr(predictions, "to_pylist"):  # pyarrow Table
        return enumerate(predictions.to_pylist(), start=1)
    if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):  # pandas DataFrame
        return (
            (i, {k: _as_list(v) if k == "predictions" else v for k, v in row.items()})
            for i, row in enumerate(predictions.to_dict("records"), start=1)
        )
    if isinstance(predictions, list):
        return enumerate(predictions, start=1)
    raise PredictionsError(
        f"predictions: got {type(predictions).__name__}; expected a dict, a list of dicts, a numpy array or a table"
    )


def _as_list(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value
