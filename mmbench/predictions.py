"""Reading predictions and checking them against what an evaluation expects.

Predictions come as JSON Lines (optionally gzipped), parquet, or Python objects. Every failure
is a :class:`PredictionsError` (an :class:`MmbenchError`) whose message names the file, the line
(or row), the instance id where known, and what was expected. A JSON Lines file is read in
blocks by the compiled scanner (:mod:`mmbench.scanner`), which takes the lines of the common form
that are certainly right; every other line goes through the exact path, which accepts it or
names the error.
"""

from __future__ import annotations

import array
import functools
import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmbench.beyond_accuracy import K as TOP
from mmbench.errors import MmbenchError
from mmbench.scanner import IdTable
from mmbench.schema import MAX_PREDICTIONS

NOT_SEEN = MAX_PREDICTIONS + 1
BATCH = 20_000
# A line holds one instance id and at most a few hundred track ids: a few KiB. The caps bound
# what a hostile file (a small .gz that inflates to one endless line) can make the reader hold.
MAX_LINE_BYTES = 1 << 20
MAX_BYTES_PER_INSTANCE = 64 << 10


class PredictionsError(MmbenchError):
    """A predictions file or object that does not follow the format."""


@dataclass
class Ranks:
    """The outcome of reading predictions: the target's rank per instance (0 = absent)."""

    ranks: np.ndarray  # int16 per instance, in the evaluator's instance order
    predicted: np.ndarray  # bool per instance: a prediction was given
    first_position: np.ndarray  # int16 per catalogue track: best position in any ranking, NOT_SEEN if none
    top: np.ndarray  # int32 [instance, TOP]: the codes of each ranking's first TOP tracks, -1 beyond it


def _fail(where: str, message: str, instance_id: str | None = None) -> PredictionsError:
    about = f" (instance {instance_id!r})" if instance_id is not None else ""
    return PredictionsError(f"{where}{about}: {message}")


class Expected:
    """What predictions must match: the instances of one task and split (their ids and targets,
    and for paper-sampled their candidates) and the catalogue's track ids."""

    def __init__(self, task: str, split: str, instances: pa.Table, track_ids: pa.ChunkedArray):
        self.task, self.split = task, split
        self.track_table = IdTable(track_ids)
        self.instance_table = IdTable(instances["instance_id"])
        self.track_column, self.instance_column = track_ids, instances["instance_id"]
        self.n_tracks, self.n_instances = len(self.track_table), len(self.instance_table)
        self.targets = self.track_table.positions(instances["target_track_id"])
        if (self.targets < 0).any():
            raise MmbenchError("instances whose target is not in the tracks config")
        self.candidates: list[frozenset[int]] | None = None
        if task == "paper-sampled":
            codes = self.track_table.positions(pc.list_flatten(instances["candidates"]))
            ends = np.cumsum(pc.list_value_length(instances["candidates"]).to_numpy(zero_copy_only=False))
            self.candidates = [frozenset(c.tolist()) for c in np.split(codes, ends[:-1])]

    @functools.cached_property
    def targets_list(self) -> list[int]:
        """The targets' catalogue codes as Python ints (for the per-row path)."""
        return self.targets.tolist()

    @functools.cached_property
    def track_ids(self) -> list[str]:
        """The catalogue's track ids; a track's position is its code."""
        return self.track_column.to_pylist()

    @functools.cached_property
    def instance_ids(self) -> list[str]:
        """The instances' ids, in instance order."""
        return self.instance_column.to_pylist()

    @functools.cached_property
    def catalog(self) -> dict[str, int]:
        """Track id -> catalogue code, for the per-row path (built on first use)."""
        return {t: i for i, t in enumerate(self.track_ids)}

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Instance id -> instance number, for the per-row path (built on first use)."""
        return {iid: i for i, iid in enumerate(self.instance_ids)}

    def explain_row(
        self, where: str, iid: Any, preds: Any, i: int | None, line_of: np.ndarray, unit: str
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

    def explain_unknown(self, preds: list) -> str:
        """What is wrong with a ranking whose ids are not all catalogue track ids."""
        for position, t in enumerate(preds, start=1):
            if type(t) is not str:
                return f"prediction {position} is {_kind(t)}; expected a track id string"
            if t not in self.catalog:
                return f"prediction {position}, {t!r}, is not a track id of the catalogue (the tracks config)"
        return "predictions must be track id strings"


def read_file(expected: Expected, path: str | os.PathLike, allow_missing: bool = False) -> Ranks:
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
        return read_rows(expected, _parquet_rows(path), allow_missing, name, unit="row")
    tally = _Tally(expected, name, "line")
    line = 1
    cap = max(expected.n_instances, 1) * MAX_BYTES_PER_INSTANCE
    for block in _jsonl_blocks(path, gzipped=head[:2] == b"\x1f\x8b", max_bytes=cap):
        if expected.candidates is None:
            line = tally.scan(block, line)
        else:
            data = bytes(block)
            tally.rows(_jsonl_rows(data, line, name))
            line += data.count(b"\n")
    return tally.finish(allow_missing)


def read_rows(
    expected: Expected, rows: Iterable[tuple[int, Any]], allow_missing: bool, origin: str, unit: str = "line"
) -> Ranks:
    """Check (line number, parsed object) pairs and compute each instance's target rank."""
    tally = _Tally(expected, origin, unit)
    tally.rows(rows)
    return tally.finish(allow_missing)


