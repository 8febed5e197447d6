"""The content kinds, declared once: each is one module (how its inputs are read, what each vector
is computed from, how it is embedded) and one entry here. The CLI's options, the recipe's
``enrich.<kind>_encoder`` keys, the build's content stage, the embedding cache, the published
configs, the card and the datasheet all iterate :data:`KINDS`; the evaluator's diversity and the
baselines read any config with an ``embedding`` column.

A kind's config is ``<kind>-<encoder>`` (``audio-mfcc``, ``lyrics-minilm``, ``text-minilm``), one
row per track that has the content, with ``track_id`` and a fixed-size ``embedding``
(:func:`mmbench.schema.embedding_schema`). The ``mgphot`` config is not a kind: an LLM annotates it
(:mod:`mmbench.builders.mgphot`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mmbench.builders import audio, lyrics, sentences, text
from mmbench.builders.embedding_cache import EmbeddingCache

Embed = Callable[[str, list[str], list[str], list[str], EmbeddingCache, dict, bool], list[dict[str, str]]]


def _any_encoder(name: str) -> None:
    """A sentence-transformers model by packaged name, Hub name or folder: checked when loaded."""


@dataclass(frozen=True)
class ContentKind:
    """One kind of content vectors.

    ``column`` is the input each vector is computed from; a kind either reads it from a manifest
    the user gives (``read_manifest``, with ``manifest_help`` for ``--<name>-manifest``) or makes
    it from the catalogue (``from_catalog``, built whenever the recipe's encoder is not empty).
    ``embed(encoder, track_ids, inputs, digests, store, options, progress)`` fills the embedding
    cache and returns the inputs that failed; ``options`` holds the keys of ``options`` only.
    ``source`` says, for the card and the datasheet, what the vectors are computed from.
    ``labels_targets``: the instances get a ``target_has_<config>`` label (False for a kind that
    covers every track by construction, where the label would be constant)."""

    name: str
    source: str
    column: str
    encoder_help: str
    input_digests: Callable[[list[str]], list[str]]
    embed: Embed
    check_encoder: Callable[[str], None] = _any_encoder
    read_manifest: Callable[[Path], pl.DataFrame] | None = None
    manifest_help: str = ""
    from_catalog: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    options: tuple[str, ...] = ("device",)
    labels_targets: bool = True

    @property
    def recipe_key(self) -> str:
        """The recipe's ``enrich`` key naming the kind's encoder."""
        return f"{self.name}_encoder"

    def config(self, encoder: str) -> str:
        """The config's name for an encoder given by name, Hub id or folder: the encoder's last
        path component (``BAAI/bge-m3`` -> ``lyrics-bge-m3``), so the config is one folder."""
        return f"{self.name}-{encoder.rstrip('/').rsplit('/', 1)[-1]}"


KINDS: tuple[ContentKind, ...] = (
    ContentKind(
        name="audio",
        source="audio files listed in an audio manifest",
        column="path",
        encoder_help="mfcc, clap, mert, mert-330m, encodec, crepe, crepe-full.",
        input_digests=audio.audio_digests,
        embed=audio.embed_audio_files,
        check_encoder=audio.check_audio_encoder,
        read_manifest=audio.read_audio_manifest,
        manifest_help="CSV/JSONL of artist_name, track_name, path[, duration_seconds]: audio embeddings and durations.",
        options=("model", "device", "trust_remote_code"),
    ),
    ContentKind(
        name="lyrics",
        source="lyrics listed in a lyrics manifest",
        column="lyrics",
        encoder_help="minilm or a sentence-transformers model.",
        input_digests=sentences.text_digests,
        embed=sentences.kind_embedder("lyrics", batch_size=64),
        read_manifest=lyrics.read_lyrics_manifest,
        manifest_help="CSV/JSONL of artist_name, track_name, lyrics[, language].",
    ),
    ContentKind(
        name="text",
        source="each track's name as `artist - title`",
        column="text",
        encoder_help='minilm or a sentence-transformers model; "" builds no text config.',
        input_digests=sentences.text_digests,
        # One text at a time: a vector then depends on its text alone, not on which other tracks
        # share its padded batch, so a build resumed from the cache writes the bytes a fresh one does.
        embed=sentences.kind_embedder("text", batch_size=1),
        from_catalog=text.catalog_texts,
        labels_targets=False,
    ),
)
BY_NAME = {kind.name: kind for kind in KINDS}
MANIFEST_KINDS = tuple(kind for kind in KINDS if kind.read_manifest is not None)


def kind_of_config(config: str) -> ContentKind | None:
    """The kind whose configs are named ``<kind>-...``, or None (``mgphot``)."""
    return BY_NAME.get(config.split("-", 1)[0]) if "-" in config else None
