"""The dataset fingerprint: a digest of what evaluation depends on (DESIGN.md section 9).

Two builds with the same fingerprint score any predictions file the same and slice it into the
same segments: the fingerprint covers every instance's (``instance_id``, ``task``, split,
``target_track_id``, ``candidates``) and label columns, and the catalogue's track ids with
their ``n_plays_train`` (which popularity-based measures read), and nothing else, so it does not
change with the parquet writer's version, the row order, or float noise in content vectors
(whose files the build report lists with their SHA-256).

The canonical serialisation (version 2; docs/protocol.md gives it with a reference
implementation) is UTF-8 text in which every string is written as a netstring-like
``<length in bytes>:<bytes>`` ("encoded"), so that no id can be mistaken for a separator:

* the header ``mmbench-fingerprint-v2\\n``;
* one line per instance, sorted by split, task, instance_id (byte order): instance_id, task,
  split and target_track_id, encoded; then the candidates as ``<count>#`` followed by each
  candidate encoded, or ``-`` for an instance without candidates; then, for every label column
  in byte order of the names, the encoded name followed by the encoded value (a boolean as
  ``true`` or ``false``, a string as itself, an integer in decimal) or by ``-`` for a null;
  then ``\\n``. The label columns are all the ``instances`` columns outside the contract's
  :data:`CONTRACT_COLUMNS` (today ``target_heard_before``, ``target_popularity``,
  ``target_cold``, ``target_cold_new`` and one ``target_has_<config>`` per content config that labels targets),
  whatever they are;
* one line per catalogue track, sorted by track_id (byte order): the encoded track id, then its
  ``n_plays_train`` in decimal (``-`` for a null), then ``\\n``.

The fingerprint is the SHA-256 of these bytes, in hex. Version 1 had the header
``mmbench-fingerprint-v1\\n``, no labels and no play counts.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mmbench.errors import MmbenchError
from mmbench.schema import SPLITS

HEADER = b"mmbench-fingerprint-v2\n"
# The instances' contract columns; every other column of the config is a label.
CONTRACT_COLUMNS = (
    "instance_id",
    "task",
    "user_id",
    "session_id",
    "position",
    "target_track_id",
    "candidates",
)
FIELDS = ("instance_id", "task", "target_track_id", "candidates")  # the contract columns it covers
TRACK_FIELDS = ("track_id", "n_plays_train")


def label_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The label columns among an ``instances`` frame's ``columns``, in byte order of the names."""
    return sorted((c for c in columns if c not in CONTRACT_COLUMNS), key=str.encode)


def _encoded(value: pl.Expr) -> pl.Expr:
    """``<length in bytes>:<value>`` for a string expression."""
    return pl.concat_str(value.str.len_bytes().cast(pl.String), pl.lit(":"), value)


def _netstring(text: str) -> str:
    return f"{len(text.encode())}:{text}"


def _label(frame: pl.DataFrame, name: str) -> pl.Expr:
    """The encoded name of a label column, then its encoded value or ``-`` for a null."""
    dtype = frame.schema[name]
    if not (dtype == pl.Boolean or dtype == pl.String or dtype.is_integer()):
        raise MmbenchError(
            f"instances column {name!r} is {dtype}: a label must be a boolean, a string or an integer"
        )
    value = pl.col(name).cast(pl.String)  # booleans as true/false, integers in decimal
    return pl.concat_str(
        pl.lit(_netstring(name)), pl.when(value.is_null()).then(pl.lit("-")).otherwise(_encoded(value))
    )


def _instance_lines(frame: pl.DataFrame, split: str) -> pl.Series:
    """The serialised lines of one split's instances, in (task, instance_id) byte order."""
    frame = _sorted(frame.select(*FIELDS, *label_columns(frame.columns)))
    candidates = (
        pl.when(pl.col("candidates").is_null())
        .then(pl.lit("-"))
        .otherwise(
            pl.concat_str(
                pl.col("candidates").list.len().cast(pl.String),
                pl.lit("#"),
                pl.col("candidates").list.eval(_encoded(pl.element())).list.join(""),
            )
        )
    )
    return frame.select(
        pl.concat_str(
            *[_encoded(pl.col(c)) for c in ("instance_id", "task")],
            pl.lit(_netstring(split)),
            _encoded(pl.col("target_track_id")),
            candidates,
            *[_label(frame, name) for name in label_columns(frame.columns)],
            pl.lit("\n"),
        ).alias("line")
    )["line"]


def compute_fingerprint(instances: dict[str, pl.DataFrame], tracks: pl.DataFrame) -> str:
    """SHA-256 of the canonical serialisation of ``instances`` (split name -> a frame with
    :data:`FIELDS`, and label columns: every column outside :data:`CONTRACT_COLUMNS`) and the
    catalogue ``tracks`` (a frame with :data:`TRACK_FIELDS`; other columns are ignored)."""
    digest = hashlib.sha256(HEADER)
    for split, frame in sorted(instances.items(), key=lambda item: item[0].encode()):
        _update(digest, _instance_lines(frame, split))
    catalogue = tracks.select(*TRACK_FIELDS).sort("track_id")
    track_lines = catalogue.select(
        pl.concat_str(
            _encoded(pl.col("track_id")),
            pl.col("n_plays_train").cast(pl.String).fill_null("-"),
            pl.lit("\n"),
        ).alias("line")
    )["line"]
    _update(digest, track_lines)
    return digest.hexdigest()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in (task, instance_id) byte order; a build writes it so, which one pass checks."""
    key = frame.select(pl.concat_str("task", pl.lit("\x00"), "instance_id").alias("key"))["key"]
    return frame if key.is_sorted() else frame[key.arg_sort()]


def _update(digest: Any, lines: pl.Series) -> None:
    """Feed the UTF-8 bytes of every string of ``lines``, in order, straight from Arrow's buffer."""
    if lines.null_count():
        raise MmbenchError("a null id or candidate in the instances or tracks: no fingerprint for it")
    array = lines.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    if len(array):
        digest.update(memoryview(array.buffers()[2])[offsets[0] : offsets[-1]])


def dataset_fingerprint(source: str | os.PathLike | None = None) -> str:
    """The fingerprint of a build folder or Hub dataset, computed from its instances (with every
    label column) and its tracks' ids and training play counts."""
    from mmbench.loading import load_table

    instances = {}
    for split in SPLITS["instances"]:
        table = load_table("instances", split, source)
        covered = [c for c in table.column_names if c in FIELDS or c not in CONTRACT_COLUMNS]
        instances[split] = pl.DataFrame(table.select(covered))
    tracks = pl.DataFrame(load_table("tracks", "catalog", source, list(TRACK_FIELDS)))
    return compute_fingerprint(instances, tracks)
