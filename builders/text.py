"""The ``text-<encoder>`` content kind: a sentence embedding of each catalogue track's name as
``artist - title`` (:func:`mmbench.tracks.track_text`, the rendering the zero-shot rankers use),
with the encoders of :mod:`mmbench.builders.sentences`. It needs no manifest, so every build has a
content config, the real data's included; the recipe's ``enrich.text_encoder = ""`` turns it off.

Every track has a name, so the config covers the whole catalogue and the instances carry no
``target_has_`` label for it (the label would be true everywhere)."""

from __future__ import annotations

import polars as pl

from mmbench.builders import sentences
from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.digests import text_digest
from mmbench.tracks import track_text


def catalog_texts(catalog: pl.DataFrame) -> pl.DataFrame:
    """(track_id, text) of every track of ``catalog`` (which has artist_name and track_name)."""
    return catalog.select("track_id", track_text().alias("text"))


def text_digests(texts: list[str]) -> list[str]:
    """What each vector is computed from: the track's text."""
    return [text_digest(t) for t in texts]


def embed_texts(
    encoder: str,
    track_ids: list[str],
    texts: list[str],
    digests: list[str],
    store: EmbeddingCache,
    options: dict,
    progress: bool,
) -> list[dict[str, str]]:
    """Embed the tracks' texts into ``store``; no text fails."""
    # One text at a time: a vector then depends on its text alone, not on which other tracks
    # share its padded batch, so a build resumed from the cache writes the bytes a fresh one does.
    sentences.embed_sentences(
        encoder, track_ids, texts, digests, store, options.get("device") or "auto", batch_size=1,
        progress=progress, desc="text",
    )  # fmt: skip
    return []
