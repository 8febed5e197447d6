"""The published dataset's contract (DESIGN.md section 4): configs, splits and Arrow schemas."""

from __future__ import annotations

import pyarrow as pa

HUB_ID = "mmbench/lastfm1k-mm"
TASKS = ("next-track", "paper-sampled")
MAX_PREDICTIONS = 100

UTC_SECONDS = pa.timestamp("s", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "sessions": pa.schema(
        [
            ("session_id", pa.string()),
            ("user_id", pa.string()),
            ("start_time", UTC_SECONDS),
            ("track_ids", pa.list_(pa.string())),
            ("timestamps", pa.list_(UTC_SECONDS)),
            ("listen_seconds", pa.list_(pa.float32())),
            ("completion_ratios", pa.list_(pa.float32())),
        ]
    ),
    "instances": pa.schema(
        [
            ("instance_id", pa.string()),
            ("task", pa.string()),
            ("user_id", pa.string()),
            ("session_id", pa.string()),
            ("position", pa.int32()),
            ("target_track_id", pa.string()),
            ("candidates", pa.list_(pa.string())),
        ]
    ),
    "tracks": pa.schema(
        [
            ("track_id", pa.string()),
            ("artist_name", pa.string()),
            ("track_name", pa.string()),
            ("artist_mbid", pa.string()),
            ("track_mbids", pa.list_(pa.string())),
            ("duration_seconds", pa.float32()),
            ("n_plays_train", pa.int64()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("gender", pa.string()),
            ("age", pa.int32()),
            ("country", pa.string()),
            ("signup", pa.date32()),
            ("n_sessions_train", pa.int32()),
        ]
    ),
}


def embedding_schema(dim: int) -> pa.Schema:
    """Schema of an ``audio-<encoder>`` or ``lyrics-<encoder>`` config of dimension ``dim``."""
    return pa.schema([("track_id", pa.string()), ("embedding", pa.list_(pa.float32(), dim))])


def stored_schema(config: str) -> pa.Schema:
    """The schema a config has once written to parquet and read back.

    Parquet has no second time unit, so the contract's whole-second ``timestamp[s, UTC]``
    values are stored (and loaded by ``datasets``) as ``timestamp[ms, UTC]``.
    """

    def stored(t: pa.DataType) -> pa.DataType:
        if t == UTC_SECONDS:
            return pa.timestamp("ms", tz="UTC")
        if pa.types.is_list(t):
            return pa.list_(stored(t.value_type))
        return t

    return pa.schema([(f.name, stored(f.type)) for f in SCHEMAS[config]])


SPLITS: dict[str, tuple[str, ...]] = {
    "sessions": ("train", "validation", "test"),
    "instances": ("validation", "test"),
    "tracks": ("catalog",),
    "users": ("catalog",),
}
DEFAULT_CONFIG = "sessions"
