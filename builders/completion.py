"""Stage 4, completion: how long each play lasted, and what share of the track that was."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmbench.builders import identify
from mmbench.errors import MmbenchError


def completion_ratios(plays: pl.DataFrame, durations: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Add ``listen_seconds`` and ``completion_ratio`` (Float32, null where unknown).

    ``listen_seconds`` is the next play's timestamp minus this play's within the same session
    (null for a session's last play); ``completion_ratio`` is listen_seconds / duration clipped
    to [0, 1], null where either is unknown. ``durations`` maps ``track`` to
    ``duration_seconds``. ``plays`` must be in session order (the output of sessionize).
    """
    same_session = pl.col("session").shift(-1) == pl.col("session")
    listen = pl.when(same_session).then(pl.col("timestamp").shift(-1) - pl.col("timestamp"))
    out = (
        plays.with_columns(listen.cast(pl.Float32).alias("listen_seconds"))
        .join(durations.select("track", "duration_seconds"), on="track", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("duration_seconds") > 0)
            .then((pl.col("listen_seconds") / pl.col("duration_seconds")).clip(0.0, 1.0))
            .cast(pl.Float32)
            .alias("completion_ratio")
        )
        .drop("duration_seconds")
    )
    report = {
        "rows_in": plays.height,
        "rows_out": out.height,
        "removed": {},
        "plays_with_listen_seconds": int(out["listen_seconds"].is_not_null().sum()),
        "plays_with_completion_ratio": int(out["completion_ratio"].is_not_null().sum()),
    }
    return out, report


def read_durations(path: Path) -> pl.DataFrame:
    """A durations manifest (CSV or JSON Lines with artist_name, track_name, duration_seconds)
    as (track_id, duration_seconds); the first row wins for a song listed twice."""
    try:
        frame = (
            pl.read_ndjson(path)
            if path.suffix in (".jsonl", ".ndjson")
            else pl.read_csv(path, infer_schema=False)
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MmbenchError(f"{path}: cannot read the durations manifest: {exc}") from None
    missing = {"artist_name", "track_name", "duration_seconds"} - set(frame.columns)
    if missing:
        raise MmbenchError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; expected artist_name, track_name, duration_seconds"
        )
    frame = frame.with_columns(pl.col("duration_seconds").cast(pl.Float64, strict=False))
    bad = frame.with_row_index("row").filter(
        pl.col("duration_seconds").is_null() | (pl.col("duration_seconds") <= 0)
    )
    if bad.height:
        raise MmbenchError(f"{path}: line {bad['row'][0] + 2}: duration_seconds must be a positive number")
    return (
        frame.with_columns(identify.track_ids_for(frame["artist_name"], frame["track_name"]))
        .unique("track_id", keep="first", maintain_order=True)
        .select("track_id", "duration_seconds")
    )


def known_durations(
    tracks: pl.DataFrame, manifest: Path | None, audio_files: pl.DataFrame | None
) -> pl.DataFrame:
    """(track, duration_seconds) of the tracks whose duration is known: from the durations
    manifest first, then from the audio manifest's files."""
    known = [read_durations(manifest)] if manifest is not None else []
    if audio_files is not None:
        known.append(audio_files.select("track_id", "duration_seconds"))
    if not known:
        return pl.DataFrame(schema={"track": pl.UInt32, "duration_seconds": pl.Float32})
    listed = pl.concat([k.with_columns(pl.col("duration_seconds").cast(pl.Float32)) for k in known])
    first = listed.unique("track_id", keep="first", maintain_order=True)
    return tracks.join(first, on="track_id").select("track", "duration_seconds")
