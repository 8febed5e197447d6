"""The dataset fingerprint: a digest of what evaluation depends on (DESIGN.md section 9).

Two builds with the same fingerprint score any predictions file the same: the fingerprint
covers every instance's (``instance_id``, ``task``, split, ``target_track_id``,
``candidates``) and the catalogue's track ids, and nothing else, so it does not change with the
parquet writer's version, the row order, or float noise in content vectors.

The canonical serialisation (version 1) is UTF-8 text in which every string is written as a
netstring-like ``<length in bytes>:<bytes>``, so that no id can be mistaken for a separator:

* the header ``mmbench-fingerprint-v1\\n``;
* one line per instance, sorted by split, task, instance_id (byte order): instance_id, task,
  split and target_track_id, then the candidates as ``<count>#`` followed by each candidate,
  or ``-`` for an instance without candidates, then ``\\n``;
* one line per catalogue track, sorted by track_id: the track id, then ``\\n``.

The fingerprint is the SHA-256 of these bytes, in hex.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mmbench.schema import SPLITS

HEADER = b"mmbench-fingerprint-v1\n"
FIELDS = ("instance_id", "task", "target_track_id", "candidates")


def _encoded(value: pl.Expr) -> pl.Expr:
    """``<length in bytes>:<value>`` for a string expression."""
    return pl.concat_str(value.str.len_bytes().cast(pl.String), pl.lit(":"), value)


def compute_fingerprint(instances: dict[str, pl.DataFrame], track_ids: pl.Series | list[str]) -> str:
    """SHA-256 of the canonical serialisation of ``instances`` (split name -> a frame with
    :data:`FIELDS`) and the catalogue's ``track_ids``."""
    rows = pl.concat(
        [
            _sorted(frame.select(*FIELDS)).with_columns(pl.lit(split).alias("split"))
            for split, frame in sorted(instances.items(), key=lambda item: item[0].encode())
        ]
    )
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
    lines = rows.select(
        pl.concat_str(
            *[_encoded(pl.col(c)) for c in ("instance_id", "task", "split", "target_track_id")],
            candidates,
            pl.lit("\n"),
        )
    ).to_series()
    tracks = pl.DataFrame({"t": pl.Series(track_ids, dtype=pl.String)}).sort("t")
    track_lines = tracks.select(pl.concat_str(_encoded(pl.col("t")), pl.lit("\n"))).to_series()
    digest = hashlib.sha256(HEADER)
    _update(digest, lines)
    _update(digest, track_lines)
    return digest.hexdigest()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in (task, instance_id) byte order; a build writes it so, which one pass checks."""
    key = frame.select(pl.concat_str("task", pl.lit("\x00"), "instance_id").alias("key"))["key"]
    return frame if key.is_sorted() else frame[key.arg_sort()]


def _update(digest: Any, lines: pl.Series) -> None:
    """Feed the UTF-8 bytes of every string of ``lines``, in order, straight from Arrow's buffer."""
    array = lines.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    if len(array):
        digest.update(memoryview(array.buffers()[2])[offsets[0] : offsets[-1]])


def dataset_fingerprint(source: str | os.PathLike | None = None) -> str:
    """The fingerprint of a build folder or Hub dataset, computed from its instances and tracks."""
    from mmbench.loading import load_table

    instances = {
        split: pl.from_arrow(load_table("instances", split, source, list(FIELDS)))
        for split in SPLITS["instances"]
    }
    tracks = pl.from_arrow(load_table("tracks", "catalog", source, ["track_id"]))
    return compute_fingerprint(instances, tracks["track_id"])
