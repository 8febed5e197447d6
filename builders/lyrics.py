"""The ``lyrics-<encoder>`` content kind: sentence embeddings of the lyrics a user lists in a
manifest (CSV or JSON Lines: ``artist_name``, ``track_name``, ``lyrics``, optionally
``language``), with the encoders of :mod:`mmbench.builders.sentences`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmbench.builders.manifests import read_manifest

LYRICS_COLUMNS = ("artist_name", "track_name", "lyrics")


def read_lyrics_manifest(path: Path) -> pl.DataFrame:
    """(track_id, language, lyrics) for every listed song."""
    frame = read_manifest(path, LYRICS_COLUMNS, "lyrics")
    language = pl.col("language").cast(pl.String) if "language" in frame.columns else pl.lit(None, pl.String)
    return frame.select("track_id", language.alias("language"), pl.col("lyrics").cast(pl.String))
