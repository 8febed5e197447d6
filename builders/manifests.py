"""Reading a content manifest: a CSV or JSON Lines file that a user assembles, keyed by artist and
track name exactly like the plays, so that the identify stage's normalized key joins it to tracks."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmbench.builders import identify
from mmbench.errors import MmbenchError


def read_manifest(path: Path, required: tuple[str, ...], what: str) -> pl.DataFrame:
    """A manifest as strings with ``line`` (its line in the file) and ``track_id`` (given, or
    derived from artist_name and track_name); the first row wins for a song listed twice."""
    if not path.is_file():
        raise MmbenchError(f"{path}: {what} manifest not found")
    jsonl = path.suffix in (".jsonl", ".ndjson")
    try:
        frame = (
            pl.read_ndjson(path, infer_schema_length=None) if jsonl else pl.read_csv(path, infer_schema=False)
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MmbenchError(f"{path}: cannot read the {what} manifest: {str(exc).splitlines()[0]}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MmbenchError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)} "
            f"(see docs/building.md)"
        )
    frame = frame.with_row_index("line", offset=1 if jsonl else 2)
    empty = frame.filter(
        pl.any_horizontal(pl.col(c).cast(pl.String).fill_null("").str.strip_chars() == "" for c in required)
    )
    if empty.height:
        row = empty.row(0, named=True)
        blank = next(c for c in required if not str(row[c] or "").strip())
        raise MmbenchError(f"{path}: line {row['line']}: empty {blank}")
    if "track_id" not in required:
        frame = frame.with_columns(
            identify.track_ids_for(frame["artist_name"].cast(pl.String), frame["track_name"].cast(pl.String))
        )
    return frame.unique("track_id", keep="first", maintain_order=True)