class _Tally:
    """The running state of one read: each instance's rank and line, each track's best position.

    Rows arrive either one parsed object at a time (:meth:`rows`, exact error messages) or as a
    block of JSON Lines (:meth:`scan`): the compiled scanner takes every line of the common form
    that is certainly valid and hands any other line to :meth:`rows`, which accepts it or
    reports exactly what is wrong.
    """

    def __init__(self, expected: Expected, origin: str, unit: str):
        self.ev, self.origin, self.unit = expected, origin, unit
        n = expected.n_instances
        self.ranks = np.zeros(n, dtype=np.int16)
        self.line_of = np.zeros(n, dtype=np.int64)
        self.first_position = np.full(expected.n_tracks, NOT_SEEN, dtype=np.int16)
        self.top = np.full((n, TOP), -1, dtype=np.int32)

    def rows(self, rows: Iterable[tuple[int, Any]]) -> None:
        """Check rows one by one; raise :class:`PredictionsError` at the first bad one."""
        ev, origin, unit = self.ev, self.origin, self.unit
        line_of, ranks, top = self.line_of, self.ranks, self.top
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
                raise ev.explain_row(f"{origin}: {unit} {number}", iid, preds, i, line_of, unit)
            try:
                codes = list(map(code_of, preds))
            except (KeyError, TypeError):
                raise _fail(f"{origin}: {unit} {number}", ev.explain_unknown(preds), iid) from None
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
            top[i, : min(len(codes), TOP)] = codes[:TOP]
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
                    self.top,
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
            example = self.ev.instance_column[int(np.argmin(predicted))].as_py()
            raise PredictionsError(
                f"{self.origin}: {missing:,} of {n:,} {self.ev.task} {self.ev.split} instances have no prediction "
                f"(e.g. {example!r}); pass --allow-missing to score them as misses"
            )
        return Ranks(self.ranks, predicted, self.first_position, self.top)


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


def _jsonl_blocks(
    path: Path, gzipped: bool, max_bytes: int, block_bytes: int = 32 << 20
) -> Iterator[memoryview]:
    """Blocks of whole lines, each ending with a newline (one is added to a last line without).

    Each block is a view into one buffer that is read into again for the next block (fresh
    32 MB allocations per block cost more than parsing them), so it is only valid until then.
    A line longer than :data:`MAX_LINE_BYTES` or a file that decompresses to more than
    ``max_bytes`` is an error as soon as it is seen: memory stays at one buffer.
    """
    name = str(path)
    opener = gzip.open if gzipped else open
    block_bytes = max(block_bytes, MAX_LINE_BYTES + 1)
    buffer, filled, done, lines = bytearray(block_bytes), 0, 0, 0
    try:
        with opener(path, "rb") as stream:
            while True:
                with memoryview(buffer) as view:
                    got = stream.readinto(view[filled:])
                if not got:
                    break
                if done + filled + got > max_bytes:
                    raise PredictionsError(
                        f"{name}: more than {max_bytes:,} bytes of JSON Lines ({MAX_BYTES_PER_INSTANCE:,} per "
                        "instance of the split); a predictions file is one short line per instance"
                    )
                filled += got
                ends = np.flatnonzero(np.frombuffer(buffer, dtype=np.uint8, count=filled) == 10)
                starts = np.concatenate([[0], ends + 1])
                lengths = np.append(ends, filled) - starts  # the last: the unfinished line
                if lengths.max() > MAX_LINE_BYTES:
                    raise PredictionsError(
                        f"{name}: line {lines + int(np.argmax(lengths > MAX_LINE_BYTES)) + 1:,} is longer than "
                        f"{MAX_LINE_BYTES:,} bytes; expected one instance's ranking per line"
                    )
                cut = int(starts[-1])
                if cut:
                    yield memoryview(buffer)[:cut]
                    buffer[: filled - cut] = buffer[cut:filled]
                    filled, done, lines = filled - cut, done + cut, lines + ends.size
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


def rows_from_object(predictions: Any, instance_ids: list[str]) -> Iterable[tuple[int, Any]]:
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
