"""The ``lyrics-<encoder>`` content kind: sentence embeddings of the lyrics a user lists in a
manifest (CSV or JSON Lines: ``artist_name``, ``track_name``, ``lyrics``, optionally
``language``), with the encoders of :mod:`mmbench.builders.sentences`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmbench.builders import sentences
from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.builders.manifests import read_manifest
from mmbench.digests import text_digest

LYRICS_COLUMNS = ("artist_name", "track_name", "lyrics")


def read_lyrics_manifest(path: Path) -> pl.DataFrame:
    """(track_id, language, lyrics) for every listed song."""
    frame = read_manifest(path, LYRICS_COLUMNS, "lyrics")
    language = pl.col("language").cast(pl.String) if "language" in frame.columns else pl.lit(None, pl.String)
    return frame.select("track_id", language.alias("language"), pl.col("lyrics").cast(pl.String))


def lyrics_digests(texts: list[str]) -> list[str]:
    """What each vector is computed from: the lyrics' text."""
    return [text_digest(t) for t in texts]


def embed_lyrics(
    encoder: str,
    track_ids: list[str],
    texts: list[str],
    digests: list[str],
    store: EmbeddingCache,
    options: dict,
    progress: bool,
) -> list[dict[str, str]]:
    """Embed the lyrics into ``store``; no text fails."""
    sentences.embed_sentences(
        encoder,
        track_ids,
        texts,
        digests,
        store,
        options.get("device") or "auto",
        progress=progress,
        desc="lyrics",
    )
    return []
