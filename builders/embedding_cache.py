"""The embedding cache: vectors already computed, per config and model, so that an interrupted
content stage resumes by chunk and shards on several machines merge by copying folders."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

from mmbench.files import write_atomic


def cache_folder(label: str, *key: str) -> str:
    """A cache folder's name: a readable slug of ``label`` and a digest of ``label`` and ``key``."""
    digest = hashlib.sha256("\x1f".join((label, *key)).encode("utf-8")).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
    return f"{slug}-{digest}"


class EmbeddingCache:
    """Embeddings already computed for one config and model: ``.npz`` chunks (track ids, their
    vectors, a digest of the input each came from, no pickle) in a folder. A chunk is named by
    a digest of its content and written under a temporary name first, so a killed run keeps
    every finished chunk and never leaves a partial one; a vector whose input changed since
    (other lyrics, another file) no longer counts. Shards write their own chunks into the same
    folder, and merging shards is copying their folders together."""

    def __init__(self, root: Path, config: str, model: str, shard: str = "main"):
        self.folder = root / cache_folder(config, model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self.vectors: dict[str, np.ndarray] = {}
        self.inputs: dict[str, str] = {}
        self.tokens: dict[str, int] = {}
        for file in sorted(self.folder.glob("*.npz")):
            try:
                with np.load(file, allow_pickle=False) as chunk:
                    ids = chunk["track_ids"].tolist()
                    self.vectors.update(zip(ids, chunk["embedding"], strict=True))
                    self.inputs.update(zip(ids, chunk["inputs"].tolist(), strict=True))
                    if "tokens" in chunk:
                        self.tokens.update(zip(ids, chunk["tokens"].tolist(), strict=True))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue  # an unreadable chunk: its tracks are simply computed again
        meta = self.folder / "meta.json"
        self.meta: dict = json.loads(meta.read_text()) if meta.exists() else {}

    def has(self, track_id: str, digest: str) -> bool:
        """Whether the track's vector was computed from this very input."""
        return self.inputs.get(track_id) == digest

    def describe(self, **meta: object) -> None:
        """Record what produced the embeddings (model, dimension, ...) once, for the report."""
        if meta != self.meta:
            # In key order, as read back from meta.json: a build that finds the cache reports
            # the same bytes as the build that filled it.
            self.meta = dict(sorted(meta.items()))
            write_atomic(self.folder / "meta.json", json.dumps(self.meta, sort_keys=True).encode())

    def add(
        self, track_ids: list[str], matrix: np.ndarray, inputs: list[str], tokens: list[int] | None = None
    ) -> None:
        """Store one chunk: embeddings, the digests of their inputs, and for texts their length in tokens."""
        if not track_ids:
            return
        arrays = {
            "track_ids": np.asarray(track_ids, dtype=str),
            "embedding": np.asarray(matrix, dtype=np.float32),
            "inputs": np.asarray(inputs, dtype=str),
        }
        if tokens is not None:
            arrays["tokens"] = np.asarray(tokens, dtype=np.int64)
            self.tokens.update(zip(track_ids, tokens, strict=True))
        name = hashlib.sha256(
            "\n".join(f"{t}\t{d}" for t, d in zip(track_ids, inputs, strict=True)).encode()
        ).hexdigest()
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(self.folder / f"{self.shard}-{name[:20]}.npz", buffer.getvalue())
        self.vectors.update(zip(track_ids, arrays["embedding"], strict=True))
        self.inputs.update(zip(track_ids, inputs, strict=True))

    def frame(self, track_ids: list[str]) -> pl.DataFrame:
        """(track_id, embedding) for the given tracks that have one, in the given order."""
        have = [t for t in track_ids if t in self.vectors]
        dim = len(next(iter(self.vectors.values()))) if self.vectors else 0
        matrix = np.stack([self.vectors[t] for t in have]) if have else np.zeros((0, dim), dtype=np.float32)
        return pl.DataFrame({"track_id": have, "embedding": matrix}, schema_overrides={"track_id": pl.String})
